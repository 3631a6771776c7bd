"""panininet: Panini-Net, MMRB-Net and GFP-GAN face restoration as a BasicSR plugin.

The platform fixes come first: :mod:`panininet.platform.compat_basicsr` makes basicsr 1.4.2 importable and
runnable on today's PyTorch, torchvision and OpenCV. Importing ``archs``, ``data`` and ``models`` then registers
every arch, dataset and model in BasicSR's registries (one decorator per class, found by file name). Last, the
import paths of panininet 0.1.0 are kept working for one release (:mod:`panininet._old_paths`).

Stages: ``weights/`` (weight files in), ``pipeline/`` (photos and videos), ``families/`` (one interface per kind
of restorer), ``archs/`` ``data/`` ``models/`` (training), ``metrics/`` (evaluation), ``platform/`` (fixes).
"""
# flake8: noqa
from .platform import compat_basicsr

OP_PATH = compat_basicsr.apply()

from . import _old_paths, archs, data, models

_old_paths.install()

try:
    from .version import __version__
except ImportError:  # running from a source tree that was never installed
    __version__ = 'unknown'
