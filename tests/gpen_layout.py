"""GPEN's state-dict layouts (key -> shape, FIR kernel buffers with their values), written from the module tree of
GPEN's ``face_model/gpen_model.py`` (https://github.com/yangxy/GPEN), independently of ``panininet.gpen``.

``FullGenerator(size, style_dim, n_mlp, channel_multiplier, narrow=narrow, isconcat=True)`` registers
``generator`` (``Generator``: ``style`` = [PixelNorm, EqualLinear x n_mlp], ``input.input``, ``conv1`` and
``convs`` = ``StyledConv`` (``conv`` = ModulatedConv2d with ``weight``, ``blur.kernel`` when it up-samples and
``modulation`` = EqualLinear; ``noise.weight``; ``activate.bias`` over 2x the channels), ``to_rgb1`` / ``to_rgbs``
= ``ToRGB`` (``upsample.kernel``, ``conv``, ``bias``)), then ``ecd0`` .. ``ecd{log2(size) - 2}`` (Sequential of
one ``ConvLayer``: [Blur when down-sampling, EqualConv2d without bias, FusedLeakyReLU]) and ``final_linear``
(Sequential of one EqualLinear). ``Discriminator`` registers ``convs`` (ConvLayer 1x1, then ``ResBlock``s with
``conv1``, ``conv2``, ``skip``), ``final_conv``, ``final_linear`` (two EqualLinear).
"""
import math
from collections import OrderedDict

import torch


def gpen_channels(channel_multiplier, narrow):
    """GPEN's channel table (``gpen_model.py``)."""
    cm, n = channel_multiplier, narrow
    return {4: int(512 * n), 8: int(512 * n), 16: int(512 * n), 32: int(512 * n), 64: int(256 * cm * n),
            128: int(128 * cm * n), 256: int(64 * cm * n), 512: int(32 * cm * n), 1024: int(16 * cm * n),
            2048: int(8 * cm * n)}


def _kernel(factor):
    k = torch.tensor([1., 3., 3., 1.])
    k = k[None, :] * k[:, None]
    return k / k.sum() * factor**2


def full_generator_layout(size, style_dim=512, n_mlp=8, channel_multiplier=2, narrow=1):
    """OrderedDict key -> shape tuple, or key -> tensor for the FIR kernel buffers."""
    ch = gpen_channels(channel_multiplier, narrow)
    out = OrderedDict()
    for i in range(1, n_mlp + 1):
        out[f'generator.style.{i}.weight'] = (style_dim, style_dim)
        out[f'generator.style.{i}.bias'] = (style_dim, )
    out['generator.input.input'] = (1, ch[4], 4, 4)

    def styled(name, cin, cout, upsample):
        out[f'{name}.conv.weight'] = (1, cout, cin, 3, 3)
        if upsample:
            out[f'{name}.conv.blur.kernel'] = _kernel(2)
        out[f'{name}.conv.modulation.weight'] = (cin, style_dim)
        out[f'{name}.conv.modulation.bias'] = (cin, )
        out[f'{name}.noise.weight'] = (1, )
        out[f'{name}.activate.bias'] = (2 * cout, )

    def to_rgb(name, cin, upsample):
        out[f'{name}.bias'] = (1, 3, 1, 1)
        if upsample:
            out[f'{name}.upsample.kernel'] = _kernel(2)
        out[f'{name}.conv.weight'] = (1, 3, cin, 1, 1)
        out[f'{name}.conv.modulation.weight'] = (cin, style_dim)
        out[f'{name}.conv.modulation.bias'] = (cin, )

    styled('generator.conv1', ch[4], ch[4], False)
    to_rgb('generator.to_rgb1', 2 * ch[4], False)
    log_size = int(math.log2(size))
    cin = ch[4]
    for j, i in enumerate(range(3, log_size + 1)):
        cout = ch[2**i]
        styled(f'generator.convs.{2 * j}', 2 * cin, cout, True)
        styled(f'generator.convs.{2 * j + 1}', 2 * cout, cout, False)
        to_rgb(f'generator.to_rgbs.{j}', 2 * cout, True)
        cin = cout
    out['ecd0.0.0.weight'] = (ch[size], 3, 1, 1)
    out['ecd0.0.1.bias'] = (ch[size], )
    cin = ch[size]
    for i in range(log_size, 2, -1):
        name = f'ecd{log_size - i + 1}'
        cout = ch[2**(i - 1)]
        out[f'{name}.0.0.kernel'] = _kernel(1)
        out[f'{name}.0.1.weight'] = (cout, cin, 3, 3)
        out[f'{name}.0.2.bias'] = (cout, )
        cin = cout
    out['final_linear.0.weight'] = (style_dim, ch[4] * 16)
    out['final_linear.0.bias'] = (style_dim, )
    return out


def discriminator_layout(size, channel_multiplier=2, narrow=1):
    """OrderedDict key -> shape tuple, or key -> tensor for the FIR kernel buffers."""
    ch = gpen_channels(channel_multiplier, narrow)
    out = OrderedDict()
    out['convs.0.0.weight'] = (ch[size], 3, 1, 1)
    out['convs.0.1.bias'] = (ch[size], )
    cin = ch[size]
    log_size = int(math.log2(size))
    for k, i in enumerate(range(log_size, 2, -1), start=1):
        cout = ch[2**(i - 1)]
        out[f'convs.{k}.conv1.0.weight'] = (cin, cin, 3, 3)
        out[f'convs.{k}.conv1.1.bias'] = (cin, )
        out[f'convs.{k}.conv2.0.kernel'] = _kernel(1)
        out[f'convs.{k}.conv2.1.weight'] = (cout, cin, 3, 3)
        out[f'convs.{k}.conv2.2.bias'] = (cout, )
        out[f'convs.{k}.skip.0.kernel'] = _kernel(1)
        out[f'convs.{k}.skip.1.weight'] = (cout, cin, 1, 1)
        cin = cout
    out['final_conv.0.weight'] = (ch[4], cin + 1, 3, 3)
    out['final_conv.1.bias'] = (ch[4], )
    out['final_linear.0.weight'] = (ch[4], ch[4] * 16)
    out['final_linear.0.bias'] = (ch[4], )
    out['final_linear.1.weight'] = (1, ch[4])
    out['final_linear.1.bias'] = (1, )
    return out


def random_state(layout, seed=0):
    """A state dict in ``layout``: random weights, the FIR kernels as given."""
    g = torch.Generator().manual_seed(seed)
    return OrderedDict((k, v.clone() if isinstance(v, torch.Tensor) else torch.randn(v, generator=g) * 0.2)
                       for k, v in layout.items())


def shapes(state_or_layout):
    """key -> shape tuple of a state dict or layout."""
    return {k: tuple(v.shape) if isinstance(v, torch.Tensor) else tuple(v) for k, v in state_or_layout.items()}
