"""panininet: Panini-Net face restoration as a BasicSR plugin.

``compat`` is applied first: it makes basicsr 1.4.2 importable and runnable on today's PyTorch,
torchvision and OpenCV. Importing the sub-packages then registers every arch, dataset and model
in BasicSR's registries (one decorator per class, auto-discovered by file name).
"""
# flake8: noqa
from . import compat

OP_PATH = compat.apply()

from . import archs, data, models

try:
    from .version import __version__
except ImportError:  # running from a source tree that was never installed
    __version__ = 'unknown'
