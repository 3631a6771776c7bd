"""The one reader of weight files: ours, BasicSR's, official Panini-Net/MoCo, MMGen StyleGAN2, torchvision VGG.

Every file panininet reads with PyTorch goes through :func:`load_checkpoint_file`:
``torch.load(..., map_location, weights_only=True)``, which refuses any pickle that would import or call something
outside PyTorch's allow-list. A second try allows only numpy scalar and array reconstruction (what training scripts
sometimes leave in ``meta``, e.g. a numpy seed). There is no unsafe fallback: a file that still needs more is
refused with a message naming the file and the way out. Callers that know a few more harmless types (a training
state's ``collections.Counter``) pass them as ``safe_globals``.

:func:`pick_params` finds the network state dict inside a file (``params_ema`` / ``params`` / a bare state dict) and
:func:`strip_prefix` removes a key prefix such as DataParallel's ``module.``; the converters build on these three
(:mod:`panininet.weights.panini_checkpoint`, :mod:`~panininet.weights.official`,
:mod:`~panininet.weights.gpen_checkpoint`). This module imports nothing of panininet's.
"""
import os.path as osp
import pickle
from collections import OrderedDict

import torch


def _numpy_safe_globals():
    """numpy callables that only rebuild scalars, dtypes and arrays (no code execution)."""
    try:
        import numpy as np
    except ImportError:  # pragma: no cover (numpy is a dependency)
        return []
    try:
        from numpy._core.multiarray import _reconstruct, scalar
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import _reconstruct, scalar
    dtype_classes = [type(np.dtype(t)) for t in ('bool', 'int8', 'int16', 'int32', 'int64', 'uint8', 'float16',
                                                 'float32', 'float64')]
    return [scalar, _reconstruct, np.ndarray, np.dtype, *dtype_classes]


def load_checkpoint_file(path, map_location='cpu', safe_globals=()):
    """Load a checkpoint with ``weights_only=True``.

    Args:
        path (str): File path.
        map_location (str | torch.device): Passed to ``torch.load``. Default: 'cpu'.
        safe_globals (Sequence): More classes/functions the unpickler may use (passed to
            ``torch.serialization.safe_globals``), e.g. ``collections.Counter`` for a BasicSR training state.
            Default: none.

    Returns:
        object: The unpickled content (usually a dict).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        CheckpointError: The file is truncated or not a checkpoint at all.
        RuntimeError: The file needs objects outside the allow-list (message names the file and the way out).
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'checkpoint {path!r} does not exist (give the path of a .pth file)')
    try:
        try:
            with torch.serialization.safe_globals(list(safe_globals)):
                return torch.load(path, map_location=map_location, weights_only=True)
        except pickle.UnpicklingError as first:
            if _refused_global(first) is None:  # not a refusal: a broken or foreign file (e.g. 'Unsupported operand')
                raise
            try:
                with torch.serialization.safe_globals([*safe_globals, *_numpy_safe_globals()]):
                    return torch.load(path, map_location=map_location, weights_only=True)
            except pickle.UnpicklingError as err:
                raise RuntimeError(
                    f'{path}: refused by torch.load(weights_only=True): it holds objects that may run code when '
                    f'loaded ({_refused_global(err) or _refused_global(first)}). If you trust where the file comes '
                    'from, load it once yourself with torch.load(path, weights_only=False) and save only its '
                    "tensors, e.g. torch.save({'state_dict': ckpt['state_dict']}, 'clean.pth'); panininet never "
                    'unpickles such files itself.') from err
    except (pickle.UnpicklingError, EOFError, IndexError, KeyError, ValueError, UnicodeDecodeError) as err:
        raise CheckpointError(_unreadable(path, err)) from None
    except RuntimeError as err:
        if str(err).startswith(f'{path}: refused'):
            raise
        raise CheckpointError(_unreadable(path, err)) from None


def _refused_global(err):
    """The line of a weights-only refusal that names the global (``... GLOBAL module.name ...``), else None.

    ``torch.load(weights_only=True)`` raises the same ``UnpicklingError`` ("Weights only load failed ...") for a
    pickle that names a callable outside the allow-list ("Unsupported global: GLOBAL x.y", "unsupported GLOBAL
    posix.system whose module posix is blocked": a refusal, the file is a checkpoint we must not unpickle) and for
    bytes that are not a pickle at all ("Unsupported operand 255"): only the first is a refusal.
    """
    return next((line.strip() for line in str(err).splitlines() if 'GLOBAL' in line), None)


class CheckpointError(ValueError):
    """A file that is not a readable PyTorch checkpoint (truncated, or another kind of file)."""


def _unreadable(path, err):
    lines = [line.strip() for line in str(err).strip().splitlines() if line.strip()]
    # the weights-only unpickler's own reason ('Unsupported operand 255') rather than its boilerplate first line
    reason = next((line for line in lines if line.startswith('Unsupported')), lines[0] if lines else 'no message')
    return (f'{path}: not a readable PyTorch checkpoint, truncated or another kind of file '
            f'({type(err).__name__}: {reason}); download or copy it again.')


def strip_prefix(state_dict, prefix, only=False):
    """Remove ``prefix`` from every key that has it (e.g. ``'module.'`` of DataParallel).

    Args:
        state_dict (dict): Key -> tensor.
        prefix (str): e.g. ``'module.'`` or ``'features.'``.
        only (bool): Keep only the keys that have ``prefix`` (a sub-network's part of a larger state dict).
            Default: False (other keys are kept unchanged).

    Returns:
        OrderedDict: The renamed entries, in the original order.
    """
    return OrderedDict((k[len(prefix):] if k.startswith(prefix) else k, v) for k, v in state_dict.items()
                       if not only or k.startswith(prefix))


def pick_params(obj, path='<checkpoint>', keys=('params_ema', 'params'), allow_bare=True):
    """The network state dict inside a BasicSR-style checkpoint: the first of ``keys`` it has, else ``obj`` itself.

    Args:
        obj (dict): Loaded checkpoint.
        path (str): For error messages.
        keys (Sequence[str]): Entries that may hold the state dict, in order of preference.
            Default: ('params_ema', 'params').
        allow_bare (bool): Accept ``obj`` itself when it is a bare state dict (only tensors) and has none of
            ``keys``. Default: True.

    Returns:
        OrderedDict: State dict (``module.`` prefixes removed).

    Raises:
        ValueError: Not a dict, or none of ``keys`` and not an accepted bare state dict.
    """
    if not isinstance(obj, dict):
        raise ValueError(f'{path}: expected a dict checkpoint, got {type(obj).__name__}')
    for key in keys:
        if key in obj:
            return strip_prefix(obj[key], 'module.')
    if allow_bare and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        return strip_prefix(obj, 'module.')
    wanted = ' or '.join(repr(k) for k in keys) or 'state dict'
    raise ValueError(f'{path}: no {wanted} entry (keys: {sorted(obj)[:8]}); '
                     'save networks as {"params_ema": state_dict} as BasicSR does.')
