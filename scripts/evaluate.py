#!/usr/bin/env python
"""Evaluate face restoration against a GT folder: PSNR, SSIM, LPIPS, FID, NIQE and identity angle (Deg.).

Methods to compare (any mix, each becomes a row of the table):

- ``--results NAME=DIR``: a folder of restorations already made (e.g. the official outputs);
- ``--model [NAME=]PATH``: a weights file of the restoration family ``--version`` (a ``-v`` name: ``mfr`` or
  ``sr16`` for a PaniniNet checkpoint, ours or official; ``mmrb`` for a trained MMRB-Net; ``gpen512``...) that
  restores the aligned faces of ``--lq`` through :class:`panininet.pipeline.restorer.PaniniRestorer`;
- ``--gfpgan VERSION[=PATH]``: GFPGAN's released model (1.3 or 1.4) through the same restorer (needs the ``gfpgan``
  package; its weights from PATH, the weights root, or the usual download);
- ``--include-input``: the LQ inputs themselves, bicubic-resized to the GT size (GFP-GAN's "Input" row).

Images are paired by file name without extension (``GT/00003.jpg`` with ``restored/00003.png``); restorations are
written to ``OUT/restored/NAME/``. The GT folder should hold the HQ images the LQ set was made from (for example by
``scripts/make_degraded_set.py``). FID's reference statistics are computed from these GT images, not from FFHQ:
compare FIDs only between rows of one table, and expect a bias with few images. See ``panininet/metrics/`` for
each metric's implementation, network and weights. Writes ``OUT/metrics.md`` and ``OUT/metrics.json``.

Example:

    python scripts/evaluate.py --gt celeba_test/GT --lq celeba_test/LQ --model panini_mfr.pth \\
        --gfpgan 1.3 --include-input --out results/celeba_mfr
"""
import argparse
import json
import os
import os.path as osp
import sys
import time

import cv2
from tqdm import tqdm

import panininet  # noqa: F401  (compat before basicsr)
from panininet import metrics as M
from panininet.atomic import write_text_atomic
from panininet.families import family_names


def parse_named(spec, flag):
    """'NAME=VALUE' -> (NAME, VALUE); a bare VALUE -> (None, VALUE)."""
    if '=' in spec:
        name, value = spec.split('=', 1)
        if not name or not value:
            raise SystemExit(f'{flag} {spec!r}: expected NAME=VALUE.')
        return name, value
    return None, spec


def restore_folder(restorer, lq_dir, out_dir, desc):
    """Restore every aligned LQ face of ``lq_dir`` into ``out_dir`` (PNG, same stems)."""
    os.makedirs(out_dir, exist_ok=True)
    for stem, path in tqdm(M.list_images(lq_dir).items(), desc=desc, unit='img'):
        img = M.read_image(path)
        restored = restorer.restore_faces([img])[0]
        M.write_image_atomic(osp.join(out_dir, f'{stem}.png'), restored)


def write_input_rows(lq_dir, gt_dir, out_dir):
    """The LQ inputs, bicubic-resized to their GT's size (the 'Input' row)."""
    gt = M.list_images(gt_dir)
    os.makedirs(out_dir, exist_ok=True)
    for stem, path in M.list_images(lq_dir).items():
        if stem not in gt:
            continue
        h, w = M.read_image(gt[stem]).shape[:2]
        img = cv2.resize(M.read_image(path), (w, h), interpolation=cv2.INTER_CUBIC)
        M.write_image_atomic(osp.join(out_dir, f'{stem}.png'), img)


def collect_methods(args):
    """Methods as name -> folder, restoring with the models first."""
    methods = {}

    def add(name, folder):
        if name in methods:
            raise SystemExit(f'Two methods are named {name!r}; name them with NAME=...')
        methods[name] = folder

    for spec in args.results:
        name, folder = parse_named(spec, '--results')
        add(name or osp.basename(osp.normpath(folder)), folder)
    if (args.model or args.gfpgan or args.include_input) and not args.lq:
        raise SystemExit('--model, --gfpgan and --include-input need --lq (the degraded faces to restore).')
    if args.include_input:
        folder = osp.join(args.out, 'restored', 'Input')
        write_input_rows(args.lq, args.gt, folder)
        add('Input', folder)
    if args.model or args.gfpgan:
        from panininet.pipeline.restorer import PaniniRestorer
    for spec in args.model:
        name, path = parse_named(spec, '--model')
        name = name or osp.splitext(osp.basename(path))[0]
        restorer = PaniniRestorer(model_path=path, version=args.version, device=args.device, detector='dlib',
                                  weights_dir=args.weights_dir, allow_download=not args.no_download)
        folder = osp.join(args.out, 'restored', name)
        restore_folder(restorer, args.lq, folder, name)
        add(name, folder)
    for spec in args.gfpgan:
        version, path = spec.split('=', 1) if '=' in spec else (spec, None)
        known = [name[len('gfpgan'):] for name in family_names() if name.startswith('gfpgan')]
        if version not in known:
            raise SystemExit(f'--gfpgan {spec!r}: version must be {" or ".join(known)} (optionally =PATH to the '
                             'weights).')
        restorer = PaniniRestorer(model_path=path, version=f'gfpgan{version}', device=args.device, detector='dlib',
                                  weights_dir=args.weights_dir, allow_download=not args.no_download)
        name = f'GFPGAN v{version}'
        folder = osp.join(args.out, 'restored', name.replace(' ', '_'))
        restore_folder(restorer, args.lq, folder, name)
        add(name, folder)
    if not methods:
        raise SystemExit('Nothing to evaluate: give --results NAME=DIR, --model PATH, --gfpgan VERSION or '
                         '--include-input.')
    return methods


def build_networks(args, metrics):
    """The metric networks the chosen metrics need (weights from the flags, the cache, or a download)."""
    download = not args.no_download
    nets = {}
    if 'lpips' in metrics:
        nets['lpips_metric'] = M.LPIPSMetric(args.lpips_net, trunk_path=args.lpips_trunk, download=download,
                                             device=args.device)
    if 'fid' in metrics:
        nets['fid_metric'] = M.FIDMetric(weights_path=args.inception, download=download, device=args.device)
    if 'deg' in metrics:
        nets['identity_metric'] = M.IdentityMetric(weights_path=args.arcface, download=download, device=args.device)
    return nets


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--gt', required=True, help='GT folder (HQ faces)')
    p.add_argument('--out', required=True, help='output folder (metrics.md, metrics.json, restored/)')
    p.add_argument('--results', action='append', default=[], metavar='NAME=DIR', help='restored folder (repeat)')
    p.add_argument('--lq', help='degraded aligned faces to restore with --model/--gfpgan')
    p.add_argument('--model', action='append', default=[], metavar='[NAME=]PATH',
                   help='weights of the --version family (repeat)')
    p.add_argument('--version', default='mfr', choices=family_names(),
                   help='restoration family (-v name) of every --model')
    p.add_argument('--gfpgan', action='append', default=[], metavar='VERSION[=PATH]',
                   help="GFPGAN's released model 1.3 or 1.4 (needs the gfpgan package; repeat)")
    p.add_argument('--include-input', action='store_true', help="add the LQ inputs as a row ('Input')")
    p.add_argument('--metrics', default=','.join(M.METRIC_KEYS),
                   help=f'comma-separated subset of {",".join(M.METRIC_KEYS)} (default: all)')
    p.add_argument('--size', type=int, default=None, help='resize GT and restorations to SIZE x SIZE first')
    p.add_argument('--crop-border', type=int, default=0, help='border excluded from PSNR/SSIM/NIQE (default: 0)')
    p.add_argument('--test-y-channel', action='store_true', help='PSNR/SSIM on Y (default: RGB)')
    p.add_argument('--lpips-net', default='vgg', choices=sorted(M.LPIPS_TRUNK_URLS), help='LPIPS trunk (default vgg)')
    p.add_argument('--lpips-trunk', default=None, help='torchvision ImageNet checkpoint of the LPIPS trunk')
    p.add_argument('--inception', default=None, help='pt_inception-2015-12-05-6726825d.pth (FID)')
    p.add_argument('--arcface', default=None, help="recognition_arcface_ir_se50.pth (facexlib's ArcFace, Deg.)")
    p.add_argument('--weights-dir', default=None, help='weights root of the restorers (see inference_panini.py)')
    p.add_argument('--no-download', action='store_true', help='never download weights; fail with a message instead')
    p.add_argument('--device', default='cpu')
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    metrics = [m.strip() for m in args.metrics.split(',') if m.strip()]
    bad = [m for m in metrics if m not in M.METRIC_KEYS]
    if bad:
        raise SystemExit(f'--metrics: unknown {bad}; choose from {",".join(M.METRIC_KEYS)}.')
    try:
        nets = build_networks(args, metrics)  # before restoring: a missing weight fails fast
    except FileNotFoundError as err:
        raise SystemExit(f'error: {err}') from err
    methods = collect_methods(args)
    t0 = time.time()
    result = M.evaluate_folders(args.gt, methods, metrics=metrics, size=args.size, crop_border=args.crop_border,
                                test_y_channel=args.test_y_channel, **nets)
    result['lpips_net'] = args.lpips_net if 'lpips' in metrics else None
    result['fid_reference'] = f'the {result["n"]} GT images of {args.gt} (not FFHQ)' if 'fid' in metrics else None
    result['eval_time_s'] = time.time() - t0
    table = M.results_to_markdown(result)
    write_text_atomic(osp.join(args.out, 'metrics.md'), table)
    write_text_atomic(osp.join(args.out, 'metrics.json'), json.dumps(M.json_safe(result), indent=2) + '\n')
    print(table, end='')
    print(f'{result["n"]} images; wrote metrics.md and metrics.json to {args.out}')
    return result


if __name__ == '__main__':
    sys.exit(0 if main() else 1)
