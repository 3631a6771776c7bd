"""The one reader of weight files: ours, BasicSR's, official Panini-Net/MoCo, MMGen StyleGAN2, torchvision VGG.

Every file panininet reads with PyTorch goes through :func:`load_checkpoint_file`:
``torch.load(..., map_location, weights_only=True)``, which refuses any pickle that would import or call something
outside PyTorch's allow-list. A second try allows only numpy scalar and array reconstruction (what training scripts
sometimes leave in ``meta``, e.g. a numpy seed). There is no unsafe fallback: a file that still needs more is
refused with a message naming the file and the way out. Callers that know a few more harmless types (a training
state's ``collections.Counter``) pass them as ``safe_globals``.

:func:`pick_params` finds the network state dict inside a file (``params_ema`` / ``params`` / a bare state dict) and
:func:`strip_prefix` removes a key prefix such as DataParallel's ``module.``; the ``extract_*`` and ``load_*``
helpers build on these three for the layouts panininet knows.
"""
import os.path as osp
import pickle
from collections import OrderedDict

import torch

from panininet.weights import official


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


def extract_gpm_state(obj, path='<checkpoint>'):
    """StyleGAN2Generator weights (BasicSR key names) from a BasicSR or an MMGen StyleGAN2 checkpoint.

    BasicSR files: ``params_ema`` (else ``params``). MMGen files (what the official configs start from, e.g.
    ``stylegan2-ffhq-config-f-official_20210327_171224-bce9310c.pth``): ``state_dict`` entries ``generator_ema.*``,
    converted with the official key mapping.

    Args:
        obj (dict): Loaded checkpoint.
        path (str): For error messages.

    Returns:
        OrderedDict: State dict for BasicSR's ``StyleGAN2Generator``.
    """
    sd = obj.get('state_dict') if isinstance(obj, dict) else None
    prefix = 'generator_ema.'
    if isinstance(sd, dict) and any(k.startswith(prefix) for k in sd):
        return OrderedDict((official.convert_generator_key('generator.' + k, num_levels=0)[len('gpm.'):], v)
                           for k, v in strip_prefix(sd, prefix, only=True).items())
    return pick_params(obj, path)


def extract_dre_state(obj, path='<checkpoint>'):
    """DegradationEncoder weights from any file that holds them.

    Accepted: an official ``moco_checkpoint_*.pth.tar`` (official copy rule), an official Panini MFR file
    (``generator.deg_encoder.*``), a BasicSR-style file of a DegradationEncoder, of a MoCo (``encoder_q.*``) or of a
    PaniniNet (``dre.*``).

    Args:
        obj (dict): Loaded checkpoint.
        path (str): For error messages.

    Returns:
        OrderedDict: State dict with keys ``E.*`` and ``mlp.*``.
    """
    from panininet.archs.dre_arch import DegradationEncoder

    if official.is_official_moco_checkpoint(obj):
        num_feat = obj['state_dict'][official.MOCO_QUERY_PREFIX + 'E.0.weight'].shape[0]
        return official.moco_to_dre_state(obj, DegradationEncoder(num_feat).state_dict())
    if official.is_official_panini_checkpoint(obj):
        sd = obj.get('state_dict', obj)
        prefix = 'generator.deg_encoder.'
    else:
        sd = pick_params(obj, path)
        prefix = next((p for p in ('encoder_q.', 'dre.') if any(k.startswith(p) for k in sd)), '')
    out = strip_prefix(sd, prefix, only=True)
    if not any(k.startswith('E.') for k in out):
        raise ValueError(f'{path}: holds no DegradationEncoder weights (looked for E.*, encoder_q.E.*, dre.E.*, '
                         'module.encoder_q.E.*, generator.deg_encoder.E.*)')
    return out


def load_panini_weights(path, map_location='cpu'):
    """PaniniNet weights from our checkpoint or an official one (converted on the fly).

    Args:
        path (str): ``{'params_ema'|'params': state_dict, optional 'arch': {PaniniNet kwargs}}`` written by
            panininet/BasicSR, or an official MMEditing ``panini_*_latest.pth``.
        map_location (str | torch.device): Default: 'cpu'.

    Returns:
        tuple[dict, dict | None]: state dict for PaniniNet, and the PaniniNet kwargs when the file says them
        (always for official files: derived from the shapes) or None.
    """
    return panini_weights(load_checkpoint_file(path, map_location=map_location), path)


def panini_weights(obj, path='<checkpoint>'):
    """PaniniNet state dict and kwargs from a loaded file (see :func:`load_panini_weights`).

    Args:
        obj (dict): Loaded checkpoint, ours or official.
        path (str): For error messages.

    Returns:
        tuple[dict, dict | None]: As :func:`load_panini_weights`.
    """
    if official.is_official_panini_checkpoint(obj):
        return official.convert_official_checkpoint(obj)
    sd = pick_params(obj, path)
    arch = obj.get('arch') if isinstance(obj, dict) else None
    return sd, (dict(arch) if arch is not None else None)
