"""onnxruntime (CPU) against PyTorch per face, in one process: the same PaniniNet, exported by scripts/export_onnx.py.

    python benchmarks/bench_onnx.py                       # MFR 512 -> 1024, random weights, batch 1, 2 threads
    python benchmarks/bench_onnx.py --batch-sizes 1 4 --repeats 3 --variant sr16

The network gets random weights (speed does not depend on the values; the noise strengths are set non-zero so the
stored noise is part of the work), is exported through :func:`panininet.platform.onnx_export.export_onnx` to a
temporary file,
and both runtimes get the same input with ``mask_bias`` 0.5 per level. Per batch size the two are timed alternately
(``--repeats`` rounds after one untimed call each), best round per runtime, so load from other processes hits both
alike; the 1-minute load average is printed with the figures. Both use ``--threads`` threads (torch intra-op,
onnxruntime ``intra_op_num_threads``). Also printed: export seconds and the max abs difference of the outputs.
"""
import argparse
import os
import os.path as osp
import tempfile
import time

import numpy as np
import torch

import panininet  # noqa: F401  (compat before basicsr)
from panininet.archs.panini_arch import PaniniNet
from panininet.families.variants import VARIANTS, variant_kwargs
from panininet.platform.onnx_export import export_onnx

TINY = {'in_size': 32, 'out_size': 64, 'num_style_feat': 32, 'narrow': 0.125, 'channel_multiplier': 1,
        'rrdb_channels': 4, 'num_rrdbs': 1, 'rrdb_growth': 4, 'dre_num_feat': 8}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--variant', default='mfr', choices=sorted(VARIANTS))
    parser.add_argument('--batch-sizes', nargs='+', type=int, default=[1])
    parser.add_argument('--repeats', type=int, default=2)
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--tiny', action='store_true', help='a tiny network (plumbing check only)')
    args = parser.parse_args()
    import onnxruntime as ort

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    net = PaniniNet(**(TINY if args.tiny else variant_kwargs(args.variant))).eval()
    with torch.no_grad():
        for conv in net.gpm.style_convs:
            conv.weight.fill_(0.1)
    with tempfile.TemporaryDirectory() as tmp:
        path = osp.join(tmp, 'net.onnx')
        t0 = time.perf_counter()
        export_onnx(net, path)
        export_s = time.perf_counter() - t0
        options = ort.SessionOptions()
        options.intra_op_num_threads = args.threads
        options.inter_op_num_threads = 1
        t0 = time.perf_counter()
        session = ort.InferenceSession(path, sess_options=options, providers=['CPUExecutionProvider'])
        session_s = time.perf_counter() - t0
        has_bias = 'mask_bias' in {i.name for i in session.get_inputs()}
        bias = np.full(net.num_levels, 0.5, np.float32)
        rows = []
        for batch in args.batch_sizes:
            x = torch.rand(batch, 3, net.in_size, net.in_size) * 2 - 1
            feeds = {'input': x.numpy()}
            if has_bias:
                feeds['mask_bias'] = bias
            kwargs = {'mask_bias': torch.from_numpy(bias)} if has_bias else {}

            def run_torch(x=x, kwargs=kwargs):
                with torch.no_grad():
                    return net(x, **kwargs).numpy()

            def run_ort(feeds=feeds):
                return session.run(['output'], feeds)[0]

            y_torch, y_ort = run_torch(), run_ort()  # untimed first calls
            best = {'pytorch': float('inf'), 'onnxruntime': float('inf')}
            for _ in range(args.repeats):
                for name, fn in (('pytorch', run_torch), ('onnxruntime', run_ort)):
                    t0 = time.perf_counter()
                    fn()
                    best[name] = min(best[name], time.perf_counter() - t0)
            rows.append((batch, best, float(np.abs(y_torch - y_ort).max())))
    load = os.getloadavg()[0] if hasattr(os, 'getloadavg') else float('nan')
    name = 'tiny 32->64' if args.tiny else f'{args.variant} {net.in_size}->{net.out_size}'
    print(f'PaniniNet {name}; torch {torch.__version__}, onnxruntime {ort.__version__}, {args.threads} threads, '
          f'{os.cpu_count()} CPUs, load {load:.1f} (1 min) at the end; best of {args.repeats} alternating rounds')
    print(f'export {export_s:.1f} s, onnxruntime session {session_s:.1f} s')
    print('| batch | PyTorch ms/face | onnxruntime ms/face | PyTorch time / onnxruntime time | max abs diff |')
    print('|---:|---:|---:|---:|---:|')
    for batch, best, diff in rows:
        pt, rt = best['pytorch'] / batch * 1e3, best['onnxruntime'] / batch * 1e3
        print(f'| {batch} | {pt:.0f} | {rt:.0f} | {pt / rt:.2f} | {diff:.1e} |')


if __name__ == '__main__':
    main()
