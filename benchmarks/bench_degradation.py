#!/usr/bin/env python
"""Throughput of PaniniMFRDataset (1024 HQ PNG -> 512 LQ + 1024 GT tensors), per CPU core, per degradation preset.

The presets (default: panini_mfr, eq. (10), and realworld, Real-ESRGAN's second-order model) are timed in
alternating rounds in one process, so a busy machine slows both alike. Runs single-threaded (OpenCV and torch
limited to one thread) and counts CPU time (``time.process_time``), so the figure is samples/s per core even on a
busy machine: a DataLoader with W workers delivers about W times this.
Prints the end-to-end rate of ``dataset[i]`` in training mode (wall clock too) and a breakdown of where the time
goes (panini_mfr: the same steps timed one by one; realworld: the time inside each kind of stage).

    python benchmarks/bench_degradation.py                  # synthetic 1024 PNG faces in a temp folder
    python benchmarks/bench_degradation.py --source DIR     # re-save DIR's images as 1024 PNGs first
    python benchmarks/bench_degradation.py --presets realworld
"""
import argparse
import os
import os.path as osp
import sys
import tempfile
import time

import cv2
import numpy as np
import torch

import panininet  # noqa: F401  (compat before basicsr)
from panininet.data import degradations as D
from panininet.data import realworld_degradation as RW
from panininet.data.data_util import IMG_EXTENSIONS, prepare_hq, to_tensor
from panininet.data.degradation_sampler import make_lq
from panininet.data.mfr_pair_dataset import PaniniMFRDataset


def synthetic_face_png(path, seed, size=1024):
    """A 1024 PNG with smooth shading and fine grain (PNG size and decode time comparable to FFHQ's)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    img = np.stack([0.5 + 0.3 * np.sin(4 * xx + seed), 0.5 + 0.3 * np.cos(3 * yy), 0.4 + 0.4 * xx * yy], axis=2)
    img += cv2.GaussianBlur(rng.standard_normal((size, size, 3)).astype(np.float32), (0, 0), 1.0) * 0.05
    cv2.imwrite(path, np.clip(img * 255, 0, 255).astype(np.uint8))


def prepare_folder(folder, source, num):
    if source:
        names = sorted(n for n in os.listdir(source) if n.lower().endswith(IMG_EXTENSIONS))[:num]
        if not names:
            sys.exit(f'error: no images in --source {source!r}')
        for i, n in enumerate(names):
            img = cv2.imread(osp.join(source, n), cv2.IMREAD_COLOR)
            if img is None:
                sys.exit(f'error: cannot read {osp.join(source, n)!r}')
            cv2.imwrite(osp.join(folder, f'{i:05d}.png'), cv2.resize(img, (1024, 1024), interpolation=cv2.INTER_AREA))
    else:
        for i in range(num):
            synthetic_face_png(osp.join(folder, f'{i:05d}.png'), i)


def breakdown(ds, n, clock):
    """Time each step of ``PaniniMFRDataset.__getitem__`` separately (ms per sample)."""
    steps = {}

    def tick(name, t0):
        steps[name] = steps.get(name, 0.0) + clock() - t0
        return clock()

    rng = np.random.default_rng(0)
    for i in range(n):
        path = ds.paths[i % len(ds)]
        t = clock()
        buf = open(path, 'rb').read()
        t = tick('read file', t)
        img = cv2.imdecode(np.frombuffer(buf, np.uint8), cv2.IMREAD_COLOR)
        t = tick('PNG decode', t)
        gt, _ = prepare_hq(img, ds.out_size, rng, ds.use_hflip)
        params = ds.sampler.sample(rng)
        t = tick('hflip + sample params', t)
        x = D.resize(gt, ds.in_size, 'area').astype(np.float32) * np.float32(1 / 255.)
        t = tick('area 1024->512 + float', t)
        x = D.gaussian_blur(x, params['sigma'])
        t = tick('Gaussian blur', t)
        x = D.down_up(x, params['r'], params['r_base'], ds.sampler.down, ds.sampler.up)
        t = tick('down r + up', t)
        x = D.add_noise(x, params['delta'], rng)
        t = tick('noise', t)
        x = D.jpeg(x, params['q'])
        t = tick('JPEG', t)
        to_tensor(x, ds.mean, ds.std)
        t = tick('LQ to tensor + norm', t)
        to_tensor(gt, ds.mean, ds.std)
        tick('GT to tensor + norm', t)
    return {k: 1000 * v / n for k, v in steps.items()}


def realworld_breakdown(ds, n, clock):
    """CPU time inside each kind of stage of the realworld chain over ``n`` items (ms per sample)."""
    steps = {}
    bd = RW._basicsr()
    originals = {('RW', 'filter2d_np'): RW.filter2d_np, ('RW', 'resize_np'): RW.resize_np,
                 ('RW', 'add_noise_np'): RW.add_noise_np, ('bd', 'add_jpg_compression'): bd.add_jpg_compression}
    names = {'filter2d_np': 'blur / sinc (filter2D)', 'resize_np': 'resizes', 'add_noise_np': 'noise (basicsr)',
             'add_jpg_compression': 'JPEG (basicsr)'}

    def timed(fn, name):
        def wrapper(*a, **k):
            t = clock()
            out = fn(*a, **k)
            steps[name] = steps.get(name, 0.0) + clock() - t
            return out
        return wrapper

    try:
        for (mod, attr), fn in originals.items():
            setattr(RW if mod == 'RW' else bd, attr, timed(fn, names[attr]))
        t = clock()
        for i in range(n):
            ds[i % len(ds)]
        total = clock() - t
    finally:
        for (mod, attr), fn in originals.items():
            setattr(RW if mod == 'RW' else bd, attr, fn)
    steps['everything else (read, kernels, tensors)'] = total - sum(steps.values())
    return {k: 1000 * v / n for k, v in steps.items()}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--source', default=None, help='folder of face images to re-save as 1024 PNGs (default: synthetic)')
    p.add_argument('--num-images', type=int, default=8)
    p.add_argument('--samples', type=int, default=60, help='timed samples per preset')
    p.add_argument('--rounds', type=int, default=3, help='alternating rounds the samples are split into')
    p.add_argument('--presets', nargs='+', default=['panini_mfr', 'realworld'], choices=['panini_mfr', 'gfpgan',
                                                                                         'mmrb', 'realworld'])
    args = p.parse_args(argv)

    cv2.setNumThreads(1)
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(prefix='panini_bench_') as folder:
        prepare_folder(folder, args.source, args.num_images)
        sets = {name: PaniniMFRDataset(dict(dataroot_gt=folder, out_size=1024, in_size=512, mean=0.5, std=0.5,
                                             use_hflip=True, phase='train', degradation_preset=name))
                for name in args.presets}
        mb = sum(osp.getsize(pth) for pth in next(iter(sets.values())).paths) / args.num_images / 2**20
        for ds in sets.values():
            for i in range(3):  # warm-up
                ds[i % len(ds)]
        cpu = dict.fromkeys(sets, 0.0)
        wall = dict.fromkeys(sets, 0.0)
        per_round = max(1, args.samples // args.rounds)
        for _ in range(args.rounds):
            for name, ds in sets.items():
                w0, c0 = time.perf_counter(), time.process_time()
                for i in range(per_round):
                    ds[i % len(ds)]
                wall[name] += time.perf_counter() - w0
                cpu[name] += time.process_time() - c0
        n = per_round * args.rounds
        # the LQ synthesis alone (parameters + make_lq of a 1024 uint8 HQ at 512), alternating too
        hq = [prepare_hq(cv2.imread(pth), 1024, None, False)[0] for pth in next(iter(sets.values())).paths]
        lq_cpu = dict.fromkeys(sets, 0.0)
        for r in range(args.rounds):
            for name, ds in sets.items():
                c0 = time.process_time()
                for i in range(per_round):
                    rng = np.random.default_rng([r, i])
                    make_lq(hq[i % len(hq)], 512, ds.sampler.sample(rng), ds.sampler, rng)
                lq_cpu[name] += time.process_time() - c0
        steps = {name: (breakdown(ds, n, time.process_time) if name != 'realworld'
                        else realworld_breakdown(ds, n, time.process_time)) for name, ds in sets.items()}

    print(f'PaniniMFRDataset, 1024 PNG HQ ({mb:.2f} MiB each, {"--source" if args.source else "synthetic"}) '
          f'-> 512 LQ + 1024 GT, 1 thread, {n} samples per preset in {args.rounds} alternating rounds')
    for name in sets:
        print(f'  {name:<11s} {n / cpu[name]:6.1f} pairs/s per core (CPU time {1000 * cpu[name] / n:6.1f} ms/pair; '
              f'goal >= 10), {n / wall[name]:.1f} pairs/s wall clock; LQ synthesis alone (no PNG decode, no '
              f'tensors) {n / lq_cpu[name]:.1f} LQ/s per core')
    if len(sets) > 1:
        first = next(iter(sets))
        for name in list(sets)[1:]:
            print(f'  {name} / {first} CPU time per pair: {cpu[name] / cpu[first]:.2f}x')
    print(f'  (load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)')
    for name, parts in steps.items():
        total = sum(parts.values())
        print(f'  where the time goes, {name} (CPU time, timed separately):')
        for step, ms in sorted(parts.items(), key=lambda kv: -kv[1]):
            print(f'    {step:<40s} {ms:7.2f} ms  {100 * ms / total:5.1f} %')
        print(f'    {"sum":<40s} {total:7.2f} ms')
    return 0


if __name__ == '__main__':
    sys.exit(main())
