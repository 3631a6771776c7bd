"""Fast native StyleGAN2 resampling: ``upfirdn2d`` as one depthwise (transposed) convolution.

basicsr's ``upfirdn2d_native`` (rosinality's reference) reshapes ``(b, c, h, w)`` to ``b * c`` single-channel
images, inserts zeros, pads, runs a 1-channel 2-D convolution and then drops the samples a down-sampling skips. On
CPU that layout is slow (one tiny convolution per image plane), an up-sampling multiplies the three quarters of
zeros it inserted, and a down-sampling computes the outputs it throws away. :func:`upfirdn2d_fast` computes the
same thing as a single depthwise convolution over the ``c`` channels (``groups=c``), which oneDNN/cuDNN vectorise:

* up=1 (blur after a transposed conv, before a strided conv): ``conv2d(groups=c, stride=down)`` with the
  flipped kernel and the padding folded into the convolution; a down-sampling only computes the kept outputs.
* up>1 (the to_rgb skip up-sampling): ``conv_transpose2d(groups=c, stride=up)`` with the kernel, i.e. the
  polyphase form that never multiplies an inserted zero; the padding becomes the transposed conv's crop.

Any kernel works (separable or not), negative pads crop, and the ops are plain autograd, so backward and double
backward (R1 through the discriminator's blur) are exact, on any device and dtype. The result equals
``upfirdn2d_native`` up to float rounding (summation order).

:func:`fused_leaky_relu_native` is the plain bias + leaky ReLU + gain (what basicsr only has as a CUDA kernel);
:func:`fused_leaky_relu_fast` does the same after every modulated conv with one temporary instead of three when no
gradient is needed (bit-identical), :func:`fused_leaky_relu_` with none, on a tensor the caller owns.

CPU inference kernels: :func:`conv2d_accumulate_` (``acc += conv2d(x, w)`` as oneDNN's conv with a fused in-place
add), used by the dense blocks of :mod:`panininet.archs.rrdb`; :func:`eager_cpu_inference` is the one test of when
such CPU-only forwards may run, and :func:`plain_ops` switches them all off.

This module is a leaf: it imports nothing of panininet's or basicsr's.
:func:`panininet.platform.compat_basicsr.install_fast_ops`
makes these functions basicsr's native ops (CPU, and CUDA without the compiled kernels); the compiled CUDA kernels
keep being used where they were built.
"""
import contextlib

import torch
from torch import nn
from torch.nn import functional as F


def _crop_or_pad(x, dim, start, length):
    """``x[start:start + length]`` along ``dim`` (2 or 3), zero-filled where that range leaves ``x``."""
    n = x.shape[dim]
    left, right = -start, start + length - n  # F.pad crops where these are negative
    if left == 0 and right == 0:
        return x
    return F.pad(x, (left, right) if dim == 3 else (0, 0, left, right))


def upfirdn2d_fast(input, kernel, up_x, up_y, down_x, down_y, pad_x0, pad_x1, pad_y0, pad_y1, bias=None):
    """Drop-in for basicsr's ``upfirdn2d_native``: depthwise (transposed) convolution over the channels.

    Args:
        input (Tensor): Shape (b, c, h, w), any float dtype and device.
        kernel (Tensor): FIR kernel, shape (kh, kw); applied as a convolution (flipped), like the reference.
        up_x (int): Horizontal up-sampling factor (zero insertion), >= 1.
        up_y (int): Vertical up-sampling factor, >= 1.
        down_x (int): Horizontal down-sampling factor (keep every ``down_x``-th column), >= 1.
        down_y (int): Vertical down-sampling factor, >= 1.
        pad_x0 (int): Columns padded on the left after up-sampling (negative: cropped).
        pad_x1 (int): Columns padded on the right.
        pad_y0 (int): Rows padded on top.
        pad_y1 (int): Rows padded at the bottom.
        bias (Tensor | None): (c,), added to each output channel; without up-sampling it is the depthwise conv's
            bias (no pass of its own). Not in basicsr's signature. Default: None.

    Returns:
        Tensor: Shape (b, c, (h * up_y + pad_y0 + pad_y1 - kh) // down_y + 1,
        (w * up_x + pad_x0 + pad_x1 - kw) // down_x + 1), dtype and device of ``input``.
    """
    if input.ndim != 4 or kernel.ndim != 2:
        raise ValueError(f'upfirdn2d expects input (b, c, h, w) and kernel (kh, kw), got {tuple(input.shape)} and '
                         f'{tuple(kernel.shape)}.')
    if min(up_x, up_y, down_x, down_y) < 1:
        raise ValueError(f'upfirdn2d: up/down factors must be >= 1, got up=({up_x}, {up_y}), '
                         f'down=({down_x}, {down_y}).')
    _, c, in_h, in_w = input.shape
    kh, kw = kernel.shape
    if torch.jit.is_tracing():  # ONNX export: the depthwise weight needs a constant shape (channels never vary)
        c, in_h, in_w, kh, kw = int(c), int(in_h), int(in_w), int(kh), int(kw)
    out_h = (in_h * up_y + pad_y0 + pad_y1 - kh) // down_y + 1
    out_w = (in_w * up_x + pad_x0 + pad_x1 - kw) // down_x + 1
    if out_h <= 0 or out_w <= 0:
        raise ValueError(f'upfirdn2d: empty output for input {in_h}x{in_w}, up ({up_y}, {up_x}), '
                         f'down ({down_y}, {down_x}), pad ({pad_x0}, {pad_x1}, {pad_y0}, {pad_y1}), kernel {kh}x{kw}.')
    kernel = kernel.to(input.dtype)
    if up_x == 1 and up_y == 1:
        # correlation with the flipped kernel over the padded input; stride = down keeps exactly the kept outputs
        weight = torch.flip(kernel, [0, 1]).view(1, 1, kh, kw).expand(c, 1, kh, kw)
        same_y, same_x = pad_y0 == pad_y1 >= 0, pad_x0 == pad_x1 >= 0
        conv_pad = (pad_y0 if same_y else 0, pad_x0 if same_x else 0)
        x = input
        if not (same_x and same_y):  # asymmetric or negative padding: pad/crop explicitly
            x = F.pad(x, (0 if same_x else pad_x0, 0 if same_x else pad_x1,
                          0 if same_y else pad_y0, 0 if same_y else pad_y1))
        out = F.conv2d(x, weight, bias, stride=(down_y, down_x), padding=conv_pad, groups=c)
        return out
    # Up-sampling: conv_transpose2d(stride=up) with the unflipped kernel gives z, of length (n - 1) * up + k, and
    # the zero-inserted, padded, filtered signal is y[o] = z[o + k - 1 - pad0] (zero outside z).
    weight = kernel.view(1, 1, kh, kw).expand(c, 1, kh, kw)
    full_h = in_h * up_y + pad_y0 + pad_y1 - kh + 1  # outputs before down-sampling
    full_w = in_w * up_x + pad_x0 + pad_x1 - kw + 1
    start_y, start_x = kh - 1 - pad_y0, kw - 1 - pad_x0
    len_y, len_x = (in_h - 1) * up_y + kh, (in_w - 1) * up_x + kw
    # let the transposed conv crop what it can (the same amount on both sides), the rest is cropped/padded after
    crop_y = max(0, min(start_y, len_y - start_y - full_h))
    crop_x = max(0, min(start_x, len_x - start_x - full_w))
    out = F.conv_transpose2d(input, weight, stride=(up_y, up_x), padding=(crop_y, crop_x), groups=c)
    out = _crop_or_pad(out, 2, start_y - crop_y, full_h)
    out = _crop_or_pad(out, 3, start_x - crop_x, full_w)
    if down_y > 1 or down_x > 1:
        out = out[:, :, ::down_y, ::down_x]
    if bias is not None:
        out = out + bias.view(1, -1, 1, 1)
    return out


def fused_leaky_relu_native(input, bias, negative_slope=0.2, scale=2**0.5):
    """Native ``scale * leaky_relu(input + bias, negative_slope)``; bias broadcast over dim 1.

    Args:
        input (Tensor): Shape (b, c, ...) or (b, c).
        bias (Tensor | None): Shape (c,).
        negative_slope (float): Leaky ReLU slope. Default: 0.2.
        scale (float): Output gain. Default: sqrt(2).

    Returns:
        Tensor: Same shape as ``input``.
    """
    if bias is not None and bias.numel() > 0:
        rest = [1] * (input.ndim - bias.ndim - 1)
        input = input + bias.view(1, bias.shape[0], *rest)
    return F.leaky_relu(input, negative_slope=negative_slope) * scale


def fused_leaky_relu_fast(input, bias, negative_slope=0.2, scale=2**0.5):
    """``scale * leaky_relu(input + bias, negative_slope)``, in place after the bias add when no gradient is needed.

    StyleGAN2 applies this after every modulated conv, on the largest tensors of the network (32 x 1024 x 1024 per
    face at the last layer), so it is memory-bound; the plain formula makes three full-size temporaries, and on
    CPU a fresh large buffer costs more than the arithmetic (page faults). Without autograd this makes one
    temporary and does the leaky ReLU and the gain in place: the same operations in the same order, so the result
    is bit-identical to :func:`fused_leaky_relu_native`, which is used as is when a gradient is
    needed (backward and double backward unchanged). Arguments and result as :func:`fused_leaky_relu_native`.
    """
    has_bias = bias is not None and bias.numel() > 0
    if torch.is_grad_enabled() and (input.requires_grad or (has_bias and bias.requires_grad)):
        return fused_leaky_relu_native(input, bias, negative_slope, scale)
    if has_bias and input.device.type == 'cpu' and bias.dtype != input.dtype:
        bias = bias.to(input.dtype)  # CPU bf16: keep the features in bf16 (an fp32 bias would promote them)
    out = input + bias.view(1, bias.shape[0], *([1] * (input.ndim - bias.ndim - 1))) if has_bias else input.clone()
    return fused_leaky_relu_(out, None, negative_slope, scale)


def fused_leaky_relu_(input, bias, negative_slope=0.2, scale=2**0.5):
    """In place: ``input = scale * leaky_relu(input + bias, negative_slope)``, no temporary (no autograd).

    The same operations in the same order as :func:`fused_leaky_relu_native` (bias add, leaky ReLU, gain), so the
    result is bit-identical; for a tensor the caller owns (a conv output), e.g. StyleGAN2's fast CPU forward.
    Arguments as :func:`fused_leaky_relu_native`.

    Returns:
        Tensor: ``input``, modified.
    """
    if bias is not None and bias.numel() > 0:
        input.add_(bias.view(1, bias.shape[0], *([1] * (input.ndim - bias.ndim - 1))))
    F.leaky_relu_(input, negative_slope)
    return input.mul_(scale)


_PLAIN = [False]  # set by plain_ops()


@contextlib.contextmanager
def plain_ops():
    """Inside the block :func:`eager_cpu_inference` is False: every CPU fast forward runs the plain ops.

    For comparing against the reference forwards (BasicSR's), e.g. ``tests/weights/test_official_equivalence.py`` and
    ``benchmarks/bench_cpu_efficiency.py``. Not thread-local: it applies to the whole process while open.
    """
    old = _PLAIN[0]
    _PLAIN[0] = True
    try:
        yield
    finally:
        _PLAIN[0] = old


def cpu_inference_dtype(*tensors, params=()):
    """The dtype the CPU inference kernels compute in for these tensors, or None where they may not run.

    ``torch.float32`` for float32 CPU tensors with CPU autocast off; ``torch.bfloat16`` under CPU bf16 autocast
    (float32 or bfloat16 tensors: the kernels cast activations and weights themselves and keep the activations in
    bfloat16 between layers) or for bfloat16 tensors with autocast off. None when a tensor is elsewhere than on the
    CPU or of another dtype, autocast is on with another dtype, a gradient is needed (grad mode on and a tensor or
    one of ``params`` requires one), the code does not run eagerly (traced, ONNX-exported or compiled: those must
    see the plain ops), or a :func:`plain_ops` block is open.

    Args:
        *tensors (Tensor): Inputs of the op.
        params (iterable[Tensor]): Parameters it uses. Default: none.

    Returns:
        torch.dtype | None
    """
    if _PLAIN[0] or any(t.device.type != 'cpu' or t.dtype not in (torch.float32, torch.bfloat16) for t in tensors):
        return None
    if torch.jit.is_tracing() or torch.jit.is_scripting() or torch.onnx.is_in_onnx_export():
        return None
    if torch.compiler.is_compiling():
        return None
    if torch.is_grad_enabled() and (any(t.requires_grad for t in tensors) or any(p.requires_grad for p in params)):
        return None
    if torch.is_autocast_enabled('cpu'):
        return torch.bfloat16 if torch.get_autocast_dtype('cpu') == torch.bfloat16 else None
    dtypes = {t.dtype for t in tensors}
    return dtypes.pop() if len(dtypes) == 1 else None


def eager_cpu_inference(*tensors, params=()):
    """Whether CPU inference kernels may stand in for the plain ops on these tensors.

    True where :func:`cpu_inference_dtype` gives a dtype: CPU tensors, float32 (autocast off) or bfloat16 (CPU bf16
    autocast, or bfloat16 tensors), no gradient needed, eager code, no :func:`plain_ops` block. The one test of the
    CPU fast forwards (:func:`conv2d_accumulate_`, :class:`panininet.archs.rrdb.DenseBlock`, the GPM's style convs).

    Args:
        *tensors (Tensor): Inputs of the op.
        params (iterable[Tensor]): Parameters it uses. Default: none.

    Returns:
        bool
    """
    return cpu_inference_dtype(*tensors, params=params) is not None


def _mkldnn_conv_add_():
    """oneDNN's in-place "conv + add" (the op Inductor fuses into), or None where this torch build lacks it."""
    try:
        return torch.ops.mkldnn._convolution_pointwise_.binary
    except (AttributeError, RuntimeError):
        return None


def conv2d_accumulate_(acc, input, weight, padding=1):
    """``acc += conv2d(input, weight, padding=padding)`` in place (stride 1, no bias), without a temporary on CPU.

    Where :func:`cpu_inference_dtype` gives ``acc``'s dtype and oneDNN is on, this is oneDNN's convolution with a
    fused in-place add (the conv writes ``acc + conv`` into ``acc``), bit-identical to ``acc.add_(conv2d(...))``
    in float32 but with one pass over ``acc`` instead of a conv output buffer plus a second pass; in bfloat16
    (CPU bf16 autocast) ``input`` and ``weight`` are cast to bfloat16 and oneDNN accumulates in float32 before it
    rounds the sum once. Elsewhere (CUDA, gradients, tracing) it is exactly ``acc.add_(conv2d(...))``.

    Args:
        acc (Tensor): (b, c_out, h, w), updated in place; channels_last for oneDNN's fast kernels.
        input (Tensor): (b, c_in, h, w).
        weight (Tensor): (c_out, c_in, kh, kw), such that the conv's output has ``acc``'s size (``2 * padding =
            k - 1`` for a k x k kernel; the dense blocks' pixel-pair form has a 3 x 2 kernel and a one wider output).
        padding (int): Zero padding on each side. Default: 1.

    Returns:
        Tensor: ``acc``.
    """
    op = _mkldnn_conv_add_()
    dtype = None
    if op is not None and torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled:
        dtype = cpu_inference_dtype(acc, input, weight)
    if dtype is None or acc.dtype != dtype:
        return acc.add_(F.conv2d(input, weight, padding=padding))
    op(acc, input.to(dtype), weight.to(dtype), None, [padding, padding], [1, 1], [1, 1], 1, 'add', 1.0, None, [],
       None)
    return acc


# ---------------------------------------------------------------------------------------------------------------------
# Winograd F(m x m, 3 x 3): the wide 3x3 convolutions as matrix products

# Lavin & Gray (2016): an m x m output tile from an (m + 2) x (m + 2) input tile d is A^T [(G g G^T) * (B^T d B)] A.
# F(2x2, 3x3): 16 multiplies per tile and channel pair instead of 36 (2.25x fewer); F(4x4, 3x3) (points 0, +-1, +-2):
# 36 instead of 144 (4x fewer), for larger transforms and ~4x the rounding error (1e-5 relative instead of 3e-6).
_WINOGRAD = {
    2: {'BT': ((1, 0, -1, 0), (0, 1, 1, 0), (0, -1, 1, 0), (0, 1, 0, -1)),
        'G': ((1, 0, 0), (1 / 2, 1 / 2, 1 / 2), (1 / 2, -1 / 2, 1 / 2), (0, 0, 1)),
        'AT': ((1, 1, 1, 0), (0, 1, -1, -1)),
        'bias_tap': 1},  # column 1 of A^T is all ones: a bias added to tap (1, 1) reaches every output
    4: {'BT': ((4, 0, -5, 0, 1, 0), (0, -4, -4, 1, 1, 0), (0, 4, -4, -1, 1, 0), (0, -2, -1, 2, 1, 0),
               (0, 2, -1, -2, 1, 0), (0, 4, 0, -5, 0, 1)),
        'G': ((1 / 4, 0, 0), (-1 / 6, -1 / 6, -1 / 6), (-1 / 6, 1 / 6, -1 / 6), (1 / 24, 1 / 12, 1 / 6),
              (1 / 24, -1 / 12, 1 / 6), (0, 0, 1)),
        'AT': ((1, 1, 1, 1, 1, 0), (0, 1, -1, 2, -2, 0), (0, 1, 1, 4, 4, 0), (0, 1, -1, 8, -8, 1)),
        'bias_tap': 1},
}


def winograd_tile(x, weight, stride=1, padding=1, dilation=1, groups=1):
    """The Winograd output tile :func:`conv3x3_winograd` should use for ``F.conv2d(x, weight, ...)``, or 0 (direct).

    Only for eager float32 CPU inference (:func:`cpu_inference_dtype`; not bfloat16, not under autocast) of a 3 x 3,
    stride 1, padding 1, ungrouped convolution. Where the transforms (passes over the transformed input and output)
    cost less than the multiplies they save, as ``benchmarks/bench_winograd.py`` measured against AVX-512 oneDNN (2
    Zen 4 cores), for at least 256 input and output channels on maps of at least 8 x 8: F(4x4) where channels x
    width >= 16384 (512 channels from 32 x 32, 256 from 64 x 64: 1.5-2.5x the direct conv), F(2x2) on the smaller
    maps (1.1-1.6x: few tiles, where F(4x4)'s larger transforms do not pay); direct elsewhere (128 channels gain or
    lose by up to 15 % from run to run as the memory bandwidth varies, 64 and fewer lose at any size).

    Args:
        x (Tensor): (b, c_in, h, w).
        weight (Tensor): (c_out, c_in, kh, kw).
        stride (int | tuple): Of the convolution. Default: 1.
        padding (int | tuple): Default: 1.
        dilation (int | tuple): Default: 1.
        groups (int): Default: 1.

    Returns:
        int: 4, 2 or 0.
    """
    def pair(v):
        return tuple(v) if isinstance(v, (tuple, list)) else (v, v)

    if pair(stride) != (1, 1) or pair(padding) != (1, 1) or pair(dilation) != (1, 1) or groups != 1:
        return 0
    if x.ndim != 4 or weight.ndim != 4 or tuple(weight.shape[2:]) != (3, 3):
        return 0
    channels, size = min(weight.shape[0], weight.shape[1]), min(x.shape[2:])
    tile = 0 if channels < 256 or size < 8 else 4 if channels * size >= 16384 else 2
    if not tile or cpu_inference_dtype(x, weight) != torch.float32 or torch.is_autocast_enabled('cpu'):
        return 0
    return tile


def winograd_weight(weight, tile):
    """The F(tile x tile, 3 x 3) transform ``G g G^T`` of a 3 x 3 weight, laid out for :func:`conv3x3_winograd`.

    Args:
        weight (Tensor): (c_out, c_in, 3, 3).
        tile (int): 2 or 4.

    Returns:
        Tensor: ((tile + 2)^2, c_in, c_out) float32, contiguous; entry ``(tile + 2) * a + b`` is tap (a, b).
    """
    g = torch.tensor(_WINOGRAD[tile]['G'], dtype=torch.float64, device=weight.device)
    u = torch.einsum('ai,ocij,bj->abco', g, weight.double(), g)  # in float64, rounded once
    return u.reshape((tile + 2)**2, weight.shape[1], weight.shape[0]).float().contiguous()


def _combine(coefs, terms, out):
    """``out = sum(c * t for c, t in zip(coefs, terms) if c)`` with at most one pass per term (two or more terms)."""
    nonzero = [(c, t) for c, t in zip(coefs, terms) if c]
    (c0, t0), (c1, t1) = nonzero[:2]
    if c0 == 1:
        torch.add(t0, t1, alpha=c1, out=out)
    elif c1 == 1:
        torch.add(t1, t0, alpha=c0, out=out)
    else:
        torch.mul(t0, c0, out=out).add_(t1, alpha=c1)
    for c, t in nonzero[2:]:
        out.add_(t, alpha=c)
    return out


def conv3x3_winograd(x, u, bias=None):
    """``F.conv2d(x, weight, bias, padding=1)`` by Winograd F(m x m, 3 x 3), ``u = winograd_weight(weight, m)``.

    The input is cut into overlapping (m + 2)^2 tiles (stride m), each transformed by ``B^T d B`` (rows, then
    columns, as sums of strided views); the (m + 2)^2 transformed taps are as many matrix products
    (tiles x c_in) @ (c_in x c_out), one ``torch.bmm``; ``A^T M A`` (columns, then rows) gives each m x m output tile.
    The bias is added to the one tap that ``A^T M A`` passes to every output with weight 1. The result equals the
    direct one to float rounding (3e-6 relative at 512 channels for m = 2, 1e-5 for m = 4).

    Args:
        x (Tensor): (b, c_in, h, w) float32, any memory format; sizes that are not multiples of m are padded and
            cropped.
        u (Tensor): ((m + 2)^2, c_in, c_out), from :func:`winograd_weight`.
        bias (Tensor | None): (c_out,). Default: None.

    Returns:
        Tensor: (b, c_out, h, w) float32, channels_last.
    """
    k = int(round(u.shape[0]**0.5))
    m = k - 2
    bt, at = _WINOGRAD[m]['BT'], _WINOGRAD[m]['AT']
    n, c, h, w = x.shape
    th, tw = -(-h // m), -(-w // m)
    xp = x.new_zeros(n, m * th + 2, m * tw + 2, c)  # zero border of 1 (the conv's padding) and up to a tile
    xp[:, 1:h + 1, 1:w + 1] = x.permute(0, 2, 3, 1)
    d = [xp[:, i:i + m * th:m] for i in range(k)]  # row i of every tile: (n, th, m tw + 2, c)
    rows = x.new_empty(k, n, th, m * tw + 2, c)
    for a in range(k):
        _combine(bt[a], d, rows[a])
    v = x.new_empty(k, k, n, th, tw, c)
    for a in range(k):
        e = [rows[a][:, :, j:j + m * tw:m] for j in range(k)]
        for b in range(k):
            _combine(bt[b], e, v[a, b])
    prod = torch.bmm(v.view(k * k, n * th * tw, c), u)  # (k^2, tiles, c_out)
    o = prod.shape[2]
    if bias is not None:
        tap = _WINOGRAD[m]['bias_tap']
        prod[tap * k + tap].add_(bias.to(prod.dtype))
    prod = prod.view(k, k, n, th, tw, o)
    cols = x.new_empty(m, k, n, th, tw, o)
    for q in range(m):
        _combine(at[q], [prod[:, b] for b in range(k)], cols[q])
    out = x.new_empty(n, m * th, m * tw, o)
    tiles = out.view(n, th, m, tw, m, o)
    for q in range(m):
        for p in range(m):
            _combine(at[p], [cols[q][a] for a in range(k)], tiles[:, :, p, :, q])
    out = out.permute(0, 3, 1, 2)
    if out.shape[2:] != (h, w):  # padded to whole tiles: crop to a dense tensor again
        out = out[:, :, :h, :w].contiguous(memory_format=torch.channels_last)
    return out


class WinogradConv2d(nn.Conv2d):
    """``nn.Conv2d`` (same arguments, parameters, keys and initialisation) that runs :func:`conv3x3_winograd` where
    :func:`winograd_tile` picks a tile, else ``nn.Conv2d``'s forward.

    The transformed weight is cached on the module (:func:`cached_winograd_weight`). Forward hooks fire as for any
    module.
    """

    def forward(self, x):
        """(b, c_in, h, w) -> (b, c_out, h', w'); channels_last where Winograd ran."""
        weight = self.weight
        tile = winograd_tile(x, weight, self.stride, self.padding, self.dilation, self.groups)
        if self.padding_mode != 'zeros' or not tile:
            return super().forward(x)
        return conv3x3_winograd(x, cached_winograd_weight(self, weight, tile), self.bias)


def cached_winograd_weight(owner, weight, tile):
    """:func:`winograd_weight` of ``weight``, cached on the module ``owner`` (one entry per tile size).

    Keyed by the weight's storage and version, so a reloaded or changed weight is seen; kept in the module's
    ``__dict__``, not in its state dict.

    Args:
        owner (nn.Module): Where the cache lives.
        weight (Tensor): (c_out, c_in, 3, 3).
        tile (int): 2 or 4.

    Returns:
        Tensor: ((tile + 2)^2, c_in, c_out).
    """
    cache = owner.__dict__.setdefault('_winograd_weights', {})
    key = (weight.data_ptr(), weight._version)
    if tile not in cache or cache[tile][0] != key:
        with torch.no_grad():
            cache[tile] = (key, winograd_weight(weight, tile))
    return cache[tile][1]


__all__ = ['upfirdn2d_fast', 'fused_leaky_relu_native', 'fused_leaky_relu_fast', 'fused_leaky_relu_',
           'winograd_tile', 'winograd_weight', 'conv3x3_winograd', 'WinogradConv2d', 'cached_winograd_weight',
           'plain_ops', 'cpu_inference_dtype', 'eager_cpu_inference', 'conv2d_accumulate_']
