"""CPU efficiency of PaniniNet against GFPGAN, as filed and now, in one process (README "CPU efficiency").

    python benchmarks/bench_cpu_efficiency.py --rounds 3                       # glibc's default malloc behaviour
    python benchmarks/bench_cpu_efficiency.py --rounds 3 --reuse-freed-memory  # panininet.platform.allocator, as the
    CLI

PaniniNet MFR (512 -> 1024, random weights) in three forms, and GFPGANv1Clean (512 -> 512, random weights, needs the
gfpgan package), timed in alternating rounds so that load from other processes hits all alike; best round each:

* ``as filed``: the network when issue 15 was filed: the IFE in NCHW and BasicSR's forwards everywhere
  (:func:`panininet.platform.native_ops.plain_ops`: dense blocks with concatenations, grouped-conv style convs in NCHW).
* ``channels_last IFE``: the IFE switching its input to channels_last, BasicSR's forwards otherwise.
* ``now``: the code as it is: channels_last IFE, :class:`panininet.archs.rrdb.DenseBlock` (no concatenation,
  fused in-place accumulation), the GPM's CPU forwards (channels_last modulated convs, in-place noise / bias /
  activation, a batch face by face).

``--reuse-freed-memory`` applies :func:`panininet.platform.allocator.reuse_freed_memory` first, to the whole process
(GFPGAN
too). Prints the max |difference| of the outputs against ``as filed``, per-round bests with the 1-minute load, and per
network ms/face, GFLOP/s (FLOPs as ``bench_network.py`` counts them: 448.2 / 396.0 GFLOP per face), the GFLOP/s ratio
against GFPGAN, and the kernel time and page faults of its best forward.
"""
import argparse
import contextlib
import os
import resource
import time

import torch

import panininet  # noqa: F401  (compat before basicsr)
from panininet.platform.allocator import reuse_freed_memory

GFLOP = {'panini': 448.2, 'gfpgan': 396.0}  # per face, benchmarks/bench_network.py's FlopCounterMode count


@contextlib.contextmanager
def patched(cls, name, value):
    """``cls.name = value`` inside the block."""
    old = getattr(cls, name)
    setattr(cls, name, value)
    try:
        yield
    finally:
        setattr(cls, name, old)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--rounds', type=int, default=3)
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--batch', type=int, default=1, help='faces per forward')
    parser.add_argument('--reuse-freed-memory', action='store_true',
                        help='panininet.platform.allocator.reuse_freed_memory() for the whole process first')
    args = parser.parse_args()
    if args.reuse_freed_memory and not reuse_freed_memory():
        parser.error('--reuse-freed-memory needs glibc (Linux); this C library has no mallopt.')
    from gfpgan.archs.gfpganv1_clean_arch import GFPGANv1Clean

    from panininet.archs.panini_arch import IFE, PaniniNet
    from panininet.platform.native_ops import plain_ops

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    net = PaniniNet().eval()
    gfpgan = GFPGANv1Clean(out_size=512, num_style_feat=512, channel_multiplier=2, decoder_load_path=None,
                           fix_decoder=False, num_mlp=8, input_is_latent=True, different_w=True, narrow=1,
                           sft_half=True).eval()
    x = torch.rand(args.batch, 3, 512, 512) * 2 - 1

    def as_filed():
        with plain_ops(), patched(IFE, 'memory_format', torch.contiguous_format):
            return net(x)

    def channels_last_ife():
        with plain_ops():
            return net(x)

    runs = {'as filed': as_filed, 'channels_last IFE': channels_last_ife, 'now': lambda: net(x),
            'gfpgan': lambda: gfpgan(x, return_rgb=False)}
    best = dict.fromkeys(runs, float('inf'))
    kernel = {}
    with torch.no_grad():
        ref = as_filed()
        for name in ('channels_last IFE', 'now'):
            print(f'max |{name} - as filed| {(runs[name]() - ref).abs().max().item():.1e}')
        del ref
        runs['gfpgan']()
        for r in range(args.rounds):
            for name, fn in runs.items():
                r0 = resource.getrusage(resource.RUSAGE_SELF)
                t0 = time.perf_counter()
                fn()
                seconds = time.perf_counter() - t0
                r1 = resource.getrusage(resource.RUSAGE_SELF)
                if seconds < best[name]:
                    best[name] = seconds
                    kernel[name] = (r1.ru_stime - r0.ru_stime, r1.ru_minflt - r0.ru_minflt)
            print(f'round {r}: ' + ', '.join(f'{k} {v:.2f} s' for k, v in best.items()) +
                  f'; load {os.getloadavg()[0]:.1f}', flush=True)
    b = args.batch
    gfp = GFLOP['gfpgan'] * b / best['gfpgan']
    freed = 'reused (panininet.platform.allocator)' if args.reuse_freed_memory else 'returned (glibc default)'
    print(f'\n{args.threads} threads, {os.cpu_count()} CPUs, batch {b}, best of {args.rounds} alternating rounds, '
          f'freed memory {freed}')
    print('| network | ms/face | GFLOP/s | GFLOP/s vs GFPGAN | kernel s per forward | page faults per forward |')
    print('|---|---:|---:|---:|---:|---:|')
    for name in runs:
        rate = GFLOP['gfpgan' if name == 'gfpgan' else 'panini'] * b / best[name]
        label = 'GFPGANv1Clean 512->512' if name == 'gfpgan' else f'PaniniNet MFR, {name}'
        stime, faults = kernel[name]
        print(f'| {label} | {best[name] * 1e3 / b:.0f} | {rate:.1f} | {rate / gfp:.2f} | {stime:.2f} | {faults} |')


if __name__ == '__main__':
    main()
