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

The accumulating forward is used for eager float32 inference on CPU
(:func:`panininet.platform.native_ops.eager_cpu_inference`);
training, other devices, autocast and tracing / ONNX export run BasicSR's forward unchanged (cuDNN handles
concatenated inputs well, autograd needs the graph, an exported graph must hold standard ops).
"""
import torch
from basicsr.archs.rrdbnet_arch import RRDB as BasicsrRRDB
from basicsr.archs.rrdbnet_arch import ResidualDenseBlock
from torch import nn
from torch.nn import functional as F

from panininet.platform.native_ops import conv2d_accumulate_, eager_cpu_inference


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
        if not eager_cpu_inference(x, params=self.parameters()):
            return super().forward(x)
        feats = [x]  # block input, then x1 .. x4
        for j, conv in enumerate((self.conv1, self.conv2, self.conv3, self.conv4, self.conv5)):
            weight = conv.weight
            lo, hi = 0, x.shape[1]
            acc = F.conv2d(x, weight[:, lo:hi], conv.bias, padding=1)
            for feat in feats[1:]:
                lo, hi = hi, hi + feat.shape[1]
                conv2d_accumulate_(acc, feat, weight[:, lo:hi], padding=1)
            if j < 4:
                feats.append(F.leaky_relu_(acc, 0.2))
        return torch.add(x, acc, alpha=0.2)


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


__all__ = ['DenseBlock', 'RRDB']
