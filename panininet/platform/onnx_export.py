"""ONNX export of our restoration networks: dynamic batch, the fidelity ``mask_bias`` as an input, fixed noise.

The ONNX graph has one input ``input`` (b, 3, in_size, in_size), RGB in [-1, 1], with a dynamic batch, for a
PaniniNet with DAFI also ``mask_bias`` (num_levels,) float32 (what ``PaniniNet.forward``'s ``mask_bias`` takes, so
the restorer's ``-w`` still acts), and one output ``output`` (b, 3, out_size, out_size). The StyleGAN noise is the
network's stored buffers (``randomize_noise=False``): same input, same output, as in PyTorch. The model's metadata
(``metadata_props``) records the family, in/out size, the number of levels and the opset.

Exporter: the TorchScript-based ``torch.onnx.export(..., dynamo=False)``; on torch 2.14 it works and writes one
self-contained file. The dynamo-based exporter (torch 2.14's default) needs ``onnxscript``, which we do not depend
on (README "ONNX export").

One change at our level makes the graph exportable with a dynamic batch, and only while exporting: basicsr's
``ModulatedConv2d`` modulates the *weights* and runs one grouped convolution with ``groups=b``; ONNX's ``Conv`` takes
``group`` as a constant attribute, so that graph cannot have a dynamic batch. :func:`modulated_conv_activation_form`
computes the same thing by modulating the *activations* (``conv(x * s, W) * demod``, StyleGAN2-ADA's
``fused_modconv=False`` form) with an ordinary convolution; :func:`exportable` swaps it in for the duration of an
export and restores basicsr's forward afterwards. The fast native ops (``panininet.platform.native_ops``: upfirdn2d as
a depthwise
conv, fused leaky ReLU) export as they are (depthwise ``Conv``/``ConvTranspose``, ``Pad`` with negative pads).

Each network has an adapter in :data:`EXPORTERS` (network class name -> function giving the wrapper module, the
example inputs and the metadata): PaniniNet (``mfr``, ``sr16``; input and ``mask_bias``) and MMRB-Net (``mmrb``;
input only: it has no fidelity knob and no random noise). A new network is one more entry.
"""
import contextlib
import inspect
import types
import warnings

import torch
from torch import nn
from torch.nn import functional as F

OPSET = 17  # ONNX opset of the export (onnxruntime >= 1.12 runs it)


def modulated_conv_activation_form(self, x, style):
    """basicsr ``ModulatedConv2d.forward`` with the style applied to the activations instead of the weights.

    ``conv(x, W * s) * demod == conv(x * s, W) * demod`` (s per input channel, demod per output channel), with
    ``demod[b, o] = rsqrt(sum_{i,kh,kw} (scale * W[o, i] * s[b, i])^2 + eps)``; the same up-sampling (transposed
    conv, stride 2, then ``smooth``) and down-sampling (``smooth``, then stride-2 conv) as basicsr. Equal to basicsr's
    forward up to float rounding (summation order), and an ordinary convolution (no ``groups=b``).

    Args:
        self (ModulatedConv2d): basicsr's module.
        x (Tensor): (b, c_in, h, w).
        style (Tensor): (b, num_style_feat).

    Returns:
        Tensor: (b, c_out, h', w').
    """
    s = self.modulation(style)  # (b, c_in)
    weight = self.scale * self.weight[0]  # (c_out, c_in, k, k)
    x = x * s[:, :, None, None]
    if self.sample_mode == 'upsample':
        out = F.conv_transpose2d(x, weight.transpose(0, 1), padding=0, stride=2)
    elif self.sample_mode == 'downsample':
        out = F.conv2d(self.smooth(x), weight, padding=0, stride=2)
    else:
        out = F.conv2d(x, weight, padding=self.padding)
    if self.demodulate:
        demod = torch.rsqrt(s.pow(2) @ weight.pow(2).sum([2, 3]).t() + self.eps)  # (b, c_out)
        out = out * demod[:, :, None, None]
    if self.sample_mode == 'upsample':  # the FIR is linear per channel: after the demodulation, as basicsr's order
        out = self.smooth(out)
    return out


@contextlib.contextmanager
def exportable(net):
    """Within the block every basicsr ``ModulatedConv2d`` of ``net`` uses :func:`modulated_conv_activation_form`.

    Args:
        net (nn.Module): Modified in place for the duration of the block only.
    """
    from basicsr.archs.stylegan2_arch import ModulatedConv2d
    patched = [m for m in net.modules() if isinstance(m, ModulatedConv2d)]
    for m in patched:
        m.forward = types.MethodType(modulated_conv_activation_form, m)
    try:
        yield net
    finally:
        for m in patched:
            del m.forward  # back to the class's forward


class PaniniExportWrapper(nn.Module):
    """``(input, mask_bias) -> PaniniNet(input, mask_bias=mask_bias)`` with the stored noise.

    Args:
        net (PaniniNet): In eval mode.
    """

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x, mask_bias=None):
        """(b, 3, S, S) and (L,) -> (b, 3, out_size, out_size)."""
        return self.net(x, mask_bias=0.0 if mask_bias is None else mask_bias, randomize_noise=False)


def _panini_spec(net):
    has_bias = net.dafi is not None
    x = torch.zeros(2, 3, net.in_size, net.in_size)
    inputs = (x, torch.zeros(net.num_levels)) if has_bias else (x,)
    names = ['input', 'mask_bias'] if has_bias else ['input']
    meta = {'family': 'panini', 'in_size': net.in_size, 'out_size': net.out_size, 'num_levels': net.num_levels,
            'fusion': net.fusion, 'condition': net.condition}
    return PaniniExportWrapper(net), inputs, names, meta


class MMRBExportWrapper(nn.Module):
    """``input -> MMRBNet(input)`` (the restored face only; MMRB-Net draws no noise and has no fidelity knob).

    Args:
        net (MMRBNet): In eval mode.
    """

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        """(b, 3, S, S) -> (b, 3, S, S)."""
        return self.net(x)


def _mmrb_spec(net):
    x = torch.zeros(2, 3, net.out_size, net.out_size)
    meta = {'family': 'mmrb', 'in_size': net.out_size, 'out_size': net.out_size}
    return MMRBExportWrapper(net), (x,), ['input'], meta


# network class name -> spec(net) -> (wrapper module, example inputs, input names, metadata dict)
EXPORTERS = {'PaniniNet': _panini_spec, 'MMRBNet': _mmrb_spec}


def export_onnx(net, path, opset=OPSET, exporter='torchscript', extra_meta=None):
    """Write ``net`` as an ONNX model to ``path`` atomically.

    Args:
        net (nn.Module): A network of a class in :data:`EXPORTERS` (e.g. PaniniNet), on the CPU.
        path (str): Destination ``.onnx`` file (replaced in one step when complete).
        opset (int): ONNX opset. Default: :data:`OPSET`.
        exporter (str): 'torchscript' (``torch.onnx.export(dynamo=False)``) or 'dynamo' (needs ``onnxscript``).
            Default: 'torchscript'.
        extra_meta (dict | None): More ``metadata_props`` (e.g. the variant or weights file). Default: None.

    Returns:
        dict: The metadata written into the model.

    Raises:
        ValueError: The network's class has no exporter.
    """
    import onnx

    from panininet.atomic import atomic_path

    name = type(net).__name__
    if name not in EXPORTERS:
        raise ValueError(f'no ONNX exporter for {name}; known: {", ".join(sorted(EXPORTERS))}')
    if exporter not in ('torchscript', 'dynamo'):
        raise ValueError(f"exporter={exporter!r}: use 'torchscript' or 'dynamo'")
    was_training = net.training
    wrapper, inputs, input_names, meta = EXPORTERS[name](net)
    wrapper.eval()
    meta = dict(meta, opset=opset, exporter=exporter, inputs=','.join(input_names), **(extra_meta or {}))
    if exporter == 'torchscript':
        kwargs = {'dynamo': False, 'dynamic_axes': {'input': {0: 'batch'}, 'output': {0: 'batch'}},
                  'do_constant_folding': True}
    else:
        batch = torch.export.Dim('batch', min=1, max=4096)
        arg_names = list(inspect.signature(wrapper.forward).parameters)[:len(inputs)]
        kwargs = {'dynamo': True, 'external_data': False,
                  'dynamic_shapes': {n: ({0: batch} if i == 0 else None) for i, n in enumerate(arg_names)}}
    try:
        with exportable(net), torch.no_grad(), atomic_path(path) as tmp, warnings.catch_warnings():
            # the traced shape checks and constants are what we want (tests/platform/test_onnx_export.py checks any
            # batch size);
            # the TorchScript exporter's deprecation notice is answered in the module docstring
            warnings.simplefilter('ignore', torch.jit.TracerWarning)
            warnings.filterwarnings('ignore', message='.*legacy TorchScript-based ONNX', category=DeprecationWarning)
            warnings.filterwarnings('ignore', message='.*(Constant folding|feature will be removed)')
            torch.onnx.export(wrapper, inputs, tmp, input_names=input_names, output_names=['output'],
                              opset_version=opset, **kwargs)
            model = onnx.load(tmp)
            for key, value in meta.items():
                entry = model.metadata_props.add()
                entry.key, entry.value = key, str(value)
            onnx.save(model, tmp)
    finally:
        net.train(was_training)
    return meta


def read_onnx_metadata(path):
    """The ``metadata_props`` of an ONNX file written by :func:`export_onnx`, as a dict of strings."""
    import onnx
    model = onnx.load(path, load_external_data=False)
    return {p.key: p.value for p in model.metadata_props}


__all__ = ['OPSET', 'EXPORTERS', 'modulated_conv_activation_form', 'exportable', 'PaniniExportWrapper',
           'MMRBExportWrapper', 'export_onnx', 'read_onnx_metadata']
