#!/usr/bin/env python
"""The paper's DAFI dissection: Table 4 (theta against r) and Fig. 7 (X, Y, Y_IFE, Y_GPB per r).

Protocol (paper, ablation B): one HQ face; sigma, delta and q fixed; r = 16, 32, 64, 128 in eq. (10) (the data
task's :func:`panininet.data.degradations.degrade`, r in tenths: factors 1.6 to 12.8; the chain runs at
``--lq-size``, 512 as for the MFR model, and the LQ image is then area-resized to the network's ``in_size`` if that
differs). Each X_r goes through PaniniNet three times:

- ``source='both'`` (eq. 7) gives Y and the masks; theta of a level is the mean of its mask (eq. 11); the paper's
  theta is that of mask_5, the last fused level (64x64 features, ``theta[:, -1]``);
- ``source='ife'`` (eq. 12, F_GPB set to 0) gives Y_IFE; ``source='gpb'`` (eq. 13, F_IFE set to 0) gives Y_GPB.

Writes under ``--out``: ``theta.md`` (table), ``theta.json``, ``theta_plot.png`` (theta of every level against r,
with the paper's Table 4 for reference) and ``fig7_grid.png``.

Examples:

    python scripts/analyze_dafi.py --model experiments/.../net_g_latest.pth \\
        --hq ../shared/testdata/panini_examples/GT/00003.jpg --out results/dafi
    # no trained weights at hand: a random tiny network (optionally with a DRE from scripts/udrl_probe.py)
    python scripts/analyze_dafi.py --tiny --hq ../shared/testdata/panini_examples/GT/00003.jpg --out results/dafi_tiny
"""
import argparse
import json
import os.path as osp
import sys
import textwrap

import numpy as np
import torch

import panininet  # noqa: F401  (compat before basicsr)
from panininet.archs.panini_arch import PaniniNet
from panininet.atomic import save_figure_atomic, write_text_atomic
from panininet.data.degradation_sampler import TABLE4_FIXED, TABLE4_RATES
from panininet.data.degradations import degrade, resize
from panininet.metrics import json_safe, read_image

# The paper's Table 4 (theta of mask_5 for r = 16, 32, 64, 128), drawn for reference.
PAPER_TABLE4 = {16: 0.43, 32: 0.54, 64: 0.65, 128: 0.73}
# A small PaniniNet for CPU demonstrations and tests (random weights unless a DRE is loaded).
TINY_ARCH = dict(in_size=64, out_size=128, num_style_feat=64, channel_multiplier=1, narrow=0.25, rrdb_channels=8,
                 num_rrdbs=1, dre_in_size=64, dre_num_feat=16)


def build_model(model_path=None, tiny=False, arch_json=None, dre_path=None, device='cpu', seed=0):
    """PaniniNet from a checkpoint (ours or official; its 'arch' entry, else ``arch_json``), or a random tiny one.

    Args:
        model_path (str | None): Weights file, read by :func:`panininet.weights.panini_checkpoint.load_panini_weights`.
        tiny (bool): Build :data:`TINY_ARCH` with random weights (seeded) instead.
        arch_json (str | None): JSON dict of PaniniNet kwargs; overrides the file's 'arch' / the tiny defaults.
        dre_path (str | None): Load this DRE into the network (e.g. ``dre_udrl_demo.pth``); its width is read from
            the file's 'arch' when present.
        device (str): Default: 'cpu'.
        seed (int): Seed of the random tiny network. Default: 0.

    Returns:
        PaniniNet: In eval mode on ``device``.
    """
    if (model_path is None) == (not tiny):
        raise SystemExit('Give exactly one of --model PATH or --tiny.')
    overrides = json.loads(arch_json) if arch_json else {}
    if tiny:
        opt = dict(TINY_ARCH)
        state = None
    else:
        from panininet.weights.panini_checkpoint import load_panini_weights

        state, arch = load_panini_weights(model_path)
        opt = dict(arch or {})
    opt.update(overrides)
    opt.update(decoder_load_path=None, dre_load_path=None)
    if dre_path is not None:
        from panininet.weights.checkpoint import load_checkpoint_file
        dre_arch = load_checkpoint_file(dre_path).get('arch', {})
        if 'num_feat' in dre_arch:
            opt['dre_num_feat'] = dre_arch['num_feat']
    torch.manual_seed(seed)
    net = PaniniNet(**opt)
    if state is not None:
        net.load_state_dict(state, strict=True)
    if dre_path is not None:
        from panininet.weights.checkpoint import load_checkpoint_file
        from panininet.weights.panini_checkpoint import extract_dre_state
        if net.dre is None:
            raise SystemExit('--dre needs a network with a DRE (condition=dre, fusion=dafi).')
        net.dre.load_state_dict(extract_dre_state(load_checkpoint_file(dre_path), dre_path))
    if net.dafi is None:
        raise SystemExit('This network has no DAFI masks (fusion=catconv): nothing to analyse.')
    return net.to(device).eval()


def bgr_to_input(img, size):
    """float32 BGR [0, 1] (h, w, 3) -> (1, 3, size, size) RGB in [-1, 1] (area-resized if needed)."""
    img = resize(img, size, 'area')
    return torch.from_numpy(np.ascontiguousarray(img[..., ::-1] * 2 - 1)).permute(2, 0, 1)[None].float()


def output_to_rgb(y):
    """(1, 3, h, w) in [-1, 1] -> uint8 RGB (h, w, 3)."""
    return ((y[0].clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).cpu().numpy()


def table4_inputs(hq_path, rates, sigma, delta, q, lq_size, seed):
    """The degraded inputs X_r (float32 BGR (lq_size, lq_size, 3) in [0, 1]) of one HQ face, one per rate.

    The noise of every X_r is drawn from the same seed, so the inputs differ only by r.
    """
    hq = resize(read_image(hq_path).astype(np.float32) / 255., lq_size, 'area')
    return {r: degrade(hq, sigma, r, delta, q, rng=np.random.default_rng(seed)) for r in rates}


@torch.no_grad()
def dissect(net, inputs, device='cpu'):
    """Run eqs. 7, 12, 13 on every X_r.

    Returns:
        dict: r -> {'theta': list[float] (one per level, level 0 = 4x4), 'x', 'y', 'y_ife', 'y_gpb' (uint8 RGB)}.
    """
    out = {}
    for r, lq in inputs.items():
        x = bgr_to_input(lq, net.in_size).to(device)
        y, extras = net(x, source='both', return_extras=True)
        out[r] = {
            'theta': [float(t) for t in extras['theta'][0]],
            'x': np.ascontiguousarray(lq[..., ::-1] * 255 + 0.5).clip(0, 255).astype(np.uint8),
            'y': output_to_rgb(y),
            'y_ife': output_to_rgb(net(x, source='ife')),
            'y_gpb': output_to_rgb(net(x, source='gpb')),
        }
    return out


def level_names(net):
    """'4x4', '8x8', ... per fused level; the last one is the paper's mask_5 when there are 5 levels."""
    return [f'{4 * 2**lvl}x{4 * 2**lvl}' for lvl in range(net.num_levels)]


def theta_table(results, names):
    """Markdown: one row per r, theta of each level; the last column is mask_5 (the paper's theta)."""
    last = '(mask_5, Table 4)' if len(names) == 5 else '(last level)'
    head = ['r', 'factor'] + [f'θ {n}' for n in names[:-1]] + [f'θ {names[-1]} {last}']
    lines = ['| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
    for r, res in results.items():
        cells = [f'{r:g}', f'{r / 10:g}'] + [f'{t:.4f}' for t in res['theta']]
        lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines) + '\n'


def plot_theta(results, names, path, title):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    rates = list(results)
    thetas = np.array([results[r]['theta'] for r in rates])
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for lvl, name in enumerate(names):
        last = lvl == len(names) - 1
        tag = ' (mask_5)' if last and len(names) == 5 else ''
        ax.plot(rates, thetas[:, lvl], marker='o', lw=2.5 if last else 1, label=name + tag)
    paper = [(r, PAPER_TABLE4[r]) for r in rates if r in PAPER_TABLE4]
    if paper:
        ax.plot(*zip(*paper), 'k--', marker='x', label='paper, Table 4 (mask_5)')
    ax.set_xscale('log', base=2)
    ax.set_xticks(rates)
    ax.set_xticklabels([f'{r:g}' for r in rates])
    ax.set_xlabel('downsampling rate r (eq. 10)')
    ax.set_ylabel('θ = mean mask (eq. 11)')
    ax.set_title(textwrap.fill(title, 70), fontsize=8)
    ax.legend(fontsize=7, title='fused level', title_fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    save_figure_atomic(fig, path, dpi=110)
    plt.close(fig)


def plot_grid(results, path, title, rows=(('x', 'X'), ('y', 'Y'), ('y_ife', 'Y_IFE'), ('y_gpb', 'Y_GPB'))):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    rates = list(results)
    fig, axes = plt.subplots(len(rows), len(rates), figsize=(2.3 * len(rates), 2.3 * len(rows) + 0.4),
                             squeeze=False)
    for i, (key, label) in enumerate(rows):
        for j, r in enumerate(rates):
            ax = axes[i, j]
            ax.imshow(results[r][key])
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(f'r = {r:g}  (θ last level = {results[r]["theta"][-1]:.2f})', fontsize=8)
            if j == 0:
                ax.set_ylabel(label, fontsize=10)
    fig.suptitle(textwrap.fill(title, 110), fontsize=9)
    fig.tight_layout()
    save_figure_atomic(fig, path, dpi=110)
    plt.close(fig)


def add_model_args(p):
    p.add_argument('--model', default=None, help='PaniniNet weights (ours with an "arch" entry, or official)')
    p.add_argument('--tiny', action='store_true', help='a random tiny PaniniNet (demonstration, no weights needed)')
    p.add_argument('--arch', default=None, help='JSON dict of PaniniNet kwargs (when the file has no "arch")')
    p.add_argument('--dre', default=None, help='load this DRE into the network (e.g. scripts/udrl_probe.py output)')
    p.add_argument('--device', default='cpu')
    p.add_argument('--seed', type=int, default=0, help='noise of eq. (10) and the random tiny network')


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--hq', required=True, help='one HQ face image (FFHQ-aligned, e.g. a CelebA-HQ GT)')
    p.add_argument('--out', required=True, help='output folder')
    add_model_args(p)
    p.add_argument('--rates', type=float, nargs='+', default=list(TABLE4_RATES),
                   help='r values (default: 16 32 64 128)')
    # the paper does not give Table 4's fixed values; the data task's TABLE4_FIXED (sigma 2, delta 10, q 40)
    p.add_argument('--sigma', type=float, default=TABLE4_FIXED['sigma'], help='fixed blur sigma, pixels at --lq-size')
    p.add_argument('--delta', type=float, default=TABLE4_FIXED['delta'], help='fixed noise std, 0..255 scale')
    p.add_argument('--q', type=int, default=TABLE4_FIXED['q'], help='fixed JPEG quality')
    p.add_argument('--lq-size', type=int, default=512, help='size eq. (10) runs at (default: 512, the MFR input)')
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if not osp.isfile(args.hq):
        raise SystemExit(f'--hq {args.hq}: no such file.')
    net = build_model(args.model, args.tiny, args.arch, args.dre, args.device, args.seed)
    rates = [int(r) if float(r).is_integer() else r for r in args.rates]
    inputs = table4_inputs(args.hq, rates, args.sigma, args.delta, args.q, args.lq_size, args.seed)
    results = dissect(net, inputs, args.device)
    names = level_names(net)
    what = 'random tiny PaniniNet' if args.tiny else osp.basename(args.model)
    if args.dre:
        what += f' + DRE {osp.basename(args.dre)}'
    title = f'{what}; sigma={args.sigma:g}, delta={args.delta:g}, q={args.q}; {osp.basename(args.hq)}'
    table = theta_table(results, names)
    payload = {'model': args.model or 'tiny', 'dre': args.dre, 'hq': args.hq, 'sigma': args.sigma,
               'delta': args.delta, 'q': args.q, 'lq_size': args.lq_size, 'levels': names,
               'theta': {str(r): res['theta'] for r, res in results.items()},
               'theta_mask5': {str(r): res['theta'][-1] for r, res in results.items()},
               'paper_table4': {str(k): v for k, v in PAPER_TABLE4.items()}}
    write_text_atomic(osp.join(args.out, 'theta.md'), table)
    write_text_atomic(osp.join(args.out, 'theta.json'), json.dumps(json_safe(payload), indent=2) + '\n')
    plot_theta(results, names, osp.join(args.out, 'theta_plot.png'), title)
    plot_grid(results, osp.join(args.out, 'fig7_grid.png'), title)
    print(table, end='')
    print(f'wrote theta.md, theta.json, theta_plot.png, fig7_grid.png to {args.out}')
    return payload


if __name__ == '__main__':
    sys.exit(0 if main() else 1)
