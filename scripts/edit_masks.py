#!/usr/bin/env python
"""Editing by a mask bias (paper, Conclusions): restorations of one face under a sweep of DAFI mask biases.

``mask_bias`` is added to the GAN-prior logit of every DAFI mask (PaniniNet's ``forward(x, mask_bias=b)``):
b > 0 moves each mask toward the GAN prior (theta rises), b < 0 toward the input features; b = 0 is the network as
trained. ``--levels`` restricts the bias to some fused levels (0 = 4x4; the others get 0).

The input is either a degraded face (``--lq``) or an HQ face degraded here by eq. (10) (``--hq`` with ``--sigma``,
``--r``, ``--delta``, ``--q``). Writes ``mask_edit_grid.png`` (input, then one restoration per bias, each labelled
with its bias and the mean theta of the last level) and ``mask_edit.json`` under ``--out``.

Examples:

    python scripts/edit_masks.py --model net_g.pth --lq ../shared/testdata/panini_examples/MFR/00003.png \\
        --out results/edit
    python scripts/edit_masks.py --tiny --hq ../shared/testdata/panini_examples/GT/00009.jpg --out results/edit_tiny
"""
import argparse
import json
import os.path as osp
import sys
import textwrap

import numpy as np
import torch

import panininet  # noqa: F401  (compat before basicsr)
from panininet.atomic import save_figure_atomic, write_text_atomic
from panininet.data.degradations import degrade, resize
from panininet.metrics import json_safe, read_image

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from analyze_dafi import add_model_args, bgr_to_input, build_model, output_to_rgb  # noqa: E402


def bias_vector(bias, levels, num_levels):
    """One bias per fused level: ``bias`` on ``levels`` (all when None), 0 elsewhere."""
    if levels is None:
        return [float(bias)] * num_levels
    bad = [lvl for lvl in levels if not 0 <= lvl < num_levels]
    if bad:
        raise SystemExit(f'--levels {bad} out of range: this network fuses levels 0..{num_levels - 1}.')
    return [float(bias) if lvl in levels else 0.0 for lvl in range(num_levels)]


@torch.no_grad()
def sweep(net, lq, biases, levels=None, device='cpu'):
    """Restore ``lq`` (float32 BGR [0, 1]) under each bias.

    Returns:
        list[dict]: per bias: 'bias', 'theta' (per level), 'image' (uint8 RGB (out_size, out_size, 3)).
    """
    x = bgr_to_input(lq, net.in_size).to(device)
    out = []
    for b in biases:
        y, extras = net(x, mask_bias=bias_vector(b, levels, net.num_levels), return_extras=True)
        out.append({'bias': float(b), 'theta': [float(t) for t in extras['theta'][0]], 'image': output_to_rgb(y)})
    return out


def plot_sweep(lq, results, path, title):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    n = len(results) + 1
    fig, axes = plt.subplots(1, n, figsize=(2.3 * n, 2.8), squeeze=False)
    axes = axes[0]
    axes[0].imshow(np.clip(lq[..., ::-1] * 255 + 0.5, 0, 255).astype(np.uint8))
    axes[0].set_title('input X', fontsize=8)
    for ax, res in zip(axes[1:], results):
        ax.imshow(res['image'])
        ax.set_title(f'bias {res["bias"]:+g}\nθ last level {res["theta"][-1]:.2f}', fontsize=8)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(textwrap.fill(title, 110), fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 0.9))
    save_figure_atomic(fig, path, dpi=110)
    plt.close(fig)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument('--lq', help='a degraded, aligned face')
    src.add_argument('--hq', help='an HQ aligned face, degraded here by eq. (10)')
    p.add_argument('--out', required=True, help='output folder')
    add_model_args(p)
    p.add_argument('--biases', type=float, nargs='+', default=[-4, -2, -1, 0, 1, 2, 4],
                   help='mask biases (default: -4 -2 -1 0 1 2 4)')
    p.add_argument('--levels', type=int, nargs='+', default=None, help='bias only these fused levels (0 = 4x4)')
    p.add_argument('--sigma', type=float, default=2.0, help='with --hq: blur sigma (default: 2)')
    p.add_argument('--r', type=float, default=64, help='with --hq: downsampling rate, tenths (default: 64)')
    p.add_argument('--delta', type=float, default=10.0, help='with --hq: noise std (default: 10)')
    p.add_argument('--q', type=int, default=40, help='with --hq: JPEG quality (default: 40)')
    p.add_argument('--lq-size', type=int, default=512, help='with --hq: size eq. (10) runs at (default: 512)')
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    src = args.lq or args.hq
    if not osp.isfile(src):
        raise SystemExit(f'{src}: no such file.')
    net = build_model(args.model, args.tiny, args.arch, args.dre, args.device, args.seed)
    img = read_image(src).astype(np.float32) / 255.
    if args.hq:
        img = degrade(resize(img, args.lq_size, 'area'), args.sigma, args.r, args.delta, args.q,
                      rng=np.random.default_rng(args.seed))
    results = sweep(net, img, args.biases, args.levels, args.device)
    what = 'random tiny PaniniNet' if args.tiny else osp.basename(args.model)
    title = f'{what}; mask bias on levels {args.levels if args.levels is not None else "all"}; {osp.basename(src)}'
    plot_sweep(img, results, osp.join(args.out, 'mask_edit_grid.png'), title)
    payload = {'input': src, 'model': args.model or 'tiny', 'levels': args.levels,
               'sweep': [{'bias': r['bias'], 'theta': r['theta']} for r in results]}
    write_text_atomic(osp.join(args.out, 'mask_edit.json'), json.dumps(json_safe(payload), indent=2) + '\n')
    for r in results:
        print(f'bias {r["bias"]:+g}: theta per level ' + ' '.join(f'{t:.3f}' for t in r['theta']))
    print(f'wrote mask_edit_grid.png and mask_edit.json to {args.out}')
    return payload


if __name__ == '__main__':
    sys.exit(0 if main() else 1)
