"""Make docs/images/degradation_stats.png: LQ statistics of the realworld preset against panini_mfr.

    python docs/make_degradation_stats.py --input ../shared/testdata/panini_examples/GT --draws 40

Each HQ face (resized to 1024, as the datasets read it) is degraded ``--draws`` times per preset at 512 with the
reproducible seeds of ``scripts/make_degraded_set.py`` (seed, index); three statistics of every LQ are plotted as
histograms (needs matplotlib, the ``metrics`` extra):

* sharpness: variance of the Laplacian of the gray image (0..255), log10;
* noise level: Immerkaer's fast estimate of the noise std (0..255), from the gray image;
* JPEG blockiness: mean |gray step| across the 8-px block boundaries over the mean step elsewhere (1 = no blocks).
"""
import argparse
import os
import os.path as osp
import sys

import cv2
import numpy as np

import panininet  # noqa: F401  (compat before basicsr)
from panininet.atomic import write_bytes_atomic
from panininet.data.data_util import IMG_EXTENSIONS, prepare_hq
from panininet.data.degradation_sampler import make_lq, sampler_from_opt, seeded_rng

HERE = osp.dirname(osp.abspath(__file__))
PRESETS = ('panini_mfr', 'realworld')


def gray255(img):
    return cv2.cvtColor(np.clip(img * 255., 0, 255).astype(np.float32), cv2.COLOR_BGR2GRAY).astype(np.float64)


def sharpness(gray):
    """log10 of the variance of the Laplacian."""
    return float(np.log10(cv2.Laplacian(gray, cv2.CV_64F).var() + 1e-6))


def noise_sigma(gray):
    """Immerkaer (1996), "Fast noise variance estimation": sqrt(pi/2) / (6 (W-2)(H-2)) * sum |I (*) N|."""
    kernel = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float64)
    resp = cv2.filter2D(gray, cv2.CV_64F, kernel)[1:-1, 1:-1]
    return float(np.sqrt(np.pi / 2) * np.abs(resp).sum() / (6 * resp.size))


def blockiness(gray):
    """Mean absolute step across the 8-pixel grid (columns and rows) over the mean step off the grid."""
    dx, dy = np.abs(np.diff(gray, axis=1)), np.abs(np.diff(gray, axis=0))
    on_x, on_y = (np.arange(dx.shape[1]) % 8) == 7, (np.arange(dy.shape[0]) % 8) == 7
    on = np.concatenate([dx[:, on_x].ravel(), dy[on_y].ravel()]).mean()
    off = np.concatenate([dx[:, ~on_x].ravel(), dy[~on_y].ravel()]).mean()
    return float(on / max(off, 1e-6))


def collect(paths, preset, draws, size, seed):
    sampler = sampler_from_opt({'degradation_preset': preset})
    stats = []
    for i, path in enumerate(paths):
        img = cv2.imread(path, cv2.IMREAD_COLOR)
        if img is None:
            sys.exit(f'Error: cannot read {path!r}: not an image or corrupt.')
        hq, _ = prepare_hq(img, 1024, None, use_hflip=False)
        for j in range(draws):
            rng = seeded_rng(seed, i * draws + j)
            g = gray255(make_lq(hq, size, sampler.sample(rng), sampler, rng))
            stats.append((sharpness(g), noise_sigma(g), blockiness(g)))
    return np.array(stats)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--input', required=True, help='folder of HQ face images')
    p.add_argument('--draws', type=int, default=40, help='degradations per face and preset. Default: 40')
    p.add_argument('--size', type=int, default=512, help='LQ side. Default: 512')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--output', default=osp.join(HERE, 'images', 'degradation_stats.png'))
    args = p.parse_args(argv)
    if not osp.isdir(args.input):
        sys.exit(f'Error: --input {args.input!r} is not a folder.')
    paths = sorted(osp.join(args.input, n) for n in os.listdir(args.input) if n.lower().endswith(IMG_EXTENSIONS))
    if not paths:
        sys.exit(f'Error: no images in --input {args.input!r}.')
    try:
        import matplotlib
        matplotlib.use('Agg')
        import matplotlib.pyplot as plt
    except ImportError:
        sys.exit('Error: matplotlib is missing; pip install "panininet[metrics]".')
    stats = {preset: collect(paths, preset, args.draws, args.size, args.seed) for preset in PRESETS}
    names = ('sharpness: log10 var(Laplacian)', 'noise std (Immerkaer, 0..255)', 'JPEG blockiness (8-px grid ratio)')
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.2))
    for k, (ax, name) in enumerate(zip(axes, names)):
        lo = min(s[:, k].min() for s in stats.values())
        hi = max(np.percentile(s[:, k], 99) for s in stats.values())
        bins = np.linspace(lo, hi, 30)
        for preset, s in stats.items():
            label = f'{preset} (median {np.median(s[:, k]):.2f})'
            ax.hist(np.clip(s[:, k], lo, hi), bins=bins, alpha=0.55, label=label)
        ax.set_title(name, fontsize=9)
        ax.legend(fontsize=7)
    fig.suptitle(f'LQ statistics at {args.size}^2: {len(paths)} faces x {args.draws} draws per preset', fontsize=10)
    fig.tight_layout()
    os.makedirs(osp.dirname(osp.abspath(args.output)), exist_ok=True)
    import io
    buf = io.BytesIO()
    fig.savefig(buf, format='png', dpi=90)
    write_bytes_atomic(args.output, buf.getvalue())
    for preset, s in stats.items():
        med = np.median(s, axis=0)
        print(f'{preset:>10s}: median sharpness {med[0]:.2f}, noise {med[1]:.2f}, blockiness {med[2]:.3f} '
              f'({len(s)} LQ)')
    print(f'wrote {args.output}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
