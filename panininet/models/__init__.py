"""Imports every `*_model.py` in this folder so that its classes register themselves in BasicSR.

``gfpgan_model.py`` (GFP-GAN's training through our engine) subclasses the gfpgan package's ``GFPGANModel``: it is
imported only when gfpgan is installed (the ``[gfpgan]`` extra); without it ``model_type: PaniniGFPGANModel`` is
refused by ``panininet/train.py`` with a line naming the extra.
"""
import importlib
import importlib.util
from os import path as osp

from basicsr.utils import scandir

_folder = osp.dirname(osp.abspath(__file__))
_names = sorted(osp.splitext(osp.basename(v))[0] for v in scandir(_folder) if v.endswith('_model.py'))
HAS_GFPGAN = importlib.util.find_spec('gfpgan') is not None
if not HAS_GFPGAN:
    _names.remove('gfpgan_model')
_modules = [importlib.import_module(f'panininet.models.{name}') for name in _names]
