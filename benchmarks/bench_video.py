"""Video restoration: frames/s, pipeline overhead over the network alone, and peak memory against clip length.

    python benchmarks/bench_video.py --photo ../shared/testdata/whole_imgs/Blake_Lively.jpg

Clips are made on the fly (a window panning and zooming over ``--photo``'s right-hand face, with a 440 Hz AAC
tone), H.264 in mp4, restored with ``panininet.pipeline.video.restore_video`` (dlib detector, tracking on, ``-s 2``):

* **frames/s** with the full MFR PaniniNet (512 -> 1024, random weights: speed does not depend on them;
  ``--full_frames`` frames only, it takes seconds per face on a CPU) and with a tiny PaniniNet (64 -> 128), at 1
  face per frame (160x120 frames) and 4 faces per frame (the same frame tiled 2x2, 320x240);
* **overhead**: the clip's wall time over the time spent inside ``restore_faces`` (the network) in the same run:
  what decoding, detection, alignment, paste-back and encoding add. Both stages share the CPU cores, so on a CPU the
  network's own time is slowed by the other stages too; the ratio is the end-to-end cost per unit of network time;
* **peak RSS** of a fresh process restoring a ``--short`` s and a ``--long`` s clip (tiny network, 160x120 at
  ``--rss_fps``): the highest RSS sampled (every 50 ms) while the clip runs, and that minus the RSS just before it
  (what the clip itself costs).

Prints a table (with the load average, because this machine is shared) and, with ``--json``, writes the figures.
"""
import argparse
import fractions
import json
import os
import os.path as osp
import subprocess
import sys
import tempfile
import threading
import time

import cv2
import numpy as np
import torch
from report import print_results

import panininet  # noqa: F401  (compat before basicsr)
from panininet.archs.panini_arch import PaniniNet
from panininet.pipeline.restorer import PaniniRestorer
from panininet.pipeline.video import import_av, restore_video

TINY_ARCH = dict(in_size=64, out_size=128, narrow=0.25, channel_multiplier=1, num_style_feat=64, dre_num_feat=16,
                 dre_in_size=64)
SIZE = (160, 120)


def pan_frame(photo, t, tiles=1):
    """Frame t of the pan/zoom over the photo's right-hand face, tiled ``tiles`` x ``tiles``."""
    cx, cy, width = 470 + 30 * np.sin(t / 20), 211 + 20 * np.sin(t / 30), 420 - 40 * np.sin(t / 25) ** 2
    s = SIZE[0] / width
    m = np.array([[s, 0, SIZE[0] / 2 - s * cx], [0, s, SIZE[1] / 2 - s * cy]])
    frame = cv2.warpAffine(photo, m, SIZE, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    return np.tile(frame, (tiles, tiles, 1)) if tiles > 1 else frame


def write_clip(path, photo, n_frames, fps, tiles=1, rate=16000):
    """n_frames of :func:`pan_frame` as H.264 in mp4 with a mono AAC tone of the same duration."""
    av = import_av()
    with av.open(path, 'w') as out:
        v = out.add_stream('libx264', rate=fps)
        v.width, v.height, v.pix_fmt = SIZE[0] * tiles, SIZE[1] * tiles, 'yuv420p'
        a = out.add_stream('aac', rate=rate, layout='mono')
        for t in range(n_frames):
            for p in v.encode(av.VideoFrame.from_ndarray(pan_frame(photo, t, tiles), format='bgr24')):
                out.mux(p)
        n = int(rate * n_frames / fps)
        for pos in range(0, n, 1024):
            chunk = (0.3 * np.sin(2 * np.pi * 440 * np.arange(pos, min(pos + 1024, n)) / rate)).astype(np.float32)
            frame = av.AudioFrame.from_ndarray(chunk[None], format='fltp', layout='mono')
            frame.sample_rate, frame.pts, frame.time_base = rate, pos, fractions.Fraction(1, rate)
            for p in a.encode(frame):
                out.mux(p)
        for stream in (v, a):
            for p in stream.encode(None):
                out.mux(p)
    return path


def timed_run(restorer, clip, out):
    """(summary, wall s, s inside restore_faces) of one clip."""
    inner = restorer.restore_faces
    spent = [0.0]

    def timed(faces, weight=None):
        t0 = time.perf_counter()
        try:
            return inner(faces, weight)
        finally:
            spent[0] += time.perf_counter() - t0

    restorer.restore_faces = timed
    try:
        t0 = time.perf_counter()
        summary = restore_video(restorer, clip, out)
        return summary, time.perf_counter() - t0, spent[0]
    finally:
        del restorer.restore_faces


def current_rss_mib():
    with open('/proc/self/statm') as f:
        return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE') / 2**20


def rss_child(clip):
    """In a fresh process: restore ``clip`` with the tiny network; print the highest RSS sampled during the clip and
    the RSS just before it (MiB). Not ``ru_maxrss``: Linux keeps it across ``execve``, so a child started by a big
    parent reports the parent's peak."""
    torch.manual_seed(0)
    restorer = PaniniRestorer(net=PaniniNet(**TINY_ARCH).eval(), upscale=2, detector='dlib', device='cpu')
    restorer.restore_faces([np.zeros((512, 512, 3), np.uint8)])  # warm-up: allocator pools in place
    before = current_rss_mib()
    samples, done = [before], threading.Event()

    def sample():
        while not done.wait(0.05):
            samples.append(current_rss_mib())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    with tempfile.TemporaryDirectory() as tmp:
        summary = restore_video(restorer, clip, osp.join(tmp, 'out.mp4'))
    done.set()
    sampler.join()
    print(json.dumps({'frames': summary.frames, 'faces': summary.faces, 'clip_peak_rss_mib': max(samples),
                      'rss_before_clip_mib': before}))


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--photo', default=osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), '..', 'shared',
                                               'testdata', 'whole_imgs', 'Blake_Lively.jpg'))
    p.add_argument('--full_frames', type=int, default=2, help='frames per clip with the full MFR network (0: skip)')
    p.add_argument('--tiny_frames', type=int, default=24, help='frames per clip with the tiny network')
    p.add_argument('--fps', type=int, default=25)
    p.add_argument('--short', type=float, default=10.0, help='seconds of the short clip for peak RSS')
    p.add_argument('--long', type=float, default=60.0, help='seconds of the long clip for peak RSS (0: skip RSS)')
    p.add_argument('--rss_fps', type=int, default=10, help='frame rate of the RSS clips')
    p.add_argument('--threads', type=int, default=None, help='torch.set_num_threads')
    p.add_argument('--json', default=None)
    p.add_argument('--rss_child', default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.rss_child:
        return rss_child(args.rss_child)
    photo = cv2.imread(args.photo)
    if photo is None:
        sys.exit(f'--photo {args.photo}: not readable.')
    photo = cv2.GaussianBlur(photo, (0, 0), 1.0)
    results = {'load_average_1min_at_start': os.getloadavg()[0], 'cpu_count': os.cpu_count(),
               'torch_threads': torch.get_num_threads()}
    torch.manual_seed(0)
    nets = {'tiny': (PaniniNet(**TINY_ARCH).eval(), args.tiny_frames)}
    if args.full_frames:
        nets['mfr'] = (PaniniNet().eval(), args.full_frames)
    with tempfile.TemporaryDirectory() as tmp:
        for name, (net, frames) in nets.items():
            restorer = PaniniRestorer(net=net, upscale=2, detector='dlib', device='cpu', batch_size=4)
            restorer.restore_faces([np.zeros((512, 512, 3), np.uint8)])  # warm-up
            for tiles in (1, 2):
                clip = write_clip(osp.join(tmp, f'{name}{tiles}.mp4'), photo, frames, args.fps, tiles)
                summary, wall, net_s = timed_run(restorer, clip, osp.join(tmp, f'{name}{tiles}_out.mp4'))
                key = f'{name}_{tiles * tiles}faces'
                results[f'{key}_frames'] = summary.frames
                results[f'{key}_faces'] = summary.faces
                results[f'{key}_frames_per_s'] = summary.frames / wall
                results[f'{key}_s_per_face'] = wall / max(summary.faces, 1)
                results[f'{key}_overhead_x'] = wall / net_s if net_s else None
        if args.long:
            for label, seconds in (('short', args.short), ('long', args.long)):
                clip = write_clip(osp.join(tmp, f'rss_{label}.mp4'), photo, int(seconds * args.rss_fps),
                                  args.rss_fps)
                cmd = [sys.executable, osp.abspath(__file__), '--rss_child', clip]
                if args.threads:
                    cmd += ['--threads', str(args.threads)]
                out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=os.environ)
                child = json.loads(out.stdout.strip().splitlines()[-1])
                results[f'rss_{label}_clip_s'] = seconds
                results[f'rss_{label}_frames'] = child['frames']
                results[f'rss_{label}_clip_peak_mib'] = child['clip_peak_rss_mib']
                results[f'rss_{label}_clip_above_start_mib'] = child['clip_peak_rss_mib'] - child['rss_before_clip_mib']
            results['rss_long_over_short'] = results['rss_long_clip_peak_mib'] / results['rss_short_clip_peak_mib']
    results['load_average_1min_at_end'] = os.getloadavg()[0]
    print_results(results, args.json)


if __name__ == '__main__':
    main()
