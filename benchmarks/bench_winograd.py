"""Winograd F(2x2, 3x3) and F(4x4, 3x3) against oneDNN's direct 3x3 convolution, float32 CPU, batch 1.

    python benchmarks/bench_winograd.py              # the table below, best of 5 calls per shape
    python benchmarks/bench_winograd.py --calls 9

For each shape (channels in = out, map size; channels_last input) it prints the direct conv's time and GFLOP/s,
each Winograd tile's (:func:`panininet.platform.native_ops.conv3x3_winograd`) time, speed-up over the direct conv and
largest difference relative to the output's largest value, and what
:func:`~panininet.platform.native_ops.winograd_tile` picks. The shapes cover Panini-Net's GPM, IFE and DRE (512
channels at 8-64, 256 at 64-128, 128 at 128-256, 64 at 512, 32 at 1024) and the neighbours of the thresholds.
Freed memory is reused (:mod:`panininet.platform.allocator`), as in the CLI.
"""
import argparse
import time

import torch
from torch.nn import functional as F

SHAPES = [(512, 8), (512, 16), (512, 32), (512, 64), (256, 16), (256, 32), (256, 64), (256, 128), (128, 32),
          (128, 64), (128, 128), (128, 256), (64, 256), (64, 512), (32, 1024)]


def best_ms(fn, calls):
    """Best wall time of ``calls`` calls of ``fn`` after one warm-up call, in ms."""
    fn()
    best = float('inf')
    for _ in range(calls):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best * 1e3


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--calls', type=int, default=5, help='timed calls per shape and method (best taken)')
    parser.add_argument('--threads', type=int, default=None, help='torch threads (default: torch\'s)')
    args = parser.parse_args()
    from panininet.platform.allocator import reuse_freed_memory
    from panininet.platform.native_ops import conv3x3_winograd, winograd_tile, winograd_weight
    reuse_freed_memory()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f'torch {torch.__version__}, {torch.get_num_threads()} threads')
    print('| channels | map | direct ms | direct GFLOP/s | F(2x2) ms | speed-up | max rel diff | F(4x4) ms | '
          'speed-up | max rel diff | chosen |')
    print('|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|')
    with torch.no_grad():
        for ch, size in SHAPES:
            x = torch.randn(1, ch, size, size).contiguous(memory_format=torch.channels_last)
            w = torch.randn(ch, ch, 3, 3) / (9 * ch)**0.5
            b = torch.randn(ch)
            ref = F.conv2d(x, w, b, padding=1)
            direct = best_ms(lambda x=x, w=w, b=b: F.conv2d(x, w, b, padding=1), args.calls)
            gflop = 2 * ch * ch * 9 * size * size / 1e9
            row = f'| {ch} | {size} | {direct:.1f} | {gflop / direct * 1e3:.0f} |'
            for tile in (2, 4):
                u = winograd_weight(w, tile)
                diff = ((conv3x3_winograd(x, u, b) - ref).abs().max() / ref.abs().max()).item()
                ms = best_ms(lambda x=x, u=u, b=b: conv3x3_winograd(x, u, b), args.calls)
                row += f' {ms:.1f} | {direct / ms:.2f} | {diff:.1e} |'
            tile = winograd_tile(x, w)
            print(row + (f' F({tile}x{tile}) |' if tile else ' direct |'), flush=True)


if __name__ == '__main__':
    main()
