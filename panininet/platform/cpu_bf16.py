"""CPU bfloat16 inference: whether this CPU has bf16 units, and a network's convolutions stored in bf16 once.

A CPU with AVX-512 BF16 (``avx512_bf16``) or AMX (``amx_bf16``) runs oneDNN's bf16 convolutions several times
faster than fp32 ones (docs/cpu_bf16.md); elsewhere oneDNN emulates them and bf16 is far slower than fp32.
:func:`cpu_bf16_units` reads which units the CPU has (``/proc/cpuinfo`` flags on Linux, else oneDNN's own answer),
once per process.

The families run a CPU bf16 network under ``torch.autocast('cpu', torch.bfloat16)``, which casts every conv's fp32
weight to bf16 on every call (a copy, plus a second one into the channels_last layout oneDNN wants).
:func:`store_convs_in_bf16` does that cast once: the plain ``nn.Conv2d`` / ``nn.ConvTranspose2d`` weights and biases
become bf16 parameters (weights channels_last), which autocast then uses as they are. The arithmetic is the same as
autocast's (the same rounding of the same fp32 values), so outputs do not change. Linear layers and everything else
(styles, modulations, normalisations) stay fp32 and autocast decides for them as before.
"""
import functools
import os.path as osp

import torch
from torch import nn

CPUINFO = '/proc/cpuinfo'
BF16_FLAGS = (('amx_bf16', 'AMX'), ('avx512_bf16', 'AVX-512 BF16'))  # best first


def _cpu_flags(path=CPUINFO):
    """The feature flags of the first CPU in ``/proc/cpuinfo``, or None where that file is absent."""
    if not osp.isfile(path):
        return None
    with open(path) as f:
        for line in f:
            if line.startswith('flags'):
                return set(line.split(':', 1)[1].split())
    return set()


@functools.cache
def cpu_bf16_units(path=CPUINFO):
    """The CPU's native bf16 units, best first, e.g. ``('AMX', 'AVX-512 BF16')``; empty where it has none.

    Linux: the ``/proc/cpuinfo`` flags ``amx_bf16`` and ``avx512_bf16``. Elsewhere oneDNN's own test
    (``torch.ops.mkldnn._is_mkldnn_bf16_supported``), reported as ``('native bf16',)``. Cached per process.

    Args:
        path (str): The cpuinfo file. Default: '/proc/cpuinfo'.

    Returns:
        tuple[str, ...]
    """
    flags = _cpu_flags(path)
    if flags is not None:
        return tuple(name for flag, name in BF16_FLAGS if flag in flags)
    supported = getattr(getattr(torch.ops, 'mkldnn', None), '_is_mkldnn_bf16_supported', None)
    try:
        return ('native bf16',) if supported is not None and supported() else ()
    except RuntimeError:
        return ()


def cpu_has_bf16(path=CPUINFO):
    """Whether the CPU runs bf16 convolutions natively (AVX-512 BF16 or AMX); see :func:`cpu_bf16_units`."""
    return bool(cpu_bf16_units(path))


CONV_TYPES = (nn.Conv2d, nn.ConvTranspose2d)


def store_convs_in_bf16(net, channels_last=True):
    """Store the weights and biases of ``net``'s plain convolutions as bf16 (weights channels_last), in place.

    For a network that runs under CPU bf16 autocast only, for inference (a family built with ``precision='bf16'``
    on the CPU): the cast autocast would make on every call is made once, with the same result. Only modules whose
    type is exactly ``nn.Conv2d`` or ``nn.ConvTranspose2d`` are changed (their new parameters need no gradient);
    subclasses (BasicSR's, GFPGAN's own convs), linear layers and everything else keep their fp32 parameters.

    Args:
        net (nn.Module): Modified in place.
        channels_last (bool): Store 2-D conv weights channels_last (a conv with such a weight gives a channels_last
            output, also for an NCHW input: False for a network that views its features as NCHW). Default: True.

    Returns:
        int: The number of convolutions converted.
    """
    count = 0
    for module in net.modules():
        if type(module) not in CONV_TYPES:
            continue
        weight = module.weight.detach().to(torch.bfloat16)
        if weight.ndim == 4 and channels_last:
            weight = weight.contiguous(memory_format=torch.channels_last)
        module.weight = nn.Parameter(weight, requires_grad=False)
        if module.bias is not None:
            module.bias = nn.Parameter(module.bias.detach().to(torch.bfloat16), requires_grad=False)
        count += 1
    return count


__all__ = ['cpu_bf16_units', 'cpu_has_bf16', 'store_convs_in_bf16']
