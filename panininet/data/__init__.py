"""Imports every `*_dataset.py` in this folder so that its classes register themselves in BasicSR."""
import importlib
from os import path as osp

from basicsr.utils import scandir

_folder = osp.dirname(osp.abspath(__file__))
_names = sorted(osp.splitext(osp.basename(v))[0] for v in scandir(_folder) if v.endswith('_dataset.py'))
_modules = [importlib.import_module(f'panininet.data.{name}') for name in _names]
