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
from torch.nn import functional as F


def _crop_or_pad(x, dim, start, length):
    """``x[start:start + length]`` along ``dim`` (2 or 3), zero-filled where that range leaves ``x``."""
    n = x.shape[dim]
    left, right = -start, start + length - n  # F.pad crops where these are negative
    if left == 0 and right == 0:
        return x
    return F.pad(x, (left, right) if dim == 3 else (0, 0, left, right))


def upfirdn2d_fast(input, kernel, up_x, up_y, down_x, down_y, pad_x0, pad_x1, pad_y0, pad_y1):
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
        out = F.conv2d(x, weight, stride=(down_y, down_x), padding=conv_pad, groups=c)
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


def eager_cpu_inference(*tensors, params=()):
    """Whether CPU inference kernels may stand in for the plain ops on these tensors.

    True when every tensor is a float32 CPU tensor, no gradient is needed (grad mode off, or neither the tensors nor
    ``params`` require one), CPU autocast is off, and the code runs eagerly (not traced, ONNX-exported or compiled,
    which must see the plain ops), and no :func:`plain_ops` block is open. The one test of the CPU fast forwards
    (:func:`conv2d_accumulate_`, :class:`panininet.archs.rrdb.DenseBlock`, the GPM's style convs).

    Args:
        *tensors (Tensor): Inputs of the op.
        params (iterable[Tensor]): Parameters it uses. Default: none.

    Returns:
        bool
    """
    if _PLAIN[0] or any(t.device.type != 'cpu' or t.dtype != torch.float32 for t in tensors):
        return False
    if torch.is_autocast_enabled('cpu') or torch.jit.is_tracing() or torch.jit.is_scripting():
        return False
    if torch.onnx.is_in_onnx_export() or torch.compiler.is_compiling():
        return False
    return not (torch.is_grad_enabled()
                and (any(t.requires_grad for t in tensors) or any(p.requires_grad for p in params)))


def _mkldnn_conv_add_():
    """oneDNN's in-place "conv + add" (the op Inductor fuses into), or None where this torch build lacks it."""
    try:
        return torch.ops.mkldnn._convolution_pointwise_.binary
    except (AttributeError, RuntimeError):
        return None


def conv2d_accumulate_(acc, input, weight, padding=1):
    """``acc += conv2d(input, weight, padding=padding)`` in place (stride 1, no bias), without a temporary on CPU.

    Where :func:`eager_cpu_inference` holds and oneDNN is on, this is oneDNN's convolution with a fused in-place
    add (the conv writes ``acc + conv`` into ``acc``), bit-identical to ``acc.add_(conv2d(...))`` but with one
    pass over ``acc`` instead of a conv output buffer plus a second pass; elsewhere (CUDA, autocast, gradients,
    tracing) it is exactly ``acc.add_(conv2d(...))``.

    Args:
        acc (Tensor): (b, c_out, h, w), updated in place; channels_last for oneDNN's fast kernels.
        input (Tensor): (b, c_in, h, w).
        weight (Tensor): (c_out, c_in, k, k) with ``2 * padding = k - 1`` (output size = input size).
        padding (int): Zero padding. Default: 1.

    Returns:
        Tensor: ``acc``.
    """
    op = _mkldnn_conv_add_()
    if (op is None or not torch.backends.mkldnn.is_available() or not torch.backends.mkldnn.enabled
            or not eager_cpu_inference(acc, input, weight)):
        return acc.add_(F.conv2d(input, weight, padding=padding))
    op(acc, input, weight, None, [padding, padding], [1, 1], [1, 1], 1, 'add', 1.0, None, [], None)
    return acc


__all__ = ['upfirdn2d_fast', 'fused_leaky_relu_native', 'fused_leaky_relu_fast', 'fused_leaky_relu_',
           'plain_ops', 'eager_cpu_inference', 'conv2d_accumulate_']
