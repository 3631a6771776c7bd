"""ESRGAN's RRDB (BasicSR's modules, same parameters and keys) with a CPU inference forward that never concatenates.

A residual dense block feeds conv ``j`` the concatenation of the block input and every earlier conv's output
(``8 -> 40 -> 72 -> 104 -> 136`` channels in Panini-Net's IFE). In channels_last, which oneDNN's kernels for these
narrow convs want, each concatenation is a strided copy of the whole growing tensor (352 channels written per block
at 512 x 512 for 136 channels of conv input). A convolution over a concatenation is the sum of the convolutions of
its parts with the matching slices of the weight, so :class:`DenseBlock` computes conv ``j`` as its first part
(with the bias) plus one in-place accumulation per later part
(:func:`panininet.platform.native_ops.conv2d_accumulate_`, oneDNN's
conv with a fused add): the same multiply-adds, no concatenation, no extra pass. Only the summation order differs
(float rounding, ~1e-7 relative); ``tests/archs/test_rrdb.py`` checks it against BasicSR's forward.

The last conv of a block has only ``num_feat`` outputs (8), which oneDNN's AVX-512 kernels compute at the cost of 16;
:meth:`DenseBlock._last_conv` runs it over pixel pairs instead (a free view: twice the channels at half the width, a
3 x 2 kernel, :func:`pair_weight`).

The accumulating forward is used for eager inference on CPU in float32 or bfloat16 (CPU bf16 autocast: the block's
features stay bf16, oneDNN accumulates each sum in fp32; :func:`panininet.platform.native_ops.cpu_inference_dtype`);
training, other devices, autocast and tracing / ONNX export run BasicSR's forward unchanged (cuDNN handles
concatenated inputs well, autograd needs the graph, an exported graph must hold standard ops).
"""
import torch
from basicsr.archs.rrdbnet_arch import RRDB as BasicsrRRDB
from basicsr.archs.rrdbnet_arch import ResidualDenseBlock
from torch import nn
from torch.nn import functional as F

from panininet.platform.native_ops import conv2d_accumulate_, cpu_inference_dtype


class DenseBlock(ResidualDenseBlock):
    """BasicSR's ``ResidualDenseBlock`` (same arguments, parameters and keys) with an accumulating CPU forward.

    Args:
        num_feat (int): Block input / output channels. Default: 64.
        num_grow_ch (int): Channels of each of the four inner convs. Default: 32.
    """

    def forward(self, x):
        """``x + 0.2 * conv5([x, x1, x2, x3, x4])`` with ``x_j = lrelu(conv_j([x, x1, ..., x_{j-1}]))``.

        Args:
            x (Tensor): (b, num_feat, h, w).

        Returns:
            Tensor: (b, num_feat, h, w).
        """
        dtype = cpu_inference_dtype(x, params=self.parameters())
        if dtype is None:
            return super().forward(x)
        x = x.to(dtype)  # bf16 (CPU bf16 autocast): the block computes and keeps its features in bf16
        feats = [x]  # block input, then x1 .. x4
        for conv in (self.conv1, self.conv2, self.conv3, self.conv4):
            feats.append(F.leaky_relu_(_conv_of_parts(conv, feats, dtype), 0.2))
        return torch.add(x, self._last_conv(feats, dtype), alpha=0.2)

    def _last_conv(self, feats, dtype):
        """``conv5([x, x1, .., x4])`` as the sum over the parts; in pixel pairs where the width allows it.

        conv5 has ``num_feat`` outputs (8 in Panini-Net), which oneDNN's AVX-512 kernels compute at the cost of 16.
        Two neighbouring pixels of a channels_last map are one pixel of twice the channels at half the width (a
        free view), so the conv is also one with ``2 * num_feat`` outputs and a 3 x 2 kernel over pixel pairs
        (:func:`pair_weight`): 4/3 of the multiply-adds at the full vector width, 25 % less time for the 32-channel
        parts at 512 x 512 (9.5 against 12.8 ms on 2 Zen 4 cores; the IFE body 1.42 against 1.55 s). Output pair
        ``k`` holds pixels ``2k - 1`` and ``2k``, so the result is a ``w + 2`` wide map whose first and last columns
        are never read; no edge needs a separate pass. Exact up to summation order.

        Args:
            feats (list[Tensor]): ``x`` (b, num_feat, h, w) then x1 .. x4 (b, num_grow_ch, h, w), channels_last.
            dtype (torch.dtype): Of the computation.

        Returns:
            Tensor: (b, num_feat, h, w), a view.
        """
        conv = self.conv5
        b, c, h, w = feats[0].shape
        cl = torch.channels_last
        if w % 2 or not all(f.is_contiguous(memory_format=cl) for f in feats):
            return _conv_of_parts(conv, feats, dtype)
        weights = self._pair_weights(dtype, [f.shape[1] for f in feats])
        acc = F.conv2d(_pairs(feats[0]), weights[0], conv.bias.to(dtype).repeat(2), padding=1)  # (b, 2c, h, w/2+1)
        for feat, weight in zip(feats[1:], weights[1:]):
            conv2d_accumulate_(acc, _pairs(feat), weight, padding=1)
        wide = acc.permute(0, 2, 3, 1).reshape(b, h, w + 2, c).permute(0, 3, 1, 2)  # pixels -1 .. w
        return wide[:, :, :, 1:w + 1]

    def _pair_weights(self, dtype, split):
        """conv5's weight split by part and in pixel-pair form, in ``dtype``; cached, keyed by storage and version."""
        weight = self.conv5.weight
        key = (weight.data_ptr(), weight._version, dtype, tuple(split))
        cached = self.__dict__.get('_pair_weight_cache')
        if cached is None or cached[0] != key:
            with torch.no_grad():
                parts = torch.split(weight.float(), split, dim=1)
                cached = (key, [pair_weight(p).to(dtype=dtype, memory_format=torch.channels_last) for p in parts])
            self.__dict__['_pair_weight_cache'] = cached
        return cached[1]


def _conv_of_parts(conv, feats, dtype):
    """``conv(cat(feats))`` (3 x 3, padding 1) without the concatenation: the first part's conv with the bias, then
    one in-place accumulation per later part (:func:`conv2d_accumulate_`) with the matching slice of the weight.

    Args:
        conv (nn.Conv2d): Over ``sum(f.shape[1] for f in feats)`` input channels.
        feats (list[Tensor]): The parts, (b, c_j, h, w) each.
        dtype (torch.dtype): Of the computation.

    Returns:
        Tensor: (b, c_out, h, w), a new tensor.
    """
    weight = conv.weight.to(dtype)
    lo, hi = 0, feats[0].shape[1]
    acc = F.conv2d(feats[0], weight[:, lo:hi], conv.bias.to(dtype), padding=1)
    for feat in feats[1:]:
        lo, hi = hi, hi + feat.shape[1]
        conv2d_accumulate_(acc, feat, weight[:, lo:hi], padding=1)
    return acc


def _pairs(x):
    """(b, c, h, w) channels_last -> (b, 2c, h, w / 2), pixels ``2k`` and ``2k + 1`` as one: a view."""
    b, c, h, w = x.shape
    return x.permute(0, 2, 3, 1).reshape(b, h, w // 2, 2 * c).permute(0, 3, 1, 2)


def pair_weight(weight):
    """A 3 x 3 conv weight as the 3 x 2 weight of the same conv over pixel pairs.

    Output pair ``k`` is pixels ``(2k - 1, 2k)`` and reads input pairs ``k - 1`` and ``k`` (pixels ``2k - 2`` ..
    ``2k + 1``; a padding of 1 pair on each side): output pixel ``2k - 1 + o`` takes input pixel ``2(k - 1 + s) + e``
    through tap ``dx = 2s + e - o`` of the 3 x 3 kernel where ``0 <= dx <= 2``, zero elsewhere.

    Args:
        weight (Tensor): (c_out, c_in, 3, 3).

    Returns:
        Tensor: (2 c_out, 2 c_in, 3, 2); output channel ``o * c_out + i`` is channel i of pixel o of the pair, input
        channel ``e * c_in + j`` channel j of pixel e.
    """
    c_out, c_in = weight.shape[:2]
    pair = weight.new_zeros(2, c_out, 2, c_in, 3, 2)
    for o in range(2):
        for s in range(2):
            for e in range(2):
                dx = 2 * s + e - o
                if 0 <= dx <= 2:
                    pair[o, :, e, :, :, s] = weight[:, :, :, dx]
    return pair.reshape(2 * c_out, 2 * c_in, 3, 2)


class RRDB(BasicsrRRDB):
    """BasicSR's ``RRDB`` (three residual dense blocks, ``x + 0.2 * rdb3(rdb2(rdb1(x)))``) of :class:`DenseBlock`.

    Same arguments, parameters, keys and initialisation (the same random draws in the same order) as BasicSR's.

    Args:
        num_feat (int): Channels.
        num_grow_ch (int): Growth channels. Default: 32.
    """

    def __init__(self, num_feat, num_grow_ch=32):
        nn.Module.__init__(self)
        self.rdb1 = DenseBlock(num_feat, num_grow_ch)
        self.rdb2 = DenseBlock(num_feat, num_grow_ch)
        self.rdb3 = DenseBlock(num_feat, num_grow_ch)


__all__ = ['DenseBlock', 'RRDB', 'pair_weight']
