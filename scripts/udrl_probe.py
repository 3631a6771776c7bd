#!/usr/bin/env python
"""Does UDRL teach the DRE the degradation? Train a DRE by UDRL on a CPU, then probe v_DR linearly.

1. HQ images (face folders given with ``--images`` and, with ``--skimage``, the public-domain pictures that ship in
   scikit-image's wheel) are centre-cropped to squares and resized to 512 (the MFR input size). Every ``--holdout``-th
   image (sorted by name) is held out of both the UDRL training and the probe's training half.
2. A bank of UDRL pairs: ``--bank`` parameter sets (sigma, r, delta, q) drawn by the data task's
   ``DegradationSampler('panini_mfr')``, each applied (eq. 10, :func:`panininet.data.degradations.make_lq`, at 512)
   to two different training images, then area-resized to ``--dre-size`` (256, what PaniniNet's DRE sees).
3. MoCo (``panininet.archs.dre_arch.MoCo``, InfoNCE, T = 0.07) for ``--iters`` iterations: the query is a random
   ``--crop`` crop of one image of a pair, the key a crop of the other image (same degradation, other content), as
   the paper's UDRL (Fig. 2). Crops keep the pixel statistics (noise, JPEG blocks) at the DRE's scale while
   fitting a CPU.
4. Linear probe: ridge regression (standardised features, alpha by 5-fold CV) from v_DR (DRE in eval mode, the
   mean over ``--probe-crops`` crops) to log r, delta and q (and sigma), fitted on fresh degradations of the training
   images and scored (R^2) on fresh degradations of the held-out images. The control is the same DRE architecture
   at its random initialisation (same seed): R^2 above the control is what UDRL learned.

Writes ``probe.json``, ``probe.md``, ``udrl_loss.png``, ``probe_scatter.png`` and ``dre_udrl_demo.pth`` (a
demonstration DRE: a few minutes of CPU training on a dozen images; not for restoration) under ``--out``.

Example (about 25 min on 2 CPU cores):

    python scripts/udrl_probe.py --images ../shared/testdata/panini_examples/GT --skimage --out results/udrl_probe

The HQ images must be sharp and clean (CelebA-HQ GT faces; not ../shared/testdata/cropped_faces, which are old,
already degraded prints): the probe's targets are the degradation this script adds.
"""
import argparse
import json
import math
import os
import os.path as osp
import sys
import time

import numpy as np
import torch
from torch.nn import functional as F

import panininet  # noqa: F401  (compat before basicsr)
from panininet.archs.dre_arch import DegradationEncoder, MoCo
from panininet.data.degradations import DegradationSampler, make_lq, resize
from panininet.fileio import save_figure_atomic, torch_save_atomic, write_text_atomic
from panininet.metrics import json_safe, list_images, read_image

# colour pictures that ship in scikit-image's wheel, sharp and without large flat black areas (where noise is clipped
# and blur is invisible: hubble_deep_field, retina are left out)
SKIMAGE_NAMES = ('astronaut', 'chelsea', 'coffee', 'rocket', 'immunohistochemistry')
TARGETS = ('log_r', 'delta', 'q', 'sigma')


def square(img):
    """Centre crop to a square."""
    h, w = img.shape[:2]
    s = min(h, w)
    return img[(h - s) // 2:(h - s) // 2 + s, (w - s) // 2:(w - s) // 2 + s]


def load_hq_images(folders, use_skimage, size=512):
    """HQ images as float32 BGR (size, size, 3) in [0, 1], keyed by a name; sorted by name."""
    images = {}
    for folder in folders:
        for stem, path in list_images(folder).items():
            images[f'{osp.basename(osp.normpath(folder))}/{stem}'] = read_image(path)
    if use_skimage:
        try:
            import skimage.data
        except ImportError as err:
            raise SystemExit('--skimage needs scikit-image (pip install scikit-image).') from err
        for name in SKIMAGE_NAMES:
            images[f'skimage/{name}'] = np.ascontiguousarray(getattr(skimage.data, name)()[..., :3][..., ::-1])
    if len(images) < 3:
        raise SystemExit(f'Need at least 3 HQ images (2 to train, 1 held out), found {len(images)}.')
    return {k: resize(square(v), size, 'area').astype(np.float32) / 255. for k, v in sorted(images.items())}


def split_names(names, holdout):
    """Every ``holdout``-th name (starting with the 2nd) is held out."""
    test = [n for i, n in enumerate(names) if i % holdout == 1]
    train = [n for n in names if n not in test]
    return train, test


def degraded_view(img512, params, sampler, rng, dre_size):
    """Eq. (10) at 512, then area-resized to the DRE's input size; uint8 BGR (dre_size, dre_size, 3)."""
    lq = make_lq(img512, 512, params, sampler, rng)
    return np.clip(resize(lq, dre_size, 'area') * 255 + 0.5, 0, 255).astype(np.uint8)


def random_crop(img, crop, rng):
    y = int(rng.integers(0, img.shape[0] - crop + 1))
    x = int(rng.integers(0, img.shape[1] - crop + 1))
    out = img[y:y + crop, x:x + crop]
    return out[:, ::-1] if rng.random() < 0.5 else out


def to_tensor(crops):
    """uint8 BGR crops -> (b, 3, h, w) RGB in [-1, 1]."""
    arr = np.stack([c[..., ::-1] for c in crops]).astype(np.float32) / 127.5 - 1
    return torch.from_numpy(np.ascontiguousarray(arr)).permute(0, 3, 1, 2)


def build_bank(images, names, num_params, sampler, dre_size, rng):
    """UDRL pairs: for each of ``num_params`` parameter sets, two different training images degraded alike."""
    bank = []
    for _ in range(num_params):
        params = sampler.sample(rng)
        a, b = rng.choice(len(names), size=2, replace=False)
        bank.append((degraded_view(images[names[a]], params, sampler, rng, dre_size),
                     degraded_view(images[names[b]], params, sampler, rng, dre_size)))
    return bank


def train_udrl(moco, bank, iters, batch, crop, lr, rng, log_every=50, max_seconds=None):
    """MoCo training on the bank; returns the loss per iteration (stops early after ``max_seconds``)."""
    opt = torch.optim.Adam(moco.encoder_q.parameters(), lr=lr, betas=(0.9, 0.999))
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(iters, 1), eta_min=lr * 0.01)
    moco.train()
    losses = []
    t0 = time.time()
    for it in range(1, iters + 1):
        idx = rng.choice(len(bank), size=batch, replace=False)
        order = rng.random(batch) < 0.5  # which image of the pair is the query
        q = to_tensor([random_crop(bank[i][int(o)], crop, rng) for i, o in zip(idx, order)])
        k = to_tensor([random_crop(bank[i][1 - int(o)], crop, rng) for i, o in zip(idx, order)])
        logits, labels = moco(q, k)
        loss = F.cross_entropy(logits, labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
        if it % log_every == 0 or it == iters:
            acc = float((logits.argmax(1) == labels).float().mean())
            print(f'iter {it}/{iters}  InfoNCE {np.mean(losses[-log_every:]):.3f}  top-1 {acc:.2f}  '
                  f'{time.time() - t0:.0f} s', flush=True)
        if max_seconds is not None and time.time() - t0 > max_seconds:
            print(f'stopping after {it} iterations: --max-minutes reached', flush=True)
            break
    return losses


def probe_set(images, names, num, sampler, dre_size, crop, num_crops, rng):
    """``num`` fresh degradations of random images from ``names``: crops (num, num_crops) and targets."""
    crops, targets = [], []
    for _ in range(num):
        params = sampler.sample(rng)
        view = degraded_view(images[names[int(rng.integers(len(names)))]], params, sampler, rng, dre_size)
        crops.append([random_crop(view, crop, rng) for _ in range(num_crops)])
        targets.append([math.log(params['r']), params['delta'], params['q'], params['sigma']])
    return crops, np.array(targets, dtype=np.float64)


@torch.no_grad()
def features(encoder, crops, batch=64):
    """Mean v_DR over each sample's crops: (n, d)."""
    encoder.eval()
    flat = [c for sample in crops for c in sample]
    out = torch.cat([encoder(to_tensor(flat[i:i + batch])) for i in range(0, len(flat), batch)])
    return out.reshape(len(crops), -1, out.shape[-1]).mean(1).double().numpy()


def ridge_fit(x, y, alpha):
    """Ridge on centred features scaled by ONE global factor (their overall std); returns a predictor.

    Not per-feature standardisation: a near-constant feature (a random DRE has many) would be blown up to unit
    variance and a small content shift between images would then swing the predictions.
    """
    mu, scale = x.mean(0), x.std() + 1e-12
    ym = y.mean(0)
    xs = (x - mu) / scale
    w = np.linalg.solve(xs.T @ xs + alpha * len(x) * np.eye(x.shape[1]), xs.T @ (y - ym))
    return lambda z: ((z - mu) / scale) @ w + ym


def r2(y, pred):
    """Coefficient of determination per column."""
    ss_res = ((y - pred)**2).sum(0)
    ss_tot = ((y - y.mean(0))**2).sum(0)
    return 1 - ss_res / np.maximum(ss_tot, 1e-12)


def linear_probe(x_tr, y_tr, x_te, y_te, alphas=(1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1, 10), folds=5, seed=0):
    """Ridge probe with alpha picked by K-fold CV (mean R^2 over targets) on the training half.

    Returns:
        tuple[ndarray, ndarray, float, ndarray]: test R^2 per target, test predictions (n_te, t), chosen alpha,
        and the cross-validated R^2 per target at that alpha (same images as the fit, fresh degradations).
    """
    perm = np.random.default_rng(seed).permutation(len(x_tr))
    parts = np.array_split(perm, folds)
    best = None
    for alpha in alphas:
        scores = []
        for i in range(folds):
            val = parts[i]
            tr = np.concatenate([p for j, p in enumerate(parts) if j != i])
            scores.append(r2(y_tr[val], ridge_fit(x_tr[tr], y_tr[tr], alpha)(x_tr[val])))
        cv = np.mean(scores, axis=0)
        if best is None or cv.mean() > best[0].mean():
            best = (cv, alpha)
    predict = ridge_fit(x_tr, y_tr, best[1])
    pred = predict(x_te)
    return r2(y_te, pred), pred, best[1], best[0]


def plot_loss(plt, losses, path):
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.plot(losses, lw=0.5, alpha=0.4, label='per iteration')
    win = max(1, len(losses) // 50)
    ax.plot(np.convolve(losses, np.ones(win) / win, mode='valid'), lw=1.5, label=f'mean of {win}')
    ax.set_xlabel('iteration')
    ax.set_ylabel('InfoNCE')
    ax.set_title('UDRL training loss')
    ax.legend()
    fig.tight_layout()
    save_figure_atomic(fig, path, dpi=110)
    plt.close(fig)


def plot_results(out_dir, losses, y_te, preds, scores):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    if losses:
        plot_loss(plt, losses, osp.join(out_dir, 'udrl_loss.png'))

    fig, axes = plt.subplots(2, len(TARGETS), figsize=(3.0 * len(TARGETS), 5.6))
    for row, name in enumerate(('UDRL-trained DRE', 'random DRE (control)')):
        for col, target in enumerate(TARGETS):
            ax = axes[row, col]
            ax.scatter(y_te[:, col], preds[name][:, col], s=6, alpha=0.6)
            lo, hi = y_te[:, col].min(), y_te[:, col].max()
            ax.plot([lo, hi], [lo, hi], 'k--', lw=0.8)
            ax.set_title(f'{name}\n{target}: R² = {scores[name][target]:.2f}', fontsize=8)
            ax.set_xlabel('true', fontsize=8)
            ax.set_ylabel('predicted', fontsize=8)
    fig.tight_layout()
    save_figure_atomic(fig, osp.join(out_dir, 'probe_scatter.png'), dpi=110)
    plt.close(fig)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--images', nargs='*', default=[], help='folders of HQ images (faces)')
    p.add_argument('--skimage', action='store_true', help="add scikit-image's bundled public-domain pictures")
    p.add_argument('--out', required=True, help='output folder')
    p.add_argument('--holdout', type=int, default=4, help='hold out every N-th image (default: 4)')
    p.add_argument('--bank', type=int, default=800, help='UDRL parameter sets (pairs) to pre-compute (default: 800)')
    p.add_argument('--iters', type=int, default=1500, help='UDRL iterations (default: 1500)')
    p.add_argument('--batch', type=int, default=24, help='UDRL batch size (default: 24)')
    p.add_argument('--crop', type=int, default=64, help='crop side at the DRE scale (default: 64)')
    p.add_argument('--dre-size', type=int, default=256, help="DRE input scale of a 512 face (default: 256)")
    p.add_argument('--num-feat', type=int, default=16, help='DRE width; v_DR has 4x this (paper: 64; default: 16)')
    p.add_argument('--queue', type=int, default=2048, help='MoCo queue length (default: 2048)')
    p.add_argument('--momentum', type=float, default=0.99, help='MoCo key-encoder momentum (default: 0.99)')
    p.add_argument('--lr', type=float, default=1e-3, help='Adam learning rate, cosine-annealed (default: 1e-3)')
    p.add_argument('--probe-train', type=int, default=600, help='probe training degradations (default: 600)')
    p.add_argument('--probe-test', type=int, default=300, help='probe test degradations (default: 300)')
    p.add_argument('--probe-crops', type=int, default=4, help='crops averaged per degraded image (default: 4)')
    p.add_argument('--max-minutes', type=float, default=None, help='stop UDRL training after this long')
    p.add_argument('--load-dre', default=None, help='skip training: probe this DRE checkpoint (from --out)')
    p.add_argument('--threads', type=int, default=None, help='torch CPU threads')
    p.add_argument('--seed', type=int, default=0)
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.crop > args.dre_size:
        raise SystemExit(f'--crop {args.crop} is larger than --dre-size {args.dre_size}.')
    os.makedirs(args.out, exist_ok=True)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    sampler = DegradationSampler('panini_mfr')
    images = load_hq_images(args.images, args.skimage)
    train_names, test_names = split_names(list(images), args.holdout)
    print(f'{len(images)} HQ images; train: {train_names}; held out: {test_names}', flush=True)
    print(f'degradations: {sampler}', flush=True)

    moco = MoCo(num_feat=args.num_feat, dim=4 * args.num_feat, K=args.queue, m=args.momentum)
    random_dre = DegradationEncoder(args.num_feat)
    random_dre.load_state_dict(moco.encoder_q.state_dict())  # the control: same initialisation, never trained
    t0 = time.time()
    losses = []
    if args.load_dre:
        from panininet.checkpoint import extract_dre_state, load_checkpoint_file
        moco.encoder_q.load_state_dict(extract_dre_state(load_checkpoint_file(args.load_dre), args.load_dre))
    elif args.iters > 0:
        bank = build_bank(images, train_names, args.bank, sampler, args.dre_size, rng)
        print(f'bank of {len(bank)} pairs in {time.time() - t0:.0f} s', flush=True)
        losses = train_udrl(moco, bank, args.iters, min(args.batch, len(bank)), args.crop, args.lr, rng,
                            max_seconds=None if args.max_minutes is None else 60 * args.max_minutes)
    train_time = time.time() - t0
    trained = moco.encoder_q

    t1 = time.time()
    probe_rng = np.random.default_rng(args.seed + 1)
    crops_tr, y_tr = probe_set(images, train_names, args.probe_train, sampler, args.dre_size, args.crop,
                               args.probe_crops, probe_rng)
    crops_te, y_te = probe_set(images, test_names, args.probe_test, sampler, args.dre_size, args.crop,
                               args.probe_crops, probe_rng)
    scores, cv_scores, preds, alphas = {}, {}, {}, {}
    for name, enc in (('UDRL-trained DRE', trained), ('random DRE (control)', random_dre)):
        score, pred, alpha, cv = linear_probe(features(enc, crops_tr), y_tr, features(enc, crops_te), y_te,
                                              seed=args.seed)
        scores[name] = dict(zip(TARGETS, map(float, score)))
        cv_scores[name] = dict(zip(TARGETS, map(float, cv)))
        preds[name], alphas[name] = pred, alpha
    probe_time = time.time() - t1

    lines = ['| DRE | probe scored on | ' + ' | '.join(f'R² {t}' for t in TARGETS) + ' | ridge alpha |',
             '|---|---|' + '---|' * (len(TARGETS) + 1)]
    for name in scores:
        for where, sc in (('held-out images', scores[name]), ('training images (5-fold CV)', cv_scores[name])):
            lines.append(f'| {name} | {where} | ' + ' | '.join(f'{sc[t]:.3f}' for t in TARGETS) +
                         f' | {alphas[name]:g} |')
    table = '\n'.join(lines) + '\n'
    result = {
        'scores_r2': scores, 'cv_scores_r2': cv_scores, 'ridge_alpha': alphas, 'train_images': train_names,
        'heldout_images': test_names,
        'iters_done': len(losses), 'final_loss_mean50': float(np.mean(losses[-50:]))
        if losses else None, 'train_time_s': train_time, 'probe_time_s': probe_time,
        'config': {k: v for k, v in vars(args).items()}, 'degradation': repr(sampler),
        'v_dr_dim': 4 * args.num_feat, 'probe_train_n': args.probe_train, 'probe_test_n': args.probe_test,
    }
    write_text_atomic(osp.join(args.out, 'probe.json'), json.dumps(json_safe(result), indent=2) + '\n')
    write_text_atomic(osp.join(args.out, 'probe.md'), table)
    if not args.load_dre:
        ckpt = osp.join(args.out, 'dre_udrl_demo.pth')
        torch_save_atomic({'params': trained.state_dict(), 'arch': {'num_feat': args.num_feat},
                    'note': 'DEMONSTRATION DRE: UDRL on a CPU for a few minutes on a dozen images; '
                            'not for restoration.'}, ckpt)
    plot_results(args.out, losses, y_te, preds, scores)
    print(table, end='')
    print(f'UDRL {train_time:.0f} s, probe {probe_time:.0f} s; results in {args.out}')
    return result


if __name__ == '__main__':
    sys.exit(0 if main() else 1)
