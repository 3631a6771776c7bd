"""GPEN's released weights (Yang et al., CVPR 2021, https://github.com/yangxy/GPEN) in our networks' layouts.

MMRB-Net fine-tunes "the StyleGAN2 model retrained by [GPEN]" and GPEN's discriminator (Sec. III-C, IV-B). GPEN
ships them as ``GPEN-BFR-512.pth`` (the state dict of ``face_model/gpen_model.py``'s ``FullGenerator(512, 512, 8,
channel_multiplier=2, isconcat=True)``, loaded strict by GPEN's ``FaceGAN``) and ``GPEN-BFR-512-D.pth`` (its
``Discriminator(512, channel_multiplier=2)``); GPEN's training checkpoints hold the same under ``g_ema``/``d``.
Their modules are rosinality's StyleGAN2; ours are BasicSR's, with other names:

=========================================  ==================================================================
GPEN ``FullGenerator``                     ours
=========================================  ==================================================================
``generator.style.{i}.*``                  :class:`~panininet.archs.mmrb_arch.ConcatStyleGAN2` ``style_mlp.{i}.*``
``generator.input.input``                  ``constant_input.weight``
``generator.conv1`` / ``convs.{i}``        ``style_conv1`` / ``style_convs.{i}``: ``conv.*`` -> ``modulated_conv.*``,
                                           ``noise.weight`` -> ``noise_weight``, ``activate.bias`` unchanged
``generator.to_rgb1`` / ``to_rgbs.{i}``    same names: ``conv.*`` -> ``modulated_conv.*``, ``bias`` unchanged
``ecd{i}.0.*``, ``final_linear.0.*``       :class:`~panininet.archs.gpen_arch.GPENNet` ``encoder.convs.{i}.*``,
                                           ``encoder.final_linear.*`` (GPEN's own encoder, for ``-v gpen512``)
GPEN ``Discriminator`` ``convs.*``         BasicSR ``StyleGAN2Discriminator`` ``conv_body.*``; ``final_conv.*``,
                                           ``final_linear.*`` unchanged
=========================================  ==================================================================

GPEN stores its FIR kernels (``*.blur.kernel``, ``*.upsample.kernel``, ``ecd{i}.0.0.kernel``,
``convs.{i}.conv2.0.kernel``, ``convs.{i}.skip.0.kernel``) as buffers; BasicSR computes the same ones from
``resample_kernel=(1, 3, 3, 1)``. The converters check each stored kernel against that value and drop it (a file
with other kernels is refused); the inverse converters write them back. There are no noise buffers in GPEN's
``FullGenerator`` (its noise inputs are the encoder's features).

One difference in behaviour, not in weights: GPEN's discriminator takes the minibatch-stddev over the whole batch,
BasicSR's over groups of ``min(batch, 4)``, the same at the paper's batch size 4.

Everything here is a pure function of state dicts; files are read by the callers through
:func:`panininet.weights.checkpoint.load_checkpoint_file`.
"""
import re
from collections import OrderedDict

import torch
from basicsr.archs.stylegan2_arch import make_resample_kernel

from panininet.archs.gpm import stylegan2_channels
from panininet.weights.checkpoint import strip_prefix

RESAMPLE_KERNEL = (1, 3, 3, 1)
GENERATOR_PREFIX = 'generator.'

# inner names of one style block and one ToRGB: GPEN -> ours
_STYLED_CONV = {
    'conv.weight': 'modulated_conv.weight',
    'conv.modulation.weight': 'modulated_conv.modulation.weight',
    'conv.modulation.bias': 'modulated_conv.modulation.bias',
    'noise.weight': 'noise_weight',
    'activate.bias': 'activate.bias',
}
_TO_RGB = {
    'conv.weight': 'modulated_conv.weight',
    'conv.modulation.weight': 'modulated_conv.modulation.weight',
    'conv.modulation.bias': 'modulated_conv.modulation.bias',
    'bias': 'bias',
}
_STYLED_CONV_INV = {v: k for k, v in _STYLED_CONV.items()}
_TO_RGB_INV = {v: k for k, v in _TO_RGB.items()}
_DROP = object()  # a FIR kernel buffer: checked, then dropped


def fir_kernel(upsample_factor=1):
    """The (1, 3, 3, 1) FIR kernel as GPEN stores it (times ``factor**2`` where it up-samples), shape (4, 4)."""
    return make_resample_kernel(RESAMPLE_KERNEL) * upsample_factor**2


def _check_fir(key, value, factor, path):
    if tuple(value.shape) != (4, 4) or not torch.allclose(value.float().cpu(), fir_kernel(factor), atol=1e-6):
        raise ValueError(f'{path}: {key} is not the (1, 3, 3, 1) FIR kernel GPEN uses; this file was made with '
                         'another resample kernel, which panininet does not convert.')


# ---------------------------------------------------------------------------------------------------------------------
# generator (prior) and GPEN's encoder
# ---------------------------------------------------------------------------------------------------------------------
def _generator_key(key):
    """GPEN ``Generator`` key (no ``generator.`` prefix) -> (our prior key | _DROP, FIR up-sampling factor)."""
    m = re.fullmatch(r'style\.(\d+)\.(weight|bias)', key)
    if m:
        return f'style_mlp.{m[1]}.{m[2]}', None
    if key == 'input.input':
        return 'constant_input.weight', None
    m = re.fullmatch(r'(conv1|convs\.(\d+))\.(.+)', key)
    if m:
        block = 'style_conv1' if m[1] == 'conv1' else f'style_convs.{m[2]}'
        if m[3] == 'conv.blur.kernel':
            return _DROP, 2
        if m[3] in _STYLED_CONV:
            return f'{block}.{_STYLED_CONV[m[3]]}', None
    m = re.fullmatch(r'(to_rgb1|to_rgbs\.\d+)\.(.+)', key)
    if m:
        if m[2] == 'upsample.kernel':
            return _DROP, 2
        if m[2] in _TO_RGB:
            return f'{m[1]}.{_TO_RGB[m[2]]}', None
    raise KeyError(key)


def _encoder_key(key):
    """GPEN ``FullGenerator`` encoder key -> (our ``GPENEncoder`` key | _DROP, factor)."""
    m = re.fullmatch(r'ecd(\d+)\.0\.(\d+)\.(weight|bias|kernel)', key)
    if m:
        if m[3] == 'kernel':
            return _DROP, 1
        return f'convs.{m[1]}.{m[2]}.{m[3]}', None
    m = re.fullmatch(r'final_linear\.0\.(weight|bias)', key)
    if m:
        return f'final_linear.{m[1]}', None
    raise KeyError(key)


def _convert(state_dict, mapper, path):
    out = OrderedDict()
    for key, value in state_dict.items():
        try:
            ours, factor = mapper(key)
        except KeyError:
            raise ValueError(f'{path}: unexpected key {key!r} for a GPEN file') from None
        if ours is _DROP:
            _check_fir(key, value, factor, path)
        else:
            out[ours] = value
    return out


def is_gpen_generator(state_dict):
    """Whether ``state_dict`` is in GPEN's ``FullGenerator`` layout."""
    return isinstance(state_dict, dict) and 'generator.input.input' in state_dict


def is_gpen_discriminator(state_dict):
    """Whether ``state_dict`` is in GPEN's (rosinality's) ``Discriminator`` layout."""
    return isinstance(state_dict, dict) and 'convs.0.0.weight' in state_dict and 'final_conv.0.weight' in state_dict


def _pick(obj, entry, is_layout):
    """``obj[entry]`` or ``obj`` itself, ``module.`` prefixes removed, if it is in the layout; else None."""
    for candidate in ((obj.get(entry), obj) if isinstance(obj, dict) else ()):
        if isinstance(candidate, dict):
            candidate = strip_prefix(candidate, 'module.')
            if is_layout(candidate):
                return candidate
    return None


def pick_gpen_generator(obj, path='<checkpoint>'):
    """GPEN's ``FullGenerator`` state dict in a released file (the bare state dict) or a training checkpoint
    (``g_ema``), ``module.`` prefixes removed.

    Raises:
        ValueError: Neither layout (the message says what was looked for).
    """
    obj = _pick(obj, 'g_ema', is_gpen_generator)
    if obj is None:
        raise ValueError(f'{path}: not a GPEN generator file (looked for generator.input.input, bare or under '
                         "'g_ema'); give GPEN-BFR-512.pth or a GPEN training checkpoint.")
    return obj


def pick_gpen_discriminator(obj, path='<checkpoint>'):
    """GPEN's ``Discriminator`` state dict in a released ``*-D.pth`` file or a training checkpoint (``d``).

    Raises:
        ValueError: Neither layout.
    """
    obj = _pick(obj, 'd', is_gpen_discriminator)
    if obj is None:
        raise ValueError(f'{path}: not a GPEN discriminator file (looked for convs.0.0.weight and '
                         "final_conv.0.weight, bare or under 'd'); give GPEN-BFR-512-D.pth.")
    return obj


def gpen_generator_to_prior(state_dict, path='<checkpoint>'):
    """The StyleGAN2 of a GPEN ``FullGenerator`` state dict, for :class:`ConcatStyleGAN2` (MMRB-Net's prior).

    GPEN's encoder (``ecd*``, ``final_linear``) is left out: MMRB-Net has its own codec.

    Args:
        state_dict (dict): GPEN ``FullGenerator`` state dict (see :func:`pick_gpen_generator`).
        path (str): For error messages.

    Returns:
        OrderedDict: Loads strict into ``ConcatStyleGAN2`` of the same size and widths.
    """
    sub = OrderedDict((k[len(GENERATOR_PREFIX):], v) for k, v in state_dict.items() if k.startswith(GENERATOR_PREFIX))
    return _convert(sub, _generator_key, path)


def gpen_encoder_to_ours(state_dict, path='<checkpoint>'):
    """GPEN's encoder (``ecd*``, ``final_linear``) of a ``FullGenerator`` state dict, for ``GPENEncoder``."""
    sub = OrderedDict((k, v) for k, v in state_dict.items() if not k.startswith(GENERATOR_PREFIX))
    return _convert(sub, _encoder_key, path)


def prior_to_gpen_generator(prior_state, encoder_state=None):
    """Inverse of :func:`gpen_generator_to_prior` (and of :func:`gpen_encoder_to_ours` when ``encoder_state``):
    a GPEN ``FullGenerator`` state dict with its FIR kernel buffers, e.g. to run a fine-tuned prior in GPEN's code.

    Args:
        prior_state (dict): ``ConcatStyleGAN2`` state dict.
        encoder_state (dict | None): ``GPENEncoder`` state dict. Default: None (no ``ecd*`` keys).

    Returns:
        OrderedDict: GPEN key -> tensor.
    """
    out = OrderedDict()
    for key, value in prior_state.items():
        out[GENERATOR_PREFIX + _prior_key_to_gpen(key)] = value
    for key in prior_state:
        m = re.fullmatch(r'style_convs\.(\d+)\.modulated_conv\.weight', key)
        if m and int(m[1]) % 2 == 0:  # the first block of each resolution up-samples
            out[f'{GENERATOR_PREFIX}convs.{m[1]}.conv.blur.kernel'] = fir_kernel(2)
        m = re.fullmatch(r'to_rgbs\.(\d+)\.bias', key)
        if m:
            out[f'{GENERATOR_PREFIX}to_rgbs.{m[1]}.upsample.kernel'] = fir_kernel(2)
    for key, value in (encoder_state or {}).items():
        m = re.fullmatch(r'convs\.(\d+)\.(\d+)\.(weight|bias)', key)
        if m:
            out[f'ecd{m[1]}.0.{m[2]}.{m[3]}'] = value
            if m[1] != '0' and m[2] == '1' and m[3] == 'weight':  # down-sampling layer: Blur, conv, act
                out[f'ecd{m[1]}.0.0.kernel'] = fir_kernel(1)
        elif key.startswith('final_linear.'):
            out['final_linear.0.' + key[len('final_linear.'):]] = value
        else:
            raise ValueError(f'unexpected GPENEncoder key {key!r}')
    return out


def _prior_key_to_gpen(key):
    m = re.fullmatch(r'style_mlp\.(\d+)\.(weight|bias)', key)
    if m:
        return f'style.{m[1]}.{m[2]}'
    if key == 'constant_input.weight':
        return 'input.input'
    m = re.fullmatch(r'(style_conv1|style_convs\.(\d+))\.(.+)', key)
    if m and m[3] in _STYLED_CONV_INV:
        block = 'conv1' if m[1] == 'style_conv1' else f'convs.{m[2]}'
        return f'{block}.{_STYLED_CONV_INV[m[3]]}'
    m = re.fullmatch(r'(to_rgb1|to_rgbs\.\d+)\.(.+)', key)
    if m and m[2] in _TO_RGB_INV:
        return f'{m[1]}.{_TO_RGB_INV[m[2]]}'
    raise ValueError(f'unexpected ConcatStyleGAN2 key {key!r}')


def gpen_generator_config(state_dict):
    """The ``ConcatStyleGAN2`` arguments of a GPEN ``FullGenerator`` state dict, from its shapes.

    Returns:
        dict: ``out_size``, ``num_style_feat``, ``num_mlp``, ``channel_multiplier``, ``narrow``. Below 64x64 the
        widths do not depend on the multiplier; then GPEN's default, 2, is given.
    """
    num_rgbs = sum(1 for k in state_dict if re.fullmatch(r'generator\.to_rgbs\.\d+\.bias', k))
    out_size = 4 * 2**num_rgbs
    c4 = state_dict['generator.input.input'].shape[1]
    narrow = c4 / 512
    widths = {4 * 2**(k + 1): state_dict[f'generator.convs.{2 * k}.conv.weight'].shape[1] for k in range(num_rgbs)}
    multiplier = next((cm for cm in (2, 1, 4) if all(stylegan2_channels(cm, narrow)[r] == c
                                                      for r, c in widths.items())), None)
    if multiplier is None:
        raise ValueError(f'GPEN generator widths {widths} fit no StyleGAN2 channel multiplier (1, 2, 4) at '
                         f'narrow {narrow}')
    return {
        'out_size': out_size,
        'num_style_feat': state_dict['generator.conv1.conv.modulation.weight'].shape[1],
        'num_mlp': sum(1 for k in state_dict if re.fullmatch(r'generator\.style\.\d+\.weight', k)),
        'channel_multiplier': multiplier,
        'narrow': narrow,
    }


# ---------------------------------------------------------------------------------------------------------------------
# discriminator
# ---------------------------------------------------------------------------------------------------------------------
def _discriminator_key(key):
    m = re.fullmatch(r'convs\.(\d+)\.(.+)', key)
    if m:
        if m[2].endswith('.0.kernel'):  # ResBlock conv2 / skip: Blur before the strided conv
            return _DROP, 1
        return f'conv_body.{m[1]}.{m[2]}', None
    if re.fullmatch(r'final_conv\.[01]\.(weight|bias)|final_linear\.[01]\.(weight|bias)', key):
        return key, None
    raise KeyError(key)


def gpen_discriminator_to_basicsr(state_dict, path='<checkpoint>'):
    """GPEN's ``Discriminator`` state dict for BasicSR's ``StyleGAN2Discriminator`` (same sizes), loads strict.

    Args:
        state_dict (dict): See :func:`pick_gpen_discriminator`.
        path (str): For error messages.

    Returns:
        OrderedDict: BasicSR key -> tensor.
    """
    return _convert(state_dict, _discriminator_key, path)


def basicsr_discriminator_to_gpen(state_dict):
    """Inverse of :func:`gpen_discriminator_to_basicsr`, FIR kernel buffers included."""
    out = OrderedDict()
    for key, value in state_dict.items():
        m = re.fullmatch(r'conv_body\.(\d+)\.(.+)', key)
        if m:
            out[f'convs.{m[1]}.{m[2]}'] = value
            if m[2] in ('conv2.1.weight', 'skip.1.weight'):
                out[f'convs.{m[1]}.{m[2][:-len("1.weight")]}0.kernel'] = fir_kernel(1)
        else:
            out[key] = value
    return out


def gpen_discriminator_config(state_dict):
    """``StyleGAN2Discriminator`` arguments (``out_size``, ``channel_multiplier``, ``narrow``) from the shapes
    (the multiplier is 2 when the widths do not depend on it, below 64x64)."""
    num_blocks = sum(1 for k in state_dict if re.fullmatch(r'convs\.\d+\.conv1\.0\.weight', k))
    out_size = 4 * 2**num_blocks
    narrow = state_dict['final_conv.0.weight'].shape[0] / 512
    widths = {out_size: state_dict['convs.0.0.weight'].shape[0]}
    widths.update({out_size // 2**i: state_dict[f'convs.{i}.conv2.1.weight'].shape[0]
                   for i in range(1, num_blocks + 1)})
    multiplier = next((cm for cm in (2, 1, 4) if all(stylegan2_channels(cm, narrow)[r] == c
                                                      for r, c in widths.items())), None)
    if multiplier is None:
        raise ValueError(f'GPEN discriminator widths {widths} fit no StyleGAN2 channel multiplier (1, 2, 4)')
    return {'out_size': out_size, 'channel_multiplier': multiplier, 'narrow': narrow}
