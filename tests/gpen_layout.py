"""GPEN's state-dict layouts (key -> shape, FIR kernel buffers with their values), written from the module tree of
GPEN's ``face_model/gpen_model.py`` (https://github.com/yangxy/GPEN), independently of
``panininet.weights.gpen_checkpoint``.

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
from torch.nn import functional as F


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


# ---------------------------------------------------------------------------------------------------------------------
# GPEN's FullGenerator forward, written from gpen_model.py with plain torch ops on a state dict in its layout
# (rosinality's math: equalised layers, modulated convs, upfirdn2d, fused leaky ReLU), to check GPENNet against
# ---------------------------------------------------------------------------------------------------------------------
def _upfirdn2d(x, kernel, up=1, down=1, pad=(0, 0)):
    """rosinality's upfirdn2d_native: zero insertion, padding, FIR (a true convolution), decimation."""
    b, c, h, w = x.shape
    if up > 1:
        y = x.new_zeros(b, c, h * up, w * up)
        y[:, :, ::up, ::up] = x
        x = y
    x = F.pad(x, (pad[0], pad[1], pad[0], pad[1]))
    k = torch.flip(kernel, [0, 1]).to(x)[None, None].repeat(c, 1, 1, 1)
    x = F.conv2d(x, k, groups=c)
    return x[:, :, ::down, ::down]


def _lrelu(x, bias):
    shape = (1, -1) + (1, ) * (x.ndim - 2)
    return F.leaky_relu(x + bias.view(shape), 0.2) * 2**0.5


def _equal_linear(sd, name, x, lr_mul=1.0, activate=False):
    w, b = sd[f'{name}.weight'], sd[f'{name}.bias']
    out = F.linear(x, w * (lr_mul / math.sqrt(w.shape[1])))
    return _lrelu(out, b * lr_mul) if activate else out + b * lr_mul


def _modulated_conv(sd, name, x, style, demodulate=True, upsample=False):
    weight = sd[f'{name}.weight']  # (1, out, in, k, k)
    _, cout, cin, k, _ = weight.shape
    b = x.shape[0]
    s = _equal_linear(sd, f'{name}.modulation', style).view(b, 1, cin, 1, 1)
    weight = weight / math.sqrt(cin * k * k) * s
    if demodulate:
        weight = weight * torch.rsqrt(weight.pow(2).sum([2, 3, 4]) + 1e-8).view(b, cout, 1, 1, 1)
    if upsample:
        weight = weight.transpose(1, 2).reshape(b * cin, cout, k, k)
        out = F.conv_transpose2d(x.reshape(1, b * cin, *x.shape[2:]), weight, stride=2, groups=b)
        out = out.view(b, cout, *out.shape[2:])
        return _upfirdn2d(out, sd[f'{name}.blur.kernel'], pad=(1, 1))
    out = F.conv2d(x.reshape(1, b * cin, *x.shape[2:]), weight.reshape(b * cout, cin, k, k), padding=k // 2, groups=b)
    return out.view(b, cout, *out.shape[2:])


def full_generator_forward(sd, x):
    """GPEN's ``FullGenerator.forward(x)[0]`` for a state dict in :func:`full_generator_layout`'s layout."""
    n_ecd = len({k.split('.')[0] for k in sd if k.startswith('ecd')})
    noise = []
    for i in range(n_ecd):
        if i == 0:
            x = _lrelu(F.conv2d(x, sd['ecd0.0.0.weight'] / math.sqrt(3)), sd['ecd0.0.1.bias'])
        else:
            w = sd[f'ecd{i}.0.1.weight']
            x = _upfirdn2d(x, sd[f'ecd{i}.0.0.kernel'], pad=(2, 2))
            x = _lrelu(F.conv2d(x, w / math.sqrt(w[0].numel()), stride=2), sd[f'ecd{i}.0.2.bias'])
        noise.append(x)
    z = _equal_linear(sd, 'final_linear.0', x.flatten(1), activate=True)
    noise = [n for n in noise for _ in range(2)][::-1][1:]
    n_mlp = sum(1 for k in sd if k.startswith('generator.style.') and k.endswith('.weight'))
    w = z * torch.rsqrt(z.pow(2).mean(1, keepdim=True) + 1e-8)
    for i in range(1, n_mlp + 1):
        w = _equal_linear(sd, f'generator.style.{i}', w, lr_mul=0.01, activate=True)

    def styled(name, y, n, upsample=False):
        y = _modulated_conv(sd, f'{name}.conv', y, w, upsample=upsample)
        y = torch.cat([y, sd[f'{name}.noise.weight'] * n], 1)
        return _lrelu(y, sd[f'{name}.activate.bias'])

    def to_rgb(name, y, skip=None):
        out = _modulated_conv(sd, f'{name}.conv', y, w, demodulate=False) + sd[f'{name}.bias']
        if skip is not None:
            out = out + _upfirdn2d(skip, sd[f'{name}.upsample.kernel'], up=2, pad=(2, 1))
        return out

    out = sd['generator.input.input'].repeat(x.shape[0], 1, 1, 1)
    out = styled('generator.conv1', out, noise[0])
    skip = to_rgb('generator.to_rgb1', out)
    num_rgbs = len({k.split('.')[2] for k in sd if k.startswith('generator.to_rgbs.')})
    for j in range(num_rgbs):
        out = styled(f'generator.convs.{2 * j}', out, noise[1 + 2 * j], upsample=True)
        out = styled(f'generator.convs.{2 * j + 1}', out, noise[2 + 2 * j])
        skip = to_rgb(f'generator.to_rgbs.{j}', out, skip)
    return skip
