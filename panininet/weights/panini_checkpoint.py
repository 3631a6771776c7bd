"""Panini-Net's weight files, ours and official, into PaniniNet / DegradationEncoder / StyleGAN2 state dicts.

The path of a file is one way: :func:`~panininet.weights.checkpoint.load_checkpoint_file` reads it, the official
converter (:mod:`panininet.weights.official`) renames the keys when it is an official MMEditing file, and the caller
(a family, an arch's ``*_load_path``) loads the state dict into its network. :func:`prepare_model_file` also caches an
official file's conversion under the weights root (:func:`panininet.weights.releases.weights_root`).
"""
import os.path as osp
from collections import OrderedDict

from panininet.atomic import torch_save_atomic
from panininet.weights import official
from panininet.weights.checkpoint import load_checkpoint_file, pick_params, strip_prefix
from panininet.weights.releases import sha256sum, weights_root


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


def prepare_model_file(path, weights_dir=None):
    """Load a PaniniNet weights file, converting an official checkpoint once and caching the result.

    Our format (``{'params_ema'|'params': state_dict, 'arch': {...}}``) is read directly. An official MMEditing
    checkpoint is converted by :func:`load_panini_weights` and saved (atomically) to
    ``<weights root>/converted/<name>-<sha256[:12]>.pth``; later runs read the cached file.

    Args:
        path (str): Weights file.
        weights_dir (str | None): Weights root for the cache. Default: None.

    Returns:
        tuple[dict, dict | None]: (state_dict, arch options or None).
    """
    raw = load_checkpoint_file(path, map_location='cpu')
    if not official.is_official_panini_checkpoint(raw):
        return panini_weights(raw, path)
    cache_dir = osp.join(weights_root(weights_dir), 'converted')
    stem = osp.splitext(osp.basename(path))[0]
    cached = osp.join(cache_dir, f'{stem}-{sha256sum(path)[:12]}.pth')
    if osp.isfile(cached):
        return load_panini_weights(cached)
    state_dict, arch = official.convert_official_checkpoint(raw)
    torch_save_atomic({'params_ema': state_dict, 'arch': arch}, cached)
    return state_dict, arch
