"""Archive runs: photos/s with 1 and N torchrun processes on the same folder, the network's busy fraction, and what
to expect on N GPUs.

    python benchmarks/bench_archive.py --photo ../shared/testdata/whole_imgs/Blake_Lively.jpg

A folder of ``--photos`` photos is made from ``--photo`` (shifted copies, one face each) and restored by
``inference_panini.py`` launched with ``torchrun --standalone --nproc_per_node P`` for each P of ``--procs``, in
alternating order over ``--rounds`` rounds (the machine is shared: alternate, then take the median), CPU, gloo, the
dlib detector, a PaniniNet with random weights (``--arch tiny``: 64 -> 128, so that the pipeline around the network
matters as it does on a GPU; ``--arch mfr``: the full 512 -> 1024 network, seconds per face on a CPU).

Figures (from the CLI's closing ``Speed:`` line, i.e. from :func:`panininet.archive.speed_line`):

* **photos/s** for each P over the slowest rank's wall time from the plan to the end (process start and model
  loading excluded; the end-to-end seconds of the whole launch are printed beside it), and the ratio against the
  one-process run: the peer here is one process, GFPGAN's only way to run; ``1t`` is one plain process with one
  thread, what each rank of the 2-process run gets, which separates the gain of sharding from that of fewer
  threads per process on a busy machine;
* **network busy**: time inside the network over the photo stream's wall time, summed over the ranks;
* **ms per photo** of each stage of the photo stream (read, analyse = detect + align, network, write = colour fix,
  paste back, encode, record);
* **N-GPU estimate**: with ``--gpu_net_ms`` of network per face and ``--gpu_prepost_ms`` of everything else per
  photo (split between read / analyse / write in the proportions measured here), one process per GPU does
  ``1000 / max(net, read, analyse, write)`` photos/s when the stages overlap (each has its own thread; needs about 4
  free cores per GPU and storage that keeps up), against ``1000 / (net + prepost)`` when they run one after the
  other; the ranks never wait for each other, so N GPUs give N times that, less the imbalance of the last inputs.
"""
import argparse
import os
import os.path as osp
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time

import cv2
import numpy as np
import torch
from report import print_results

import panininet  # noqa: F401  (compat before basicsr)
from panininet.archs.panini_arch import PaniniNet

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
ARCHS = {'tiny': dict(in_size=64, out_size=128, narrow=0.25, channel_multiplier=1, num_style_feat=64,
                      dre_num_feat=16, dre_in_size=64),
         'mfr': {}}
SPEED = re.compile(r'Speed: (\d+) rank\(s\), ([\d.]+) photos/s, network busy ([\d.]+) of the photo streams; ms per '
                   r'photo: read ([\d.]+), analyse ([\d.]+), network ([\d.]+), write ([\d.]+)')


def make_folder(photo, n, folder, scale):
    img = cv2.imread(photo)
    if img is None:
        sys.exit(f'Error: --photo {photo} cannot be read; give a photo with a face.')
    img = cv2.resize(img, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    for i in range(n):
        cv2.imwrite(osp.join(folder, f'photo{i:04d}.jpg'), np.roll(img, 2 * i, axis=1), [cv2.IMWRITE_JPEG_QUALITY, 95])
    return img.shape[1], img.shape[0]


def label(spec):
    n = spec.rstrip('t')
    return f'{n} process(es)' if not spec.endswith('t') else f'1 process, {n} thread(s)'


def launch(spec, folder, out, weights, args):
    """One run: ``spec`` 'P' is torchrun with P processes (each cores / P threads); 'Tt' one plain process with
    OMP_NUM_THREADS=T."""
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get('PYTHONPATH', ''))
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', spec]
    if spec.endswith('t'):
        cmd, env['OMP_NUM_THREADS'] = [sys.executable], spec[:-1]
    cmd += [osp.join(REPO, 'inference_panini.py'), '-i', folder, '-o', out, '--model_path', weights, '--detector',
            'dlib', '--device', 'cpu', '--no_download', '--batch_size', str(args.batch_size), '-s', str(args.upscale)]
    start = time.time()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    seconds = time.time() - start
    found = SPEED.search(done.stdout)
    if done.returncode != 0 or not found:
        sys.exit(f'Error: the run with {label(spec)} failed:\n{done.stderr[-3000:]}')
    _, rate, busy, *stages = found.groups()
    return dict(photos_per_s=float(rate), busy=float(busy), stages=[float(s) for s in stages], seconds=seconds)


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--photo', default=osp.join(REPO, '..', 'shared', 'testdata', 'whole_imgs', 'Blake_Lively.jpg'))
    p.add_argument('--photos', type=int, default=24, help='photos in the folder')
    p.add_argument('--scale', type=float, default=0.5, help='scale of --photo in the folder')
    p.add_argument('--arch', default='tiny', choices=tuple(ARCHS))
    p.add_argument('--procs', default='1,1t,2',
                   help='runs to compare: P = torchrun with P processes, Tt = one plain process with T threads; each '
                        'is compared with those before it')
    p.add_argument('--rounds', type=int, default=2)
    p.add_argument('--batch_size', type=int, default=4)
    p.add_argument('--upscale', type=float, default=2)
    p.add_argument('--gpu_net_ms', type=float, default=20.0, help='network per face on one GPU (MFR, 512 -> 1024)')
    p.add_argument('--gpu_prepost_ms', type=float, default=20.0, help='the rest of a photo on a GPU machine')
    p.add_argument('--gpus', default='1,2,4,8')
    p.add_argument('--json', default=None)
    args = p.parse_args()
    procs = args.procs.split(',')
    with tempfile.TemporaryDirectory() as tmp:
        folder = osp.join(tmp, 'in')
        os.makedirs(folder)
        w, h = make_folder(args.photo, args.photos, folder, args.scale)
        weights = osp.join(tmp, 'net.pth')
        torch.manual_seed(0)
        torch.save({'params_ema': PaniniNet(**ARCHS[args.arch]).state_dict(), 'arch': ARCHS[args.arch]}, weights)
        runs = {n: [] for n in procs}
        for r in range(args.rounds):
            for n in (procs if r % 2 == 0 else procs[::-1]):
                runs[n].append(launch(n, folder, osp.join(tmp, f'out{r}_{n}'), weights, args))
    med = lambda n, key: statistics.median(x[key] for x in runs[n])  # noqa: E731
    results = {'machine': f'{platform.processor() or platform.machine()}, {os.cpu_count()} cores, load '
                          f'{os.getloadavg()[0]:.1f}',
               'folder': f'{args.photos} photos {w}x{h}, 1 face each, -s {args.upscale:g}, --batch_size '
                         f'{args.batch_size}, --arch {args.arch}, dlib, {args.rounds} rounds'}
    peer = procs[0]
    for n in procs:
        results[f'photos/s, {label(n)}'] = med(n, 'photos_per_s')
        results[f'end-to-end s, {label(n)}'] = med(n, 'seconds')
        results[f'network busy, {label(n)}'] = med(n, 'busy')
        stages = [statistics.median(x['stages'][i] for x in runs[n]) for i in range(4)]
        results[f'ms per photo (read/analyse/network/write), {label(n)}'] = ' / '.join(f'{s:.1f}' for s in stages)
    for j, n in enumerate(procs):
        for m in procs[:j]:
            results[f'ratio photos/s, {label(n)} vs {label(m)}'] = med(n, 'photos_per_s') / med(m, 'photos_per_s')
    stages = [statistics.median(x['stages'][i] for x in runs[peer]) for i in range(4)]
    other = stages[0] + stages[1] + stages[3]
    split = [args.gpu_prepost_ms * s / other for s in (stages[0], stages[1], stages[3])] if other else [0, 0, 0]
    streamed = 1000 / max(args.gpu_net_ms, *split)
    serial = 1000 / (args.gpu_net_ms + args.gpu_prepost_ms)
    results['GPU estimate: read/analyse/write ms per photo'] = ' / '.join(f'{s:.1f}' for s in split)
    results['GPU estimate: photos/s per GPU, stages overlapped vs one after the other'] = f'{streamed:.1f} vs ' \
                                                                                         f'{serial:.1f}'
    for g in (int(x) for x in args.gpus.split(',')):
        results[f'GPU estimate: photos/s on {g} GPU(s)'] = g * streamed
    print_results(results, args.json)


if __name__ == '__main__':
    main()
