"""The one reader of weight files: ours, BasicSR's, official Panini-Net/MoCo, MMGen StyleGAN2, torchvision VGG.

Every weights file panininet reads goes through :func:`load_checkpoint_file`. A PyTorch file is read with
``torch.load(..., map_location, weights_only=True)``, which refuses any pickle that would import or call something
outside PyTorch's allow-list. A second try allows only numpy scalar and array reconstruction (what training scripts
sometimes leave in ``meta``, e.g. a numpy seed), under numpy 1's and numpy 2's module names. There is no unsafe
fallback: a file that still needs more is refused with a message naming the file and the way out. Callers that
know a few more harmless types (a training state's ``collections.Counter``) pass them as ``safe_globals``.

A ``.safetensors`` file (recognised by its header, whatever its name) holds tensors and string metadata only; it is
read with the ``safetensors`` package (the ``[safetensors]`` extra). :func:`panininet.atomic.save_checkpoint_file`
writes either format; in a safetensors file (:func:`safetensors_payload`) the state dict of the first of
``params_ema`` / ``params`` keeps its own key names (what ComfyUI or spandrel load), further state dicts are stored
under ``<entry>.`` prefixes, and the other entries (``arch``, ...) go to the metadata as JSON, so that reading the
file gives back the checkpoint dict that was saved.

:func:`pick_params` finds the network state dict inside a file (``params_ema`` / ``params`` / a bare state dict) and
:func:`strip_prefix` removes a key prefix such as DataParallel's ``module.``; the converters build on these three
(:mod:`panininet.weights.panini_checkpoint`, :mod:`~panininet.weights.official`,
:mod:`~panininet.weights.gpen_checkpoint`). This module imports nothing of panininet's.
"""
import json
import os.path as osp
import pickle
from collections import OrderedDict

import torch

# numpy's module paths: numpy 1.x pickles name ``numpy.core.*``, numpy 2 renamed the package ``numpy._core``
_NUMPY_CORE_PATHS = ('numpy.core', 'numpy._core')


def _numpy_safe_globals():
    """numpy callables that only rebuild scalars, dtypes and arrays (no code execution), under both module paths.

    Files written under numpy 1.x (GFP-GAN's landmark files, BasicSR-era ``meta`` entries with numpy seeds) name
    ``numpy.core.multiarray.scalar`` / ``numpy.core.multiarray._reconstruct``; numpy 2 writes
    ``numpy._core.multiarray.*``. Both names map to the installed numpy's two functions; nothing else under either
    path is allowed (``numpy.core.multiarray.fromfile`` stays refused).

    Returns:
        list: Objects and ``(object, 'module.name')`` pairs for ``torch.serialization.safe_globals``.
    """
    try:
        import numpy as np
    except ImportError:  # pragma: no cover (numpy is a dependency)
        return []
    try:
        from numpy._core import multiarray
    except ImportError:  # numpy < 2
        from numpy.core import multiarray
    dtype_classes = [type(np.dtype(t)) for t in ('bool', 'int8', 'int16', 'int32', 'int64', 'uint8', 'uint16',
                                                 'uint32', 'uint64', 'float16', 'float32', 'float64')]
    named = [(getattr(multiarray, fn), f'{path}.multiarray.{fn}') for path in _NUMPY_CORE_PATHS
             for fn in ('scalar', '_reconstruct')]
    return [np.ndarray, np.dtype, *dtype_classes, *named]


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
        raise FileNotFoundError(f'checkpoint {path!r} does not exist (give the path of a .pth or .safetensors file)')
    if is_safetensors_file(path):
        return _load_safetensors(path, map_location)
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


# ------------------------------------------------------------------------------------------------------ safetensors
SAFETENSORS_EXT = '.safetensors'
CHECKPOINT_FORMATS = ('pth', 'safetensors')
_META_KEY = 'panininet'  # metadata entry that records the checkpoint's layout (JSON)
_STATE_KEYS = ('params_ema', 'params')  # the state dict stored without a prefix: the first of these present


def is_safetensors_file(path):
    """Whether ``path`` starts like a safetensors file (8-byte little-endian header length, then a JSON object).

    Args:
        path (str): Existing file.

    Returns:
        bool: True for a safetensors file, whatever its extension.
    """
    with open(path, 'rb') as f:
        head = f.read(9)
    if len(head) < 9 or head[8:9] != b'{':
        return False
    return int.from_bytes(head[:8], 'little') <= osp.getsize(path) - 8


def import_safetensors():
    """The safetensors package, or an ImportError naming the extra."""
    try:
        import safetensors.torch
    except ImportError as err:
        raise ImportError('Reading or writing .safetensors files needs the safetensors package: pip install '
                          '"panininet[safetensors]" (or pip install safetensors).') from err
    return safetensors


def _load_safetensors(path, map_location='cpu'):
    """The checkpoint dict :func:`panininet.atomic.save_checkpoint_file` saved, or a foreign file's bare state dict."""
    safetensors = import_safetensors()
    device = str(map_location) if isinstance(map_location, (str, torch.device)) else 'cpu'
    try:
        with safetensors.safe_open(path, framework='pt', device=device) as f:
            metadata = f.metadata() or {}
            tensors = OrderedDict((k, f.get_tensor(k)) for k in f.keys())
        layout = json.loads(metadata[_META_KEY]) if _META_KEY in metadata else None
    except (safetensors.SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(_unreadable(path, err, 'safetensors')) from None
    if layout is None:
        return tensors
    obj = dict(layout.get('extra', {}))
    for entry, prefix in layout['entries'].items():
        obj[entry] = OrderedDict((k[len(prefix):], v) for k, v in tensors.items()
                                 if k.startswith(prefix) and (prefix or not _prefixed(k, layout['entries'])))
    return obj


def _prefixed(key, entries):
    return any(prefix and key.startswith(prefix) for prefix in entries.values())


def checkpoint_format(path, file_format=None):
    """The format :func:`panininet.atomic.save_checkpoint_file` writes: ``file_format``, else from the extension.

    Args:
        path (str): Destination.
        file_format (str | None): 'pth', 'safetensors', or None / 'auto' (``.safetensors`` files are safetensors,
            others pth). Default: None.

    Returns:
        str: 'pth' or 'safetensors'.
    """
    if file_format in (None, 'auto'):
        return 'safetensors' if str(path).lower().endswith(SAFETENSORS_EXT) else 'pth'
    if file_format not in CHECKPOINT_FORMATS:
        raise ValueError(f'checkpoint format {file_format!r}: use one of {", ".join(CHECKPOINT_FORMATS)}')
    return file_format


def safetensors_payload(obj, path='<checkpoint>'):
    """What a safetensors file of ``obj`` holds (written by :func:`panininet.atomic.save_checkpoint_file`).

    Args:
        obj (dict): e.g. ``{'params_ema': state_dict, 'params': state_dict, 'arch': {...}}``, or a bare state dict.
            Every value is either a state dict (str -> tensor) or JSON-serialisable.
        path (str): For error messages.

    Returns:
        tuple[OrderedDict, dict]: The tensors (the first of ``params_ema`` / ``params`` under its own key names,
        other state dicts under ``<entry>.``) and the string metadata (the layout and the other entries as JSON).

    Raises:
        ValueError: ``obj`` has a value safetensors cannot hold (says which).
    """
    if obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        return _plain_tensors(obj, ''), {'format': 'pt'}
    return _flatten_for_safetensors(obj, path)


def _plain_tensors(state_dict, prefix, seen=None):
    """Contiguous CPU tensors keyed ``prefix + key``; one sharing memory with a tensor already stored is cloned."""
    seen = set() if seen is None else seen
    out = OrderedDict()
    for k, v in state_dict.items():
        v = v.detach().cpu().contiguous()
        ptr = v.untyped_storage().data_ptr() if v.numel() else None
        if ptr in seen:
            v = v.clone()
        elif ptr is not None:
            seen.add(ptr)
        out[prefix + k] = v
    return out


def _flatten_for_safetensors(obj, path):
    states = [k for k, v in obj.items() if isinstance(v, dict) and v and all(isinstance(t, torch.Tensor)
                                                                           for t in v.values())]
    states.sort(key=lambda k: _STATE_KEYS.index(k) if k in _STATE_KEYS else len(_STATE_KEYS))
    entries = {k: ('' if i == 0 else f'{k}.') for i, k in enumerate(states)}
    tensors, seen = OrderedDict(), set()
    for entry, prefix in entries.items():
        part = _plain_tensors(obj[entry], prefix, seen)
        clash = next((k for k in part if k in tensors or (not prefix and _prefixed(k, entries))), None)
        if clash is not None:
            raise ValueError(f'{path}: key {clash!r} of {entry!r} clashes with the prefix of another state dict; '
                             'save it as .pth')
        tensors.update(part)
    extra = {k: v for k, v in obj.items() if k not in entries}
    try:
        layout = json.dumps({'entries': entries, 'extra': extra})
    except TypeError as err:
        raise ValueError(f'{path}: safetensors holds tensors and JSON metadata only; an entry of the checkpoint is '
                         f'neither ({err}); save it as .pth') from None
    return tensors, {'format': 'pt', _META_KEY: layout}


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


def _unreadable(path, err, kind='PyTorch checkpoint'):
    lines = [line.strip() for line in str(err).strip().splitlines() if line.strip()]
    # the weights-only unpickler's own reason ('Unsupported operand 255') rather than its boilerplate first line
    reason = next((line for line in lines if line.startswith('Unsupported')), lines[0] if lines else 'no message')
    return (f'{path}: not a readable {kind}, truncated or another kind of file '
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
