"""Half precision: PaniniNet MFR output under bf16 / fp16 autocast against fp32, and fp16 overflow headroom.

Network: the official reference recipe weights (``official_reference/manifest_panini_mfr.json``, README section 4,
``tests/weights/official_recipe.py``) on the official reference input (``mfr_input.npy``, 1x3x512x512).
On a CPU without native bf16/fp16 convolutions (AVX2: ~100x slower than fp32) the GPU's autocast arithmetic is
emulated in fp32 (:class:`AutocastEmulation`: operands and results of convs/linears rounded to bf16/fp16).
For each precision it prints the PSNR of the output against the fp32 output (both mapped to [0, 1] and clamped, as
the restorer does; peak 1) and the max |difference| of the raw output, plus the time of one forward.

fp16 overflow (the GFPGAN#50 question): one fp32 forward with hooks records, per layer kind, the largest activation
magnitude and the largest demodulation sum of squares ``sum_{cin,k,k} (w * s)^2`` of the modulated convs, which are
the quantities that would overflow fp16 (max 65504) if they were computed in fp16. Under autocast they are not (the
modulated weight is fp32 because the parameter is, and ``pow``/``sum``/``rsqrt`` autocast to fp32); a whole-model
``.half()`` would compute them in fp16.

Examples::

    python benchmarks/bench_half.py                     # CPU: emulated bf16/fp16 autocast, overflow headroom
    python benchmarks/bench_half.py --device cuda       # GPU: fp32 (TF32 off) vs bf16 / fp16 autocast, and .half()
"""
import argparse
import json
import math
import os.path as osp
import sys
import time

import numpy as np
import torch
from torch.nn import functional as F

import panininet  # noqa: F401  (before basicsr)

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))

FP16_MAX = 65504.0


def default_shared():
    return osp.join(REPO, '..', 'shared')


def recipe_mfr_net(shared):
    """PaniniNet with the official reference recipe weights (eval mode) and the reference input."""
    sys.path.insert(0, osp.join(REPO, 'tests', 'weights'))  # the recipe is test material (official_recipe.py)
    from official_recipe import make_recipe_state_dict

    from panininet.archs.panini_arch import PaniniNet
    from panininet.weights.official import convert_official_state_dict
    ref = osp.join(shared, 'official_reference')
    with open(osp.join(ref, 'manifest_panini_mfr.json')) as f:
        manifest = json.load(f)
    state_dict, arch_opt = convert_official_state_dict(make_recipe_state_dict(manifest))
    net = PaniniNet(**arch_opt).eval()
    net.load_state_dict(state_dict, strict=True)
    x = torch.from_numpy(np.load(osp.join(ref, 'mfr_input.npy')))
    return net, x


def psnr(a, b):
    """PSNR (dB) of two [-1, 1] outputs after ``(y + 1) / 2`` and clamping to [0, 1] (peak 1)."""
    a = ((a.float() + 1) / 2).clamp(0, 1)
    b = ((b.float() + 1) / 2).clamp(0, 1)
    mse = (a - b).double().pow(2).mean().item()
    return float('inf') if mse == 0 else 10 * math.log10(1.0 / mse)


class AutocastEmulation(torch.overrides.TorchFunctionMode):
    """fp32 arithmetic with the rounding of CUDA autocast: the inputs and weights of every conv / linear / matmul
    are rounded to ``dtype`` and so is its result (accumulation stays fp32, as on tensor cores), and a result beyond
    the ``dtype`` range becomes inf. Lets a CPU without native bf16/fp16 estimate what a GPU computes."""

    OPS = {F.conv2d, F.conv_transpose2d, F.linear, torch.matmul, torch.mm, torch.bmm, torch.addmm}

    def __init__(self, dtype):
        super().__init__()
        self.dtype = dtype

    def _round(self, t):
        return t.to(self.dtype).float() if torch.is_tensor(t) and t.is_floating_point() else t

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in self.OPS:
            out = func(*[self._round(a) for a in args], **{k: self._round(v) for k, v in kwargs.items()})
            return self._round(out)
        return func(*args, **kwargs)


def run(net, x, mode):
    """Forward in ``mode``: 'fp32', 'bf16' / 'fp16' (autocast) or 'half' (whole model and input in fp16)."""
    device = x.device
    if mode == 'half':
        net = net.half()
        x = x.half()
    dtype = {'bf16': torch.bfloat16, 'fp16': torch.float16}.get(mode)
    emulated = {'bf16-emulated': torch.bfloat16, 'fp16-emulated': torch.float16}.get(mode)
    t0 = time.perf_counter()
    with torch.no_grad(), torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
        if emulated is not None:
            with AutocastEmulation(emulated):
                y = net(x)
        else:
            y = net(x)
    if device.type == 'cuda':
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    if mode == 'half':
        net.float()
    return y.float(), seconds


def overflow_headroom(net, x):
    """Largest activation per module kind and largest demodulation sum of squares, fp32 forward."""
    from basicsr.archs.stylegan2_arch import ModulatedConv2d
    stats = {}
    hooks = []

    def record(kind, value):
        stats[kind] = max(stats.get(kind, 0.0), float(value))

    def pre_hook(module, inputs):
        x_in, style = inputs
        b = x_in.shape[0]
        s = module.modulation(style).view(b, 1, -1, 1, 1)
        weight = module.scale * module.weight * s
        record('modulated weight |w*s| max', weight.abs().max())
        if module.demodulate:
            record('demodulation sum of squares max', weight.pow(2).sum([2, 3, 4]).max())
        record('modulated conv input |x| max', x_in.abs().max())

    def out_hook(module, inputs, output):
        if torch.is_tensor(output):
            record(f'{type(module).__name__} output |y| max', output.abs().max())

    for m in net.modules():
        if isinstance(m, ModulatedConv2d):
            hooks.append(m.register_forward_pre_hook(pre_hook))
        if len(list(m.children())) == 0 or type(m).__name__ in ('StyleConv', 'ToRGB', 'ModulatedConv2d'):
            hooks.append(m.register_forward_hook(out_hook))
    try:
        with torch.no_grad():
            net(x)
    finally:
        for h in hooks:
            h.remove()
    return stats


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--shared', default=default_shared(), help='the shared folder with official_reference/')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--modes', nargs='*', default=None,
                        choices=['bf16', 'fp16', 'half', 'bf16-emulated', 'fp16-emulated'],
                        help="default: CUDA 'bf16 fp16 half'; CPU 'bf16' where the CPU has native bf16 (AVX512-BF16 "
                        "or AMX), else none: on AVX2 a bf16/fp16 conv is ~100x slower than fp32 (hours per face)")
    parser.add_argument('--no-headroom', action='store_true', help='skip the fp16 overflow headroom forward')
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == 'cuda':
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    modes = args.modes
    if modes is None:
        if device.type == 'cuda':
            modes = ['bf16', 'fp16', 'half']
        else:
            modes = ['bf16'] if torch.ops.mkldnn._is_mkldnn_bf16_supported() else []
            if not modes:
                print('CPU without native bf16: real half-precision forwards skipped (--modes bf16 forces them)')
            modes += ['bf16-emulated', 'fp16-emulated']
    net, x = recipe_mfr_net(args.shared)
    net, x = net.to(device), x.to(device)
    ref, t_ref = run(net, x, 'fp32')
    crop = np.load(osp.join(args.shared, 'official_reference', 'mfr_output_crop_fp32.npy'))
    official_err = np.abs(ref[:, :, 384:640, 384:640].cpu().numpy() - crop).max()
    print(f'device {device}, torch {torch.__version__}; fp32 vs official reference crop: max |diff| '
          f'{official_err:.1e}\n')
    print('| precision | PSNR vs fp32 (dB) | max abs diff | finite | seconds |')
    print('|---|---:|---:|---|---:|')
    print(f'| fp32 | - | - | {bool(torch.isfinite(ref).all())} | {t_ref:.1f} |')
    for mode in modes:
        label = {'bf16': 'bf16 autocast', 'fp16': 'fp16 autocast', 'half': 'fp16 .half() (whole model)',
                 'bf16-emulated': 'bf16 autocast, emulated in fp32', 'fp16-emulated': 'fp16 autocast, emulated in fp32'
                 }[mode]
        try:
            y, seconds = run(net, x, mode)
        except RuntimeError as err:
            print(f'| {label} | not supported here: {str(err).splitlines()[0][:80]} | | | |')
            continue
        finite = bool(torch.isfinite(y).all())
        diff = (y - ref).abs().max().item() if finite else float('nan')
        print(f'| {label} | {psnr(y, ref):.1f} | {diff:.3f} | {finite} | {seconds:.1f} |', flush=True)
    if args.no_headroom:
        return
    print('\nfp16 overflow headroom (fp32 forward; fp16 max 65504):')
    print('| quantity | max | headroom |')
    print('|---|---:|---:|')
    stats = overflow_headroom(net, x)
    for kind in sorted(stats, key=lambda k: -stats[k]):
        print(f'| {kind} | {stats[kind]:.3g} | {FP16_MAX / max(stats[kind], 1e-30):.3g}x |')


if __name__ == '__main__':
    main()
