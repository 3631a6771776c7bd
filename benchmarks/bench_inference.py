"""Seconds per face: Panini-Net alone, the whole photo pipeline, and GFPGAN v1.3's network beside it.

    python benchmarks/bench_inference.py --photos ../shared/testdata/whole_imgs

* network alone: the ``mfr`` family (PaniniNet MFR, 512 -> 1024), full size, random weights (speed does not depend
  on the values), ``batch_size`` faces per call, after one warm-up call;
* whole pipeline: ``PaniniRestorer.enhance`` on every photo of ``--photos`` (detection, alignment, network,
  paste-back), seconds per restored face;
* GFPGAN v1.3's network (the ``gfpgan1.3`` family, GFPGANv1Clean, 512 -> 512, random weights) in the same process,
  when the gfpgan package can be imported (``pip install --no-deps gfpgan``, or ``PYTHONPATH`` pointing at an
  unpacked wheel); otherwise the ratio is reported as not measured.

Prints a table and, with ``--json``, writes the figures.
"""
import argparse
import glob
import os
import os.path as osp
import platform
import time

import cv2
import torch
from report import print_results

import panininet  # noqa: F401  (compat before basicsr)
from panininet.families import random_family, select_device
from panininet.pipeline.restorer import PaniniRestorer

# --tiny: the restorer aligns faces at 512, so a small network with a 512 input (figures meaningless)
TINY_512 = {'in_size': 512, 'out_size': 64, 'num_style_feat': 32, 'narrow': 0.125, 'channel_multiplier': 1,
            'rrdb_channels': 4, 'num_rrdbs': 1, 'rrdb_growth': 4, 'dre_num_feat': 8}


def sync(device):
    if device.type == 'cuda':
        torch.cuda.synchronize()


class Clock:
    """Wall seconds and this process's CPU seconds (all threads). On a shared machine the CPU time is the
    steadier figure: other processes stretch the wall time, not the work done."""

    def __init__(self, device):
        self.device = device

    def __enter__(self):
        sync(self.device)
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc):
        sync(self.device)
        self.wall, self.cpu = time.perf_counter() - self.wall, time.process_time() - self.cpu


@torch.no_grad()
def time_network(family, batch_size, repeats, device):
    """Median (wall, cpu) seconds per face of a family's call on random (batch_size, 3, in_size, in_size) inputs."""
    x = torch.rand(batch_size, 3, family.in_size, family.in_size, device=device) * 2 - 1
    family(x)  # warm-up
    walls, cpus = [], []
    for _ in range(repeats):
        with Clock(device) as clock:
            family(x)
        walls.append(clock.wall / batch_size)
        cpus.append(clock.cpu / batch_size)
    return sorted(walls)[len(walls) // 2], sorted(cpus)[len(cpus) // 2]


def load_gfpgan(device):
    try:
        return random_family('gfpgan1.3', device), None
    except ImportError as err:
        return None, f'gfpgan not importable ({err})'


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--photos', default=None, help='folder of whole photos (e.g. ../shared/testdata/whole_imgs)')
    parser.add_argument('--device', default='cpu', help='cpu | cuda | auto')
    parser.add_argument('--batch_size', type=int, default=1)
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--detector', default='dlib')
    parser.add_argument('--threads', type=int, default=None, help='torch.set_num_threads (default: torch default)')
    parser.add_argument('--limit', type=int, default=None, help='only the first N photos')
    parser.add_argument('--tiny', action='store_true', help='a tiny 512 -> 64 PaniniNet (plumbing check only)')
    parser.add_argument('--skip-network', action='store_true', help='no network-alone timing (pipeline only)')
    parser.add_argument('--json', default=None, help='write the figures here')
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = select_device(args.device)
    torch.manual_seed(0)
    load = os.getloadavg()[0] if hasattr(os, 'getloadavg') else None
    results = {'device': str(device), 'torch': torch.__version__, 'threads': torch.get_num_threads(),
               'load_average_1min_at_start': load, 'cpu_count': os.cpu_count(),
               'cpu': platform.processor() or platform.machine(), 'batch_size': args.batch_size}

    panini = random_family('mfr', device, **(TINY_512 if args.tiny else {}))
    if not args.skip_network:
        results['panini_net_wall_s_per_face'], results['panini_net_cpu_s_per_face'] = time_network(
            panini, args.batch_size, args.repeats, device)

    gfpgan, why = (None, 'skipped (--skip-network)') if args.skip_network else load_gfpgan(device)
    if gfpgan is not None:
        results['gfpgan13_net_wall_s_per_face'], results['gfpgan13_net_cpu_s_per_face'] = time_network(
            gfpgan, args.batch_size, args.repeats, device)
        for kind in ('wall', 'cpu'):
            results[f'ratio_panini_over_gfpgan_{kind}'] = (results[f'panini_net_{kind}_s_per_face'] /
                                                          results[f'gfpgan13_net_{kind}_s_per_face'])
        del gfpgan
    else:
        results['ratio_panini_over_gfpgan_cpu'] = None
        results['gfpgan_note'] = f'ratio not measured: {why}'

    if args.photos:
        restorer = PaniniRestorer(upscale=2, detector=args.detector, net=panini, device=device,
                                  batch_size=args.batch_size)
        files = sorted(f for f in glob.glob(osp.join(args.photos, '*')) if cv2.imread(f) is not None)
        files = files[:args.limit] if args.limit else files
        faces, wall, cpu, per_photo = 0, 0.0, 0.0, {}
        for f in files:
            img = cv2.imread(f)
            with Clock(device) as clock:
                _, restored, _ = restorer.enhance(img)
            per_photo[osp.basename(f)] = {'faces': len(restored), 'wall_s': round(clock.wall, 2),
                                          'cpu_s': round(clock.cpu, 2)}
            faces, wall, cpu = faces + len(restored), wall + clock.wall, cpu + clock.cpu
        results.update(pipeline_photos=len(files), pipeline_faces=faces, pipeline_wall_s_per_face=wall / max(faces, 1),
                       pipeline_cpu_s_per_face=cpu / max(faces, 1), per_photo=per_photo)

    print_results(results, args.json)


if __name__ == '__main__':
    main()
