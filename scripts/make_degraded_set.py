#!/usr/bin/env python
"""Write a reproducible degraded test set from a folder of HQ faces, with every image's parameters beside it.

Modes:
  random  (default) each image gets its own (sigma, r, delta, q) drawn from a preset's ranges, from a generator
          seeded by (seed, index) only. With all images selected this is exactly what ``PaniniMFRDataset`` in its
          deterministic mode (same seed) produces for the sorted folder, up to the 8-bit PNG rounding.
  table4  the paper's Table-4 protocol: fixed sigma, delta, q, and r = 16, 32, 64, 128 (one sub-folder per r,
          ``r016`` ...). The noise realisation of an image is the same for every r, so r is the only difference.

Outputs (PNG, lossless, so the JPEG step of eq. (10) is not applied twice): ``OUT/<name>.png`` or
``OUT/r016/<name>.png`` ..., plus ``OUT/params.csv`` and ``OUT/params.json``. Every file is written atomically
(temporary file in the same folder, then renamed). The script refuses to write into (or under) its input folder
and never replaces an input file.

Examples:
  python scripts/make_degraded_set.py --input CelebA-HQ/1024 --output celeba_mfr_test --num 1000 --seed 0
  python scripts/make_degraded_set.py --input CelebA-HQ/1024 --output celeba_table4 --mode table4 --num 100 \\
      --preview r_sweep.png
"""
import argparse
import csv
import io
import json
import os
import os.path as osp
import sys

import cv2
import numpy as np
from tqdm import tqdm

import panininet  # noqa: F401  (compat before basicsr)
from panininet.atomic import write_bytes_atomic
from panininet.data.data_util import IMG_EXTENSIONS, prepare_hq
from panininet.data.degradation_sampler import (
    PRESETS,
    TABLE4_FIXED,
    TABLE4_RATES,
    DegradationSampler,
    make_lq,
    seeded_rng,
)

TABLE4_DEFAULTS = TABLE4_FIXED  # our choice (the paper does not give Table 4's fixed sigma, delta, q)
MOTION_FIELDS = ('blur', 'length', 'angle')  # sampled with motion blur on (preset mmrb): sigma unused for 'motion'


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument('--input', '-i', required=True, help='folder of HQ face images (not searched recursively)')
    p.add_argument('--output', '-o', required=True, help='output folder (must not be the input folder or inside it)')
    p.add_argument('--mode', choices=['random', 'table4'], default='random')
    p.add_argument('--num', type=int, default=None,
                   help='use N images chosen at random (by --seed) from the sorted input; default: all')
    p.add_argument('--seed', type=int, default=0, help='base seed; image i is degraded from (seed, i) only')
    p.add_argument('--size', type=int, default=512, help='LQ side (network input). Default: 512')
    p.add_argument('--hq-size', type=int, default=1024, help='HQ side the images are brought to first. Default: 1024')
    p.add_argument('--preset', choices=sorted(PRESETS), default='panini_mfr', help='ranges for --mode random')
    p.add_argument('--sigma', type=float, default=None,
                   help=f'table4: fixed blur sigma (input px). Default: {TABLE4_DEFAULTS["sigma"]}')
    p.add_argument('--delta', type=float, default=None,
                   help=f'table4: fixed noise std (0..255). Default: {TABLE4_DEFAULTS["delta"]}')
    p.add_argument('--q', type=int, default=None, help=f'table4: fixed JPEG quality. Default: {TABLE4_DEFAULTS["q"]}')
    p.add_argument('--rates', type=float, nargs='+', default=list(TABLE4_RATES),
                   help='table4: rates r (paper units, factor r/10). Default: 16 32 64 128')
    p.add_argument('--preview', default=None,
                   help='table4: also save a strip of the first image (HQ, then each r) to this PNG')
    p.add_argument('--overwrite', action='store_true', help='allow a non-empty output folder (replaces our files)')
    return p.parse_args(argv)


def list_images(folder):
    names = sorted(n for n in os.listdir(folder)
                   if n.lower().endswith(IMG_EXTENSIONS) and osp.isfile(osp.join(folder, n)))
    return [osp.join(folder, n) for n in names]


def _inside(child, parent):
    child, parent = osp.realpath(child), osp.realpath(parent)
    return child == parent or osp.commonpath([child, parent]) == parent


def write_png(path, img):
    """float32 BGR [0, 1] -> 8-bit PNG, atomically."""
    ok, buf = cv2.imencode('.png', np.clip(np.rint(img * 255.), 0, 255).astype(np.uint8))
    if not ok:
        raise RuntimeError(f'PNG encoding failed for {path!r}.')
    write_bytes_atomic(path, buf.tobytes())


def read_hq(path, hq_size):
    img = cv2.imread(path, cv2.IMREAD_COLOR)
    if img is None:
        raise OSError(f'Cannot read image {path!r}: not an image or corrupt.')
    img, _ = prepare_hq(img, hq_size, None, use_hflip=False)  # uint8, as the datasets read it
    return img


def label(img_u8, text):
    out = img_u8.copy()
    scale = max(0.5, out.shape[0] / 400)
    thick = max(1, round(scale * 2))
    cv2.putText(out, text, (8, int(30 * scale)), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), thick + 2, cv2.LINE_AA)
    cv2.putText(out, text, (8, int(30 * scale)), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thick, cv2.LINE_AA)
    return out


def main(argv=None):
    args = parse_args(argv)
    if not osp.isdir(args.input):
        sys.exit(f'error: --input {args.input!r} does not exist or is not a folder.')
    if _inside(args.output, args.input):
        sys.exit(f'error: refusing to write into the input folder: --output {args.output!r} is (inside) '
                 f'--input {args.input!r}. Choose an output folder outside it.')
    if args.preview and _inside(osp.dirname(osp.abspath(args.preview)), args.input):
        sys.exit(f'error: refusing to write --preview {args.preview!r} into the input folder.')
    paths = list_images(args.input)
    if not paths:
        sys.exit(f'error: no images ({", ".join(IMG_EXTENSIONS)}) in {args.input!r}.')
    if args.num is not None:
        if not 0 < args.num <= len(paths):
            sys.exit(f'error: --num {args.num} but {args.input!r} has {len(paths)} images.')
        pick = np.random.default_rng([args.seed, 1]).choice(len(paths), args.num, replace=False)
        paths = [paths[i] for i in sorted(pick)]
    if osp.isdir(args.output) and os.listdir(args.output) and not args.overwrite:
        sys.exit(f'error: --output {args.output!r} is not empty; pass --overwrite to replace its files.')
    os.makedirs(args.output, exist_ok=True)
    input_files = {osp.realpath(p) for p in paths}

    if args.mode == 'random':
        sampler = DegradationSampler(args.preset)
        jobs = [('', None)]
    else:
        fixed = {k: (getattr(args, k) if getattr(args, k) is not None else v) for k, v in TABLE4_DEFAULTS.items()}
        sampler = DegradationSampler(None, sigma_range=fixed['sigma'], r_range=1.0, delta_range=fixed['delta'],
                                     q_range=fixed['q'], r_base=PRESETS['panini_mfr']['r_base'])
        jobs = [(f'r{round(r):03d}' if float(r).is_integer() else f'r{r:g}', r) for r in args.rates]
    for sub, _ in jobs:
        os.makedirs(osp.join(args.output, sub), exist_ok=True)

    rows, strip = [], []
    for index, path in enumerate(tqdm(paths, desc=f'degrading ({args.mode})', unit='img')):
        hq = read_hq(path, args.hq_size)
        name = osp.splitext(osp.basename(path))[0] + '.png'
        for sub, r in jobs:
            rng = seeded_rng(args.seed, index)  # same stream for every r: only r differs in table4
            params = sampler.sample(rng)
            if r is not None:
                params.update(r=float(r), scale=float(r) / sampler.r_base)
            lq = make_lq(hq, args.size, params, sampler, rng)
            out_path = osp.join(args.output, sub, name)
            if osp.realpath(out_path) in input_files:  # unreachable given the folder check; never risk it
                sys.exit(f'error: {out_path!r} is an input file; refusing to overwrite it.')
            write_png(out_path, lq)
            rows.append(dict(file=osp.join(sub, name) if sub else name, source=path, index=index, seed=args.seed,
                             sigma=params['sigma'], r=params['r'], r_base=params['r_base'], scale=params['scale'],
                             delta=params['delta'], q=-1 if params['q'] is None else params['q'],
                             **{k: params[k] for k in MOTION_FIELDS if k in params}))
            if index == 0 and args.preview:
                strip.append(label(np.clip(np.rint(lq * 255), 0, 255).astype(np.uint8), f'r = {params["r"]:g}'))
        if index == 0 and args.preview:
            strip.insert(0, label(cv2.resize(hq, (args.size, args.size), interpolation=cv2.INTER_AREA), 'HQ'))

    fields = ['file', 'source', 'index', 'seed', 'sigma', 'r', 'r_base', 'scale', 'delta', 'q']
    fields += [k for k in MOTION_FIELDS if rows and k in rows[0]]  # preset mmrb: which blur, and the motion
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields, lineterminator='\n')
    writer.writeheader()
    writer.writerows(rows)
    write_bytes_atomic(osp.join(args.output, 'params.csv'), buf.getvalue().encode())
    meta = dict(mode=args.mode, seed=args.seed, size=args.size, hq_size=args.hq_size,
                preset=args.preset if args.mode == 'random' else None, sampler=repr(sampler),
                equation='X = [(Y * k_sigma) down_r + N_delta]_JPEG_q (Panini-Net eq. 10), run at the LQ size',
                r_meaning='downsampling factor = r / r_base (paper: r in [10, 200], r_base 10)',
                q_note='q = -1 means JPEG off', items=rows)
    write_bytes_atomic(osp.join(args.output, 'params.json'), json.dumps(meta, indent=1).encode())
    if args.preview and strip:
        os.makedirs(osp.dirname(osp.abspath(args.preview)), exist_ok=True)
        ok, png = cv2.imencode('.png', np.concatenate(strip, axis=1))
        write_bytes_atomic(args.preview, png.tobytes())
        print(f'preview: {args.preview}')
    print(f'wrote {len(rows)} images and params.csv/json to {args.output}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
