"""CPU bf16 against fp32, PaniniNet against GFPGAN, both against the CPU's measured conv peak, in one process.

    python benchmarks/bench_bf16.py --rounds 3                    # speed: MFR and GFPGAN, fp32 and bf16, roofline
    python benchmarks/bench_bf16.py --rounds 3 --onnx             # ... and onnxruntime (fp32) in the same rounds
    python benchmarks/bench_bf16.py --accuracy-only               # PSNR bf16 vs fp32: recipe weights, test faces

**Speed.** PaniniNet MFR (512 -> 1024) and GFPGANv1Clean (512 -> 512, needs the gfpgan package), random weights,
each built through the family interface twice (``random_family(..., precision='fp32' | 'bf16')``: the networks the
CLI runs, ``--bf16`` included), with freed memory reused for the whole process
(:mod:`panininet.platform.allocator`, as the CLI on a CPU) and timed in alternating rounds with the conv peak probe
(and onnxruntime with ``--onnx``), so load from other processes hits every row alike; best round each. Printed per
row: ms/face (wall clock), CPU ms/face
(``time.process_time``: less sensitive to other processes on a shared machine), GFLOP/s (FLOPs as
``bench_network.py`` counts them: 448.2 / 396.0 GFLOP per face), the ratio to GFPGAN's GFLOP/s in the same
precision, the fraction of the measured peak of that precision, and bf16's speed-up over fp32.

**Roofline.** The peak is the best rate of plain 3x3 convolutions (channels_last, batch 1, no bias) over shapes of
the two networks (512 -> 512 @ 32^2, 256 -> 256 @ 64^2, 128 -> 128 @ 128^2, 64 -> 64 @ 256^2, 32 -> 32 @ 512^2), in
fp32 and in bf16, measured in the same rounds (best of three calls per shape and round).

**Accuracy.** PSNR (outputs mapped to [0, 1] and clamped, as the restorer does) and max abs difference of the
bf16 output against the fp32 output: MFR and SR16 with the official reference recipe weights
(``../shared/official_reference``, ``tests/weights/official_recipe.py``) on the official input and on the test photos'
aligned faces (``../shared/testdata/cropped_faces``; SR16 gets them area-resized to 64 x 64).
"""
import argparse
import copy
import glob
import json
import math
import os
import os.path as osp
import platform
import sys
import tempfile
import time

import numpy as np
import torch
from torch.nn import functional as F

import panininet  # noqa: F401  (compat before basicsr)
from panininet.platform.allocator import reuse_freed_memory
from panininet.platform.cpu_bf16 import cpu_bf16_units

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
GFLOP = {'mfr': 448.2, 'gfpgan1.3': 396.0}  # per face, benchmarks/bench_network.py's FlopCounterMode count
PEAK_CALLS = 3  # timed calls per shape and round
PEAK_SHAPES = ((512, 32), (256, 64), (128, 128), (64, 256), (32, 512))  # (channels, side)
LABELS = {'mfr': 'PaniniNet MFR 512->1024', 'gfpgan1.3': 'GFPGANv1Clean 512->512'}


def cpu_name():
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def psnr(a, b):
    """PSNR (dB) of two [-1, 1] outputs after ``(y + 1) / 2`` and clamping to [0, 1] (peak 1)."""
    a = ((a.float() + 1) / 2).clamp(0, 1)
    b = ((b.float() + 1) / 2).clamp(0, 1)
    mse = (a - b).double().pow(2).mean().item()
    return float('inf') if mse == 0 else 10 * math.log10(1.0 / mse)


# ---------------------------------------------------------------------------------------------------------------------
# accuracy
# ---------------------------------------------------------------------------------------------------------------------
def recipe_families(shared, tag):
    """fp32 and bf16 PaniniFamily of the official recipe weights of ``tag`` ('mfr' | 'sr'), and the official input."""
    sys.path.insert(0, osp.join(REPO, "tests", "weights"))  # the recipe is test material
    from official_recipe import make_recipe_state_dict

    from panininet.archs.panini_arch import PaniniNet
    from panininet.families.panini_family import PaniniFamily
    from panininet.weights.official import convert_official_state_dict

    ref = osp.join(shared, 'official_reference')
    with open(osp.join(ref, f'manifest_panini_{tag}.json')) as f:
        manifest = json.load(f)
    state_dict, arch_opt = convert_official_state_dict(make_recipe_state_dict(manifest))
    net = PaniniNet(**arch_opt)
    net.load_state_dict(state_dict, strict=True)
    fams = {p: PaniniFamily(copy.deepcopy(net), 'cpu', p) for p in ('fp32', 'bf16')}
    return fams, torch.from_numpy(np.load(osp.join(ref, f'{tag}_input.npy')))


def test_faces(shared, size):
    """The test photos' aligned faces as (1, 3, size, size) RGB in [-1, 1], by file name."""
    import cv2
    faces = {}
    for path in sorted(glob.glob(osp.join(shared, 'testdata', 'cropped_faces', '*.png'))):
        img = cv2.imread(path, cv2.IMREAD_COLOR)
        if img.shape[:2] != (size, size):
            img = cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)
        rgb = torch.from_numpy(img[:, :, ::-1].copy()).permute(2, 0, 1).float().div(127.5).sub(1)
        faces[osp.basename(path)] = rgb.unsqueeze(0)
    return faces


def accuracy(shared):
    """Rows (network, input, PSNR, max abs) of bf16 against fp32."""
    rows = []
    for tag, name in (('mfr', 'PaniniNet MFR (recipe weights)'), ('sr', 'PaniniNet SR16 (recipe weights)')):
        fams, x = recipe_families(shared, tag)
        inputs = {'official input': x, **test_faces(shared, fams['fp32'].in_size)}
        for label, face in inputs.items():
            y32, y16 = fams['fp32'](face), fams['bf16'](face)
            rows.append((name, label, psnr(y16, y32), (y16 - y32).abs().max().item()))
            print(f'# {rows[-1]}', flush=True)
        del fams
    return rows


# ---------------------------------------------------------------------------------------------------------------------
# speed
# ---------------------------------------------------------------------------------------------------------------------
def conv_peak_probe(dtype):
    """A callable that runs the peak shapes once in ``dtype`` and returns the best GFLOP/s among them."""
    cases = []
    for c, side in PEAK_SHAPES:
        x = torch.randn(1, c, side, side).to(dtype).contiguous(memory_format=torch.channels_last)
        w = torch.randn(c, c, 3, 3).to(dtype).contiguous(memory_format=torch.channels_last)
        cases.append((x, w, 2 * c * c * 9 * side * side / 1e9))

    def probe():
        best = 0.0
        for x, w, gflop in cases:
            F.conv2d(x, w, padding=1)  # oneDNN picks and caches its kernel on the first call
            for _ in range(PEAK_CALLS):  # best of a few calls: one call is easily hit by another process
                t0 = time.perf_counter()
                F.conv2d(x, w, padding=1)
                best = max(best, gflop / (time.perf_counter() - t0))
        return best

    return probe


def onnx_runner(threads):
    """Export an fp32 PaniniNet MFR (random weights) and return a callable running it in onnxruntime."""
    import onnxruntime as ort

    from panininet.archs.panini_arch import PaniniNet
    from panininet.families.variants import variant_kwargs
    from panininet.platform.onnx_export import export_onnx

    torch.manual_seed(0)
    net = PaniniNet(**variant_kwargs('mfr')).eval()
    tmp = tempfile.mkdtemp()
    path = osp.join(tmp, 'mfr.onnx')
    t0 = time.perf_counter()
    export_onnx(net, path)
    print(f'# onnx export {time.perf_counter() - t0:.1f} s', flush=True)
    del net
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(path, sess_options=options, providers=['CPUExecutionProvider'])
    os.remove(path)
    feeds = {i.name: (np.random.rand(1, 3, 512, 512).astype(np.float32) * 2 - 1 if i.name != 'mask_bias'
                      else np.zeros(5, np.float32)) for i in session.get_inputs()}
    return lambda: session.run(None, feeds)


def speed(args):
    from panininet.families import random_family

    torch.set_num_threads(args.threads)
    x = torch.rand(1, 3, 512, 512) * 2 - 1
    runs = {}
    for name in ('mfr', 'gfpgan1.3'):
        for precision in ('fp32', 'bf16'):
            torch.manual_seed(0)
            fam = random_family(name, 'cpu', precision)
            runs[(name, precision)] = (lambda f=fam: f(x))
    if args.onnx:
        runs[('onnxruntime', 'fp32')] = onnx_runner(args.threads)
    probes = {p: conv_peak_probe(d) for p, d in (('fp32', torch.float32), ('bf16', torch.bfloat16))}
    with torch.no_grad():
        for key in ('mfr', 'gfpgan1.3'):
            y32, y16 = runs[(key, 'fp32')](), runs[(key, 'bf16')]()
            print(f'# {key}: bf16 vs fp32 (random weights, random input): PSNR {psnr(y16, y32):.1f} dB, '
                  f'max abs {(y16 - y32).abs().max().item():.3g}', flush=True)
        for fn in runs.values():  # warm-up: oneDNN kernels, cached bf16 weights
            fn()
        best = dict.fromkeys(runs, float('inf'))
        best_cpu = dict.fromkeys(runs, float('inf'))
        peak = dict.fromkeys(probes, 0.0)
        for r in range(args.rounds):
            for p, probe in probes.items():
                peak[p] = max(peak[p], probe())
            for key, fn in runs.items():
                c0, t0 = time.process_time(), time.perf_counter()
                fn()
                best[key] = min(best[key], time.perf_counter() - t0)
                best_cpu[key] = min(best_cpu[key], time.process_time() - c0)
            print(f'round {r}: ' + ', '.join(f'{k[0]} {k[1]} {v:.2f} s' for k, v in best.items()) +
                  f'; peak fp32 {peak["fp32"]:.0f}, bf16 {peak["bf16"]:.0f} GFLOP/s; '
                  f'load {os.getloadavg()[0]:.1f}', flush=True)
    return best, best_cpu, peak


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--rounds', type=int, default=3)
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--onnx', action='store_true', help='also onnxruntime (fp32 export of the same network)')
    parser.add_argument('--accuracy-only', action='store_true', help='only the PSNR table (needs ../shared)')
    parser.add_argument('--no-accuracy', action='store_true', help='skip the PSNR table')
    parser.add_argument('--shared', default=os.environ.get('PANINI_SHARED_DIR') or osp.join(REPO, '..', 'shared'))
    args = parser.parse_args()
    reuse_freed_memory()  # the whole process, both networks (as the CLI on a CPU)
    units = ', '.join(cpu_bf16_units()) or 'none (bf16 is emulated: expect it slower than fp32)'
    load0 = os.getloadavg()
    print(f'machine: {cpu_name()}, {os.cpu_count()} CPUs, bf16 units: {units}; torch {torch.__version__}, '
          f'{args.threads} threads; load at start {load0[0]:.1f} {load0[1]:.1f} {load0[2]:.1f}', flush=True)

    acc_rows = []
    if not args.no_accuracy:
        if osp.isdir(osp.join(args.shared, 'official_reference')):
            with torch.no_grad():
                acc_rows = accuracy(args.shared)
        else:
            print(f'# accuracy skipped: {args.shared}/official_reference is absent')
    if not args.accuracy_only:
        best, best_cpu, peak = speed(args)
    load1 = os.getloadavg()
    print(f'\nload (1, 5, 15 min) at the end: {load1[0]:.1f} {load1[1]:.1f} {load1[2]:.1f}')
    if acc_rows:
        print('\n| network | input | PSNR bf16 vs fp32 (dB) | max abs diff |')
        print('|---|---|---:|---:|')
        for net, label, p, m in acc_rows:
            print(f'| {net} | {label} | {p:.1f} | {m:.3g} |')
    if args.accuracy_only:
        return
    print(f'\nconv peak measured (3x3, channels_last, best shape): fp32 {peak["fp32"]:.0f} GFLOP/s, '
          f'bf16 {peak["bf16"]:.0f} GFLOP/s ({peak["bf16"] / peak["fp32"]:.2f}x)')
    print(f'best of {args.rounds} alternating rounds, batch 1, freed memory reused (panininet.platform.allocator)')
    print('| network | precision | ms/face | CPU ms/face | GFLOP/s | vs GFPGAN (same precision) | fraction of peak | '
          'bf16 speed-up |')
    print('|---|---|---:|---:|---:|---:|---:|---:|')
    for (name, precision), seconds in best.items():
        flop = GFLOP['mfr' if name == 'onnxruntime' else name]
        rate = flop / seconds
        gfp = GFLOP['gfpgan1.3'] / best[('gfpgan1.3', precision)]
        speedup = f'{best[(name, "fp32")] / seconds:.2f}x' if precision == 'bf16' else ''
        label = 'PaniniNet MFR in onnxruntime' if name == 'onnxruntime' else LABELS[name]
        print(f'| {label} | {precision} | {seconds * 1e3:.0f} | {best_cpu[(name, precision)] * 1e3:.0f} | '
              f'{rate:.1f} | {rate / gfp:.2f} | {rate / peak[precision]:.2f} | {speedup} |')


if __name__ == '__main__':
    main()
