"""Does ``torch.compile`` pay for its compile time on CPU? PaniniNet MFR eager against compiled, in one process.

    python benchmarks/bench_compile.py                 # Inductor, default options
    python benchmarks/bench_compile.py --freezing      # Inductor with freezing (weights folded and pre-packed)

PaniniNet MFR (512 -> 1024, random weights), batch ``--batch``, under ``torch.no_grad``: the eager forward (with the
CPU fast forwards, README "CPU efficiency") best of ``--repeats``, then ``torch.compile(net)``: the first call (the
compile, timed) and the compiled forward best of ``--repeats``. Prints the compile time, ms/face of both, the max
|difference| of the outputs and the number of faces after which the compile has paid for itself (compile time /
time saved per face), or that it never does. While compiling, the CPU fast forwards step aside
(``panininet.platform.native_ops.eager_cpu_inference`` is False), so Inductor sees BasicSR's plain ops.
"""
import argparse
import os
import time

import torch

import panininet  # noqa: F401  (compat before basicsr)
from panininet.platform.allocator import reuse_freed_memory


def best_of(fn, repeats):
    best = float('inf')
    out = None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--batch', type=int, default=1)
    parser.add_argument('--repeats', type=int, default=2)
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--freezing', action='store_true', help="torch._inductor.config.freezing = True")
    parser.add_argument('--reuse-freed-memory', action='store_true',
                        help='panininet.platform.allocator.reuse_freed_memory() first (as the CLI on a CPU)')
    args = parser.parse_args()
    if args.reuse_freed_memory:
        reuse_freed_memory()
    from panininet.archs.panini_arch import PaniniNet

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    net = PaniniNet().eval()
    x = torch.rand(args.batch, 3, 512, 512) * 2 - 1
    if args.freezing:
        import torch._inductor.config as inductor_config
        inductor_config.freezing = True
    with torch.no_grad():
        net(x)
        eager_s, eager_out = best_of(lambda: net(x), args.repeats)
        compiled = torch.compile(net)
        t0 = time.perf_counter()
        compiled(x)
        compile_s = time.perf_counter() - t0
        comp_s, comp_out = best_of(lambda: compiled(x), args.repeats)
    b = args.batch
    saved = (eager_s - comp_s) / b
    print(f'{args.threads} threads, {os.cpu_count()} CPUs, batch {b}, torch {torch.__version__}, '
          f'freezing {args.freezing}, load {os.getloadavg()[0]:.1f}')
    print(f'max |compiled - eager| {(comp_out - eager_out).abs().max().item():.1e}')
    print('| forward | ms/face |\n|---|---:|')
    print(f'| eager (CPU fast forwards) | {eager_s * 1e3 / b:.0f} |')
    print(f'| torch.compile, first call (compiles) | {compile_s * 1e3 / b:.0f} |')
    print(f'| torch.compile, compiled | {comp_s * 1e3 / b:.0f} |')
    if saved > 0:
        print(f'compile {compile_s:.0f} s; pays for itself after {compile_s / saved:.0f} faces')
    else:
        print(f'compile {compile_s:.0f} s; the compiled forward is not faster: it never pays')


if __name__ == '__main__':
    main()
