"""StyleGAN2 ops: panininet's fast native ops against basicsr's reference, per call site and in a whole generator.

Prints two tables:

1. Per op at the shapes of a 1024 StyleGAN2 generator (channel_multiplier 2, batch 1) and of its discriminator:
   reference ms, fast ms, speed-up, max |fast - reference|.
2. ``--generator``: a basicsr ``StyleGAN2Generator(1024)`` forward (batch 1, no grad) with each op path, and a
   ``torch.profiler`` breakdown of where the time goes (modulated convs, up/down-sampling FIR, bias + leaky ReLU,
   the rest).

Times are the best of ``--repeats`` runs after one warm-up.

Examples::

    python benchmarks/bench_stylegan2_ops.py                 # ops table only (about a minute on 2 cores)
    python benchmarks/bench_stylegan2_ops.py --generator     # + generator forward and profile (a few minutes)
"""
import argparse
import contextlib
import importlib
import time

import torch

import panininet  # noqa: F401  (before basicsr)
from panininet.platform import compat_basicsr as compat
from panininet.platform import native_ops as ops

UP_MOD = importlib.import_module('basicsr.ops.upfirdn2d.upfirdn2d')
K4 = torch.outer(torch.tensor([1., 3, 3, 1]), torch.tensor([1., 3, 3, 1])) / 64

# name, input shape, kernel scale, up, down, pad, with backward
CASES = [
    ('blur after up-conv @1024', (1, 32, 1025, 1025), 4, 1, 1, (1, 1), False),
    ('blur after up-conv @512', (1, 64, 513, 513), 4, 1, 1, (1, 1), False),
    ('blur after up-conv @256', (1, 128, 257, 257), 4, 1, 1, (1, 1), False),
    ('blur after up-conv @64', (1, 512, 65, 65), 4, 1, 1, (1, 1), False),
    ('to_rgb skip up x2 512->1024', (1, 3, 512, 512), 4, 2, 1, (2, 1), False),
    ('D blur before stride-2 conv @512', (1, 64, 512, 512), 1, 1, 1, (2, 2), False),
    ('D blur, forward + backward @256', (1, 128, 256, 256), 1, 1, 1, (2, 2), True),
    ('down x2 (UpFirDnDownsample) @512', (1, 64, 512, 512), 1, 1, 2, (1, 1), False),
]


def best_ms(fn, repeats):
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times) * 1e3


def ops_table(repeats):
    reference = compat.reference_upfirdn2d()
    print('| op | input | reference ms | fast ms | speed-up | max abs diff |')
    print('|---|---|---:|---:|---:|---:|')
    for name, shape, scale, up, down, (p0, p1), backward in CASES:
        x = torch.randn(shape, requires_grad=backward)
        kernel = K4 * scale
        args = (kernel, up, up, down, down, p0, p1, p0, p1)

        def run(op, x=x, args=args, backward=backward):
            with torch.set_grad_enabled(backward):
                y = op(x, *args)
                if backward:
                    y.square().sum().backward()
            return y.detach()

        diff = (run(ops.upfirdn2d_fast) - run(reference)).abs().max().item()
        t_ref = best_ms(lambda: run(reference), repeats)
        t_fast = best_ms(lambda: run(ops.upfirdn2d_fast), repeats)
        print(f'| upfirdn2d {name} | {tuple(shape)} | {t_ref:.1f} | {t_fast:.1f} | {t_ref / t_fast:.2f}x | '
              f'{diff:.1e} |', flush=True)
    x = torch.randn(1, 32, 1024, 1024)
    bias = torch.randn(32)
    with torch.no_grad():
        diff = (ops.fused_leaky_relu_fast(x, bias) - ops.fused_leaky_relu_native(x, bias)).abs().max().item()
        t_ref = best_ms(lambda: ops.fused_leaky_relu_native(x, bias), repeats)
        t_fast = best_ms(lambda: ops.fused_leaky_relu_fast(x, bias), repeats)
    print(f'| fused bias + leaky ReLU (no grad) | {tuple(x.shape)} | {t_ref:.1f} | {t_fast:.1f} | '
          f'{t_ref / t_fast:.2f}x | {diff:.1e} |', flush=True)


@contextlib.contextmanager
def labelled_ops():
    """Wrap the installed native ops in profiler labels (restored on exit)."""
    up_op, act_op = UP_MOD.upfirdn2d_native, compat._FusedLeakyReLUDispatch.native or ops.fused_leaky_relu_native

    def upfirdn2d(*args):
        with torch.profiler.record_function('panini::upfirdn2d'):
            return up_op(*args)

    def fused_act(*args):
        with torch.profiler.record_function('panini::fused_leaky_relu'):
            return act_op(*args)

    saved = UP_MOD.upfirdn2d_native, compat._UpFirDn2dDispatch.native, compat._FusedLeakyReLUDispatch.native
    UP_MOD.upfirdn2d_native = compat._UpFirDn2dDispatch.native = upfirdn2d
    compat._FusedLeakyReLUDispatch.native = fused_act
    try:
        yield
    finally:
        UP_MOD.upfirdn2d_native, compat._UpFirDn2dDispatch.native, compat._FusedLeakyReLUDispatch.native = saved


def generator_table(repeats):
    from basicsr.archs.stylegan2_arch import StyleGAN2Generator
    from torch.profiler import ProfilerActivity, profile
    torch.manual_seed(0)
    gen = StyleGAN2Generator(1024, 512, 8, channel_multiplier=2).eval()
    z = [torch.randn(1, 512)]
    results = {}
    for fast in (False, True):
        compat.install_fast_ops(fast)
        with torch.no_grad():
            results[fast] = best_ms(lambda: gen(z, randomize_noise=False), repeats)
            with labelled_ops(), profile(activities=[ProfilerActivity.CPU]) as prof:
                gen(z, randomize_noise=False)
        events = prof.key_averages()
        total = sum(e.self_cpu_time_total for e in events) / 1e3
        label = {e.key: e.cpu_time_total / 1e3 for e in events if e.key.startswith('panini::')}
        conv = sum(e.self_cpu_time_total for e in events if 'conv' in e.key) / 1e3
        fir = label.get('panini::upfirdn2d', 0.0)
        act = label.get('panini::fused_leaky_relu', 0.0)
        name = 'fast' if fast else 'reference'
        print(f'\nprofile, {name} ops (one forward, {total:.0f} ms of CPU-thread time):')
        print('| part | ms | share |')
        print('|---|---:|---:|')
        parts = [('modulated convs (conv / transposed conv, excl. FIR)', conv - fir),
                 ('upfirdn2d (FIR blur / up-sampling)', fir), ('bias + leaky ReLU', act),
                 ('rest (noise injection, weight modulation/demodulation, to_rgb skip adds, mapping MLP)',
                  total - conv - act)]
        for part, ms in parts:
            print(f'| {part} | {ms:.0f} | {ms / total:.0%} |')
        print(prof.key_averages().table(sort_by='self_cpu_time_total', row_limit=10))
    compat.install_fast_ops(True)
    print('| StyleGAN2Generator(1024), batch 1, forward | reference ms | fast ms | speed-up |')
    print('|---|---:|---:|---:|')
    print(f'| | {results[False]:.0f} | {results[True]:.0f} | {results[False] / results[True]:.2f}x |')


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--generator', action='store_true', help='also time and profile a 1024 generator forward')
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f'torch {torch.__version__}, {args.threads} threads, best of {args.repeats}\n')
    ops_table(args.repeats)
    if args.generator:
        generator_table(max(1, args.repeats - 1))


if __name__ == '__main__':
    main()
