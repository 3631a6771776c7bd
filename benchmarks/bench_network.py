"""Network speed: PaniniNet MFR (512 -> 1024), GFPGAN v1.3 (GFPGANv1Clean, 512 -> 512), MMRB-Net (512 -> 512) and
GPEN-BFR-512 (GPENNet), random weights.

Prints one table: parameters, ms per face at each batch size, FLOPs per face
(``torch.utils.flop_counter.FlopCounterMode``, counted once at batch 1 on the meta device: convolutions and
matmuls, 2 FLOPs per multiply-add), effective GFLOP/s, peak memory, the load average, with panininet's fast
StyleGAN2 ops (``--ops fast``) and basicsr's reference ops (``--ops ref``, PaniniNet only).
Every configuration runs in a fresh child process, so peak memory (CPU: peak RSS of that process, model included;
CUDA: ``max_memory_allocated``) and timings do not leak between rows. Time = best of ``--repeats`` forward passes
after ``--warmup`` untimed ones, ``torch.no_grad()``, ``eval()``.

GFPGAN's network needs the gfpgan package, which panininet does not depend on. Install it outside the venv, e.g.
``pip download --no-deps gfpgan -d /tmp/w && pip install --no-deps --target /tmp/gfpgan_site /tmp/w/gfpgan-*.whl``
and run with ``PYTHONPATH=/tmp/gfpgan_site``; without it the GFPGAN rows say so.

Examples::

    python benchmarks/bench_network.py                                  # CPU, 2 threads, batch 1 and 8
    python benchmarks/bench_network.py --batch-sizes 1 --repeats 2 --nets panini --ops fast ref
    python benchmarks/bench_network.py --device cuda --dtype bf16 --batch-sizes 1 8 16 --channels-last
    python benchmarks/bench_network.py --nets panini gfpgan mmrb gpen --ops fast --batch-sizes 1 --repeats 1
"""
import argparse
import json
import os
import subprocess
import sys
import time

DTYPES = ('fp32', 'bf16', 'fp16')
NAMES = {'panini': 'PaniniNet MFR 512->1024', 'gfpgan': 'GFPGANv1Clean 512->512', 'mmrb': 'MMRBNet 512->512',
         'gpen': 'GPENNet (GPEN-BFR-512)'}


# --nets name -> restoration family (panininet.families)
FAMILY = {'panini': 'mfr', 'gfpgan': 'gfpgan1.3', 'mmrb': 'mmrb', 'gpen': 'gpen512'}
# --tiny: networks small enough for a plumbing check (benchmarks/gpu_check.py --cpu-smoke); figures meaningless
TINY = {'panini': {'in_size': 32, 'out_size': 64, 'num_style_feat': 32, 'narrow': 0.125, 'channel_multiplier': 1,
                   'rrdb_channels': 4, 'num_rrdbs': 1, 'rrdb_growth': 4, 'dre_num_feat': 8},
        'gfpgan': {'out_size': 64, 'num_style_feat': 32, 'narrow': 0.125}}


def build(net_name, device='cpu', precision='fp32', tiny=False):
    """The family's network with random weights, in eval mode, computing in ``precision``, and its input size."""
    import panininet  # noqa: F401  (before basicsr / gfpgan)
    from panininet.families import random_family

    if net_name not in FAMILY:
        raise ValueError(f'unknown net {net_name!r}')
    if tiny and net_name not in TINY:
        raise ValueError(f'--tiny: no tiny configuration of {net_name!r}')
    family = random_family(FAMILY[net_name], device, precision, **(TINY[net_name] if tiny else {}))
    return family, family.in_size


def forward(family, x):
    return family(x)  # no_grad and the autocast of --dtype inside (panininet.families)


def count_flops(net_name, tiny=False):
    """FLOPs of one face (batch 1) and the parameter count, on the meta device (no memory, no time)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    import panininet  # noqa: F401
    with torch.device('meta'):
        net, size = build(net_name, 'meta', tiny=tiny)
        x = torch.zeros(1, 3, size, size)
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        forward(net, x)
    return counter.get_total_flops(), sum(p.numel() for p in net.net.parameters())


def run_one(cfg):
    """One configuration in this (child) process; returns a dict of results."""
    import resource

    import torch

    from panininet.platform import compat_basicsr as compat
    from panininet.platform.allocator import reuse_freed_memory
    if cfg.get('reuse_freed_memory'):
        reuse_freed_memory()  # process-wide, as inference_panini.py on a CPU
    torch.set_num_threads(cfg['threads'])
    compat.install_fast_ops(fast=cfg['ops'] == 'fast')
    device = torch.device(cfg['device'])
    net, size = build(cfg['net'], device, cfg['dtype'], cfg.get('tiny', False))
    if cfg['dtype'] == 'fp32' and device.type == 'cuda':
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    # only the input: conv outputs follow its layout (StyleGAN2's 5-D modulated weights cannot be channels_last;
    # basicsr's ModulatedConv2d views (b, c, h, w) as (1, b * c, h, w), which fails for b > 1 in channels_last)
    memory_format = torch.channels_last if cfg['channels_last'] else torch.contiguous_format
    x = torch.rand(cfg['batch'], 3, size, size, device=device).mul_(2).sub_(1).to(memory_format=memory_format)

    def step():
        y = forward(net, x)
        if device.type == 'cuda':
            torch.cuda.synchronize()
        return y

    if device.type == 'cuda':
        torch.cuda.reset_peak_memory_stats()
    for _ in range(cfg['warmup']):
        step()
    times = []
    for _ in range(cfg['repeats']):
        t0 = time.perf_counter()
        y = step()
        times.append(time.perf_counter() - t0)
    finite = bool(torch.isfinite(y).all())
    if device.type == 'cuda':
        peak = torch.cuda.max_memory_allocated() / 2**30
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB -> GiB
    return {'seconds': min(times), 'all_seconds': times, 'peak_gib': peak, 'finite': finite,
            'device_name': torch.cuda.get_device_name() if device.type == 'cuda' else 'cpu'}


def child(cfg):
    """Run ``cfg`` in a fresh interpreter; its last stdout line is the JSON result."""
    cmd = [sys.executable, os.path.abspath(__file__), '--child', json.dumps(cfg)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ['(no output)']
        return {'error': tail[0]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--nets', nargs='+', default=['panini', 'gfpgan'], choices=list(NAMES))
    parser.add_argument('--ops', nargs='+', default=['fast', 'ref'], choices=['fast', 'ref'],
                        help='StyleGAN2 op path for PaniniNet (GFPGANv1Clean uses none of them: measured once)')
    parser.add_argument('--batch-sizes', nargs='+', type=int, default=[1, 8])
    parser.add_argument('--repeats', type=int, default=2)
    parser.add_argument('--warmup', type=int, default=1)
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--dtype', default='fp32', choices=DTYPES, help='autocast dtype (fp32: none)')
    parser.add_argument('--channels-last', action='store_true')
    parser.add_argument('--reuse-freed-memory', action='store_true',
                        help='each row: panininet.platform.allocator.reuse_freed_memory() first (as the CLI on a CPU)')
    parser.add_argument('--tiny', action='store_true', help='tiny networks (plumbing check only)')
    parser.add_argument('--json', default=None, help='also write the rows to this JSON file')
    parser.add_argument('--in-process', action='store_true',
                        help='all rows in this process (CUDA: peak memory is reset per row; CPU: peak RSS is not)')
    parser.add_argument('--child', help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_one(json.loads(args.child))))
        return

    flops, params = {}, {}
    for net in args.nets:
        try:
            flops[net], params[net] = count_flops(net, args.tiny)
        except ImportError as err:
            flops[net] = None
            print(f'{net}: not available ({err}); pip install --no-deps gfpgan into a separate --target and add it '
                  'to PYTHONPATH (see the docstring)')
    rows = []
    for net in args.nets:
        if flops[net] is None:
            continue
        for ops_name in (args.ops if net == 'panini' else ['-']):
            for batch in args.batch_sizes:
                cfg = {'net': net, 'ops': 'fast' if ops_name == '-' else ops_name, 'batch': batch,
                       'repeats': args.repeats, 'warmup': args.warmup, 'threads': args.threads,
                       'device': args.device, 'dtype': args.dtype, 'channels_last': args.channels_last,
                       'tiny': args.tiny, 'reuse_freed_memory': args.reuse_freed_memory}
                if args.in_process:
                    import torch
                    try:
                        res = run_one(cfg)
                    except RuntimeError as err:  # e.g. out of memory: report the row, go on
                        res = {'error': str(err).strip().splitlines()[0][:200]}
                    if torch.cuda.is_available():
                        torch.cuda.empty_cache()  # the row's network and activations are gone
                else:
                    res = child(cfg)
                rows.append((net, ops_name, batch, res))
                print(f'# {net} ops={ops_name} batch={batch}: {res}', flush=True)

    import platform
    load = os.getloadavg()
    print(f'\nload average (1, 5, 15 min) at the end: {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}')
    print(f'machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, device {args.device}, '
          f'{args.threads} threads, dtype {args.dtype}, channels_last {args.channels_last}, '
          f'freed memory {"reused" if args.reuse_freed_memory else "returned (glibc default)"}, '
          f'best of {args.repeats} after {args.warmup} warm-up')
    gfp = {b: r['seconds'] / b for n, _, b, r in rows if n == 'gfpgan' and 'seconds' in r}
    ref = {b: r['seconds'] / b for n, o, b, r in rows if n == 'panini' and o == 'ref' and 'seconds' in r}
    print('| network | params (M) | ops | batch | ms/face | faces/s | GFLOP/face | GFLOP/s | peak mem (GiB) | '
          'vs ref ops | time vs GFPGAN |')
    print('|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|')
    out_rows = []
    for net, ops_name, batch, res in rows:
        name = NAMES[net] + (' (tiny)' if args.tiny else '')
        if 'error' in res:
            print(f'| {name} | {params[net] / 1e6:.1f} | {ops_name} | {batch} | failed: {res["error"]} | | | | | | |')
            out_rows.append({'net': name, 'ops': ops_name, 'batch': batch, 'dtype': args.dtype, 'error': res['error']})
            continue
        per_face = res['seconds'] / batch
        gflop = flops[net] / 1e9
        vs_ref = f'{ref[batch] / per_face:.2f}x faster' if net == 'panini' and batch in ref else ''
        vs_gfp = f'{per_face / gfp[batch]:.2f}x' if net != 'gfpgan' and batch in gfp else ''
        print(f'| {name} | {params[net] / 1e6:.1f} | {ops_name} | {batch} | {per_face * 1e3:.1f} | '
              f'{1 / per_face:.2f} | {gflop:.1f} | {gflop / per_face:.1f} | {res["peak_gib"]:.2f} | {vs_ref} | '
              f'{vs_gfp} |')
        out_rows.append({'net': name, 'ops': ops_name, 'batch': batch, 'dtype': args.dtype,
                         'ms_per_face': per_face * 1e3, 'faces_per_s': 1 / per_face, 'gflop_per_face': gflop,
                         'gflop_per_s': gflop / per_face, 'peak_gib': res['peak_gib'], 'finite': res['finite'],
                         'device_name': res['device_name']})
    if args.json:
        from panininet.atomic import write_text_atomic
        write_text_atomic(args.json, json.dumps({'rows': out_rows, 'device': args.device, 'threads': args.threads,
                                                 'load_1min': load[0]}, indent=2))


if __name__ == '__main__':
    main()
