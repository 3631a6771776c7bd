#!/usr/bin/env python
"""Does UDRL teach the DRE the degradation? Train a DRE by UDRL on a CPU, then probe v_DR linearly.

1. HQ images (face folders given with ``--images``; with ``--testdata DIR`` the clean faces of the test data; with
   ``--skimage`` the public-domain pictures that ship in scikit-image's wheel) are centre-cropped to squares (and,
   with ``--views N``, N-1 more crops each) and resized to 512 (the MFR input size). Every ``--holdout``-th *group*
   (a person: all files and views of one stem; or one picture) is held out of both the training and the probe's
   training half.
2. A bank of UDRL pairs: ``--bank`` parameter sets (sigma, r, delta, q) drawn by the data task's
   ``DegradationSampler('panini_mfr')`` (``--vary F``: only factor F, the others fixed; ``--pool N``: from N sets),
   each applied (eq. 10, :func:`panininet.data.degradation_sampler.make_lq`, at 512) to two training images of different
   groups, then area-resized to ``--dre-size`` (256, what PaniniNet's DRE sees). ``--cache`` keeps it.
3. MoCo (``panininet.archs.dre_arch.MoCo``, InfoNCE, T = 0.07) until ``--iters`` or ``--max-minutes`` CPU-minutes:
   the query is a random ``--crop`` crop of one image of a pair, the key a crop of the other image (same
   degradation, other content), as the paper's UDRL (Fig. 2). Crops keep the pixel statistics (noise, JPEG
   blocks) at the DRE's scale while fitting a CPU. ``--objective supervised`` trains the same encoder to regress
   the factors instead (the upper bound of encoder and input).
4. Linear probe (:mod:`panininet.metrics.probe`): ridge regression (alpha by 5-fold CV) from v_DR (DRE in eval mode, the
   mean over ``--probe-crops`` crops) to log r, delta, q, sigma and log_blur, fitted on fresh degradations of the
   training images and scored (R^2) on fresh degradations of the held-out images. The control is the same DRE
   architecture at its random initialisation (same seed): R^2 above the control is what training learned.

Writes ``probe.json``, ``probe.md``, ``udrl_loss.png``, ``probe_scatter.png`` and ``dre_udrl_demo.pth`` (a
demonstration DRE: a few minutes of CPU training on a dozen images; not for restoration) under ``--out``.

Example (2 CPU-minutes of training, one thread; ``scripts/udrl_experiments.py`` runs the README's list):

    python scripts/udrl_probe.py --images ../shared/testdata/panini_examples/GT --skimage --bank 1200 --batch 16 \
        --queue 256 --iters 100000 --max-minutes 2 --threads 1 --out results/udrl_probe

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

import cv2
import numpy as np
import torch
from torch.nn import functional as F

import panininet  # noqa: F401  (compat before basicsr)
from panininet.archs.dre_arch import DegradationEncoder, MoCo
from panininet.atomic import save_figure_atomic, torch_save_atomic, write_text_atomic
from panininet.data.degradation_sampler import DegradationSampler, make_lq
from panininet.data.degradations import resize
from panininet.metrics import json_safe, list_images, read_image
from panininet.metrics.probe import TARGETS, degradation_targets, linear_probe

# colour pictures that ship in scikit-image's wheel, sharp and without large flat black areas (where noise is clipped
# and blur is invisible: hubble_deep_field, retina are left out)
SKIMAGE_NAMES = ('astronaut', 'chelsea', 'coffee', 'rocket', 'immunohistochemistry')
#: the factors of eq. (10) that the supervised bound regresses (log_blur is a function of two of them)
FACTOR_TARGETS = TARGETS[:4]


class UsageError(SystemExit):
    """A bad argument or input: one line on stderr, exit status 2 (raised as ``UsageError(message)``)."""

    def __init__(self, message):
        print(message, file=sys.stderr)
        super().__init__(2)


def square(img):
    """Centre crop to a square."""
    h, w = img.shape[:2]
    s = min(h, w)
    return img[(h - s) // 2:(h - s) // 2 + s, (w - s) // 2:(w - s) // 2 + s]


def clean_face_folders(testdata):
    """The folders of clean (sharp, undegraded) faces in the project's test data (see its README).

    ``panini_examples/GT`` (CelebA-HQ ground truth) and ``panini_examples/MFR_result``, ``SR_result`` (Panini-Net's
    1024 px restorations: sharp and noise-free, the same five people as GT). Not ``cropped_faces`` or
    ``whole_imgs`` (old, degraded prints) nor the degraded ``MFR``/``SR`` inputs.
    """
    folders = [osp.join(testdata, 'panini_examples', sub) for sub in ('GT', 'MFR_result', 'SR_result')]
    missing = [f for f in folders if not osp.isdir(f)]
    if missing:
        raise UsageError(f'--testdata {testdata}: no {", ".join(missing)}; give the test-data folder '
                         '(../shared/testdata from the repository root).')
    return folders


def view_crops(img, views, rng, min_side=0.75):
    """``views`` content views of one image: the whole square and, after it, square crops of ``min_side``..1 of
    the side at random positions, every second one flipped.

    Returns:
        list[ndarray]: Crops of ``img`` (any size; resized later).
    """
    img = square(img)
    out = [img]
    h = img.shape[0]
    for i in range(1, views):
        s = int(h * rng.uniform(min_side, 1.0))
        y, x = (int(v) for v in rng.integers(0, h - s + 1, size=2))
        crop = img[y:y + s, x:x + s]
        out.append(np.ascontiguousarray(crop[:, ::-1]) if i % 2 else crop)
    return out


def load_hq_images(folders, use_skimage, size=512, views=1, seed=0):
    """HQ images as float32 BGR (size, size, 3) in [0, 1], keyed by a name; sorted by name.

    Args:
        folders (list[str]): Folders of HQ faces; a file's *group* is its stem, so ``GT/00003`` and
            ``MFR_result/00003`` (the same person) are one group.
        use_skimage (bool): Add :data:`SKIMAGE_NAMES` (each its own group).
        size (int): Side of the returned images.
        views (int): Content views per file (:func:`view_crops`); 1 = the centre square only.
        seed (int): Seed of the view positions.

    Returns:
        tuple[dict[str, ndarray], dict[str, str]]: images by name (``folder/stem`` or ``folder/stem#v``) and the
        group of every name.
    """
    sources, groups = {}, {}
    for folder in folders:
        for stem, path in list_images(folder).items():
            name = f'{osp.basename(osp.normpath(folder))}/{stem}'
            sources[name], groups[name] = read_image(path), stem
    if use_skimage:
        try:
            import skimage.data
        except ImportError as err:
            raise UsageError('--skimage needs scikit-image (pip install scikit-image).') from err
        for name in SKIMAGE_NAMES:
            key = f'skimage/{name}'
            sources[key] = np.ascontiguousarray(getattr(skimage.data, name)()[..., :3][..., ::-1])
            groups[key] = key
    if len(set(groups.values())) < 3:
        raise UsageError(f'Need HQ images of at least 3 groups (2 to train, 1 held out), found '
                         f'{len(set(groups.values()))}.')
    rng = np.random.default_rng(seed)
    images, image_groups = {}, {}
    for name in sorted(sources):
        for v, crop in enumerate(view_crops(sources[name], views, rng)):
            key = name if v == 0 else f'{name}#{v}'
            images[key] = resize(crop, size, 'area').astype(np.float32) / 255.
            image_groups[key] = groups[name]
    return images, image_groups


def split_names(names, holdout, groups=None):
    """Every ``holdout``-th group (sorted, starting with the 2nd) is held out; returns (train, test) names.

    Without ``groups`` every name is its own group. All names of a group fall on the same side, so held-out
    content (a person, a picture) is never seen in training, not even as another view or restoration.
    """
    groups = groups or {n: n for n in names}
    ordered = sorted(set(groups[n] for n in names))
    test_groups = {g for i, g in enumerate(ordered) if i % holdout == 1}
    test = [n for n in names if groups[n] in test_groups]
    train = [n for n in names if groups[n] not in test_groups]
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


def build_bank(images, names, num_params, sampler, dre_size, rng, groups=None, pool=None):
    """UDRL pairs: for each of ``num_params`` parameter sets, two images of different groups degraded alike.

    With ``pool`` the parameter sets are drawn from ``pool`` sets sampled first (a degradation recurs with other
    content, as ``UDRLPairDataset(degradation_pool=...)``).

    Returns:
        list[tuple[ndarray, ndarray, dict]]: (view a, view b, parameters).
    """
    groups = groups or {n: n for n in names}
    pool = None if pool is None else [sampler.sample(rng) for _ in range(pool)]
    bank = []
    for _ in range(num_params):
        params = sampler.sample(rng) if pool is None else pool[int(rng.integers(len(pool)))]
        a = names[int(rng.integers(len(names)))]
        others = [n for n in names if groups[n] != groups[a]]
        b = others[int(rng.integers(len(others)))]
        bank.append((degraded_view(images[a], params, sampler, rng, dre_size),
                     degraded_view(images[b], params, sampler, rng, dre_size), params))
    return bank


def cached(cache_dir, key, make):
    """``make()`` (a list of uint8 arrays plus JSON-able metadata), kept in ``cache_dir/<hash of key>.npz``.

    Building the degraded banks costs CPU minutes; runs that differ only in training share them.

    Args:
        cache_dir (str | None): Cache folder; None: always ``make()``.
        key (dict): Everything the result depends on (JSON-able).
        make (callable): Returns ``(arrays, meta)``: a list of same-shape uint8 arrays and a JSON-able object.

    Returns:
        tuple[list[ndarray], object]: As ``make()``.
    """
    if cache_dir is None:
        return make()
    import hashlib
    digest = hashlib.sha1(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    path = osp.join(cache_dir, f'{digest}.npz')
    if osp.isfile(path):
        with np.load(path) as data:
            print(f'cached: {path}', flush=True)
            return list(data['arrays']), json.loads(str(data['meta']))
    arrays, meta = make()
    os.makedirs(cache_dir, exist_ok=True)
    tmp = f'{path}.{os.getpid()}.tmp.npz'
    np.savez(tmp, arrays=np.stack(arrays), meta=json.dumps(meta))
    os.replace(tmp, path)
    return arrays, meta


def targets_of(params):
    """The probe's targets (:data:`TARGETS`, :func:`panininet.metrics.probe.degradation_targets`) of one parameter
    set."""
    return degradation_targets(params)


def cosine_lr(opt, lr, progress):
    """Set the learning rate of ``opt`` to the cosine schedule at ``progress`` in [0, 1] (down to lr / 100)."""
    value = lr * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0))))
    for group in opt.param_groups:
        group['lr'] = value


def progress_of(it, iters, cpu_used, max_seconds):
    """Share of the budget used: iterations or CPU seconds, whichever runs out first."""
    return max(it / iters, 0 if max_seconds is None else cpu_used / max_seconds)


def train_udrl(moco, bank, iters, batch, crop, lr, rng, log_every=50, max_seconds=None):
    """MoCo training on the bank; returns the loss per iteration.

    Stops after ``iters`` iterations or ``max_seconds`` CPU seconds, whichever comes first; the learning rate is
    cosine-annealed over that budget.
    """
    opt = torch.optim.Adam(moco.encoder_q.parameters(), lr=lr, betas=(0.9, 0.999))
    moco.train()
    losses = []
    t0, c0 = time.time(), cpu_seconds()
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
        progress = progress_of(it, iters, cpu_seconds() - c0, max_seconds)
        cosine_lr(opt, lr, progress)
        losses.append(float(loss.detach()))
        if it % log_every == 0 or it == iters:
            acc = float((logits.argmax(1) == labels).float().mean())
            print(f'iter {it}/{iters}  InfoNCE {np.mean(losses[-log_every:]):.3f}  top-1 {acc:.2f}  '
                  f'{time.time() - t0:.0f} s', flush=True)
        if progress >= 1 and it < iters:
            print(f'stopping after {it} iterations: --max-minutes (CPU) reached', flush=True)
            break
    return losses


def train_supervised(encoder, bank, iters, batch, crop, lr, rng, log_every=50, max_seconds=None):
    """The upper bound: the same encoder trained to regress the standardised factors from v_DR (MSE).

    A linear head on v_DR (the vector the probe reads) predicts log r, delta, q and sigma, standardised by their
    mean and std over the bank (a factor that does not vary is left out of the loss). Each bank image is one
    sample (both images of a pair); the crops, batch, iterations and optimiser are those of :func:`train_udrl`.

    Returns:
        list[float]: The loss per iteration.
    """
    views = [v for item in bank for v in item[:2]]
    y = np.array([targets_of(item[2])[:len(FACTOR_TARGETS)] for item in bank for _ in range(2)], dtype=np.float64)
    mean, std = y.mean(0), y.std(0)
    varies = torch.from_numpy((std > 1e-9).astype(np.float32))
    y = torch.from_numpy(((y - mean) / np.where(std > 1e-9, std, 1)).astype(np.float32))
    head = torch.nn.Linear(encoder.out_dim, len(FACTOR_TARGETS))
    params = list(encoder.parameters()) + list(head.parameters())
    opt = torch.optim.Adam(params, lr=lr, betas=(0.9, 0.999))
    encoder.train()
    losses = []
    t0, c0 = time.time(), cpu_seconds()
    for it in range(1, iters + 1):
        idx = rng.choice(len(views), size=min(batch, len(views)), replace=False)
        x = to_tensor([random_crop(views[i], crop, rng) for i in idx])
        err = (head(encoder(x)) - y[idx])**2 * varies
        loss = err.sum(1).mean() / varies.sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        progress = progress_of(it, iters, cpu_seconds() - c0, max_seconds)
        cosine_lr(opt, lr, progress)
        losses.append(float(loss.detach()))
        if it % log_every == 0 or it == iters:
            print(f'iter {it}/{iters}  MSE {np.mean(losses[-log_every:]):.3f}  {time.time() - t0:.0f} s', flush=True)
        if progress >= 1 and it < iters:
            print(f'stopping after {it} iterations: --max-minutes (CPU) reached', flush=True)
            break
    return losses


def probe_set(images, names, num, sampler, dre_size, crop, num_crops, rng):
    """``num`` fresh degradations of random images from ``names``: crops (num, num_crops) and targets."""
    crops, targets = [], []
    for _ in range(num):
        params = sampler.sample(rng)
        view = degraded_view(images[names[int(rng.integers(len(names)))]], params, sampler, rng, dre_size)
        crops.append([random_crop(view, crop, rng) for _ in range(num_crops)])
        targets.append(targets_of(params))
    return crops, np.array(targets, dtype=np.float64)


@torch.no_grad()
def features(encoder, crops, batch=64):
    """Mean v_DR over each sample's crops: (n, d)."""
    encoder.eval()
    flat = [c for sample in crops for c in sample]
    out = torch.cat([encoder(to_tensor(flat[i:i + batch])) for i in range(0, len(flat), batch)])
    return out.reshape(len(crops), -1, out.shape[-1]).mean(1).double().numpy()


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

    fig, axes = plt.subplots(len(scores), len(TARGETS), figsize=(3.0 * len(TARGETS), 2.8 * len(scores)),
                             squeeze=False)
    for row, name in enumerate(scores):
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


#: Values of the factors that ``--vary`` keeps fixed (r 32 = factor 3.2; the Table-4 sigma, delta and q).
FIXED = dict(sigma=1.0, r=32.0, delta=10.0, q=40)
VARY = ('all', 'log_r', 'delta', 'q', 'sigma')


def make_sampler(vary):
    """``panini_mfr`` degradations; with ``vary`` != 'all' only that factor is drawn, the others are :data:`FIXED`."""
    if vary == 'all':
        return DegradationSampler('panini_mfr')
    fixed = {'sigma_range': FIXED['sigma'], 'r_range': FIXED['r'], 'delta_range': FIXED['delta'],
             'q_range': FIXED['q']}
    keep = {'log_r': 'r_range', 'delta': 'delta_range', 'q': 'q_range', 'sigma': 'sigma_range'}[vary]
    fixed.pop(keep)
    return DegradationSampler('panini_mfr', **fixed)


def cpu_seconds():
    """CPU time of this process (all threads), seconds."""
    return time.process_time()


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--images', nargs='*', default=[], help='folders of HQ images (faces)')
    p.add_argument('--testdata', default=None,
                   help='the test-data folder (../shared/testdata): adds its clean faces, panini_examples/GT, '
                        'MFR_result and SR_result')
    p.add_argument('--skimage', action='store_true', help="add scikit-image's bundled public-domain pictures")
    p.add_argument('--views', type=int, default=1,
                   help='content views per image: the whole square plus random 75-100%% crops, every second '
                        'flipped (default: 1)')
    p.add_argument('--out', required=True, help='output folder')
    p.add_argument('--objective', choices=('udrl', 'supervised'), default='udrl',
                   help='udrl: MoCo (the paper); supervised: regress the factors (the upper bound of the encoder)')
    p.add_argument('--vary', choices=VARY, default='all',
                   help='which factor varies; the others are fixed at %s (default: all)' % FIXED)
    p.add_argument('--holdout', type=int, default=4, help='hold out every N-th image group (default: 4)')
    p.add_argument('--bank', type=int, default=800, help='UDRL parameter sets (pairs) to pre-compute (default: 800)')
    p.add_argument('--pool', type=int, default=None,
                   help='draw the bank\'s degradations from this many parameter sets (default: all distinct)')
    p.add_argument('--iters', type=int, default=1500, help='UDRL iterations (default: 1500)')
    p.add_argument('--batch', type=int, default=24, help='UDRL batch size (default: 24)')
    p.add_argument('--crop', type=int, default=64, help='crop side at the DRE scale (default: 64)')
    p.add_argument('--dre-size', type=int, default=256, help="DRE input scale of a 512 face (default: 256)")
    p.add_argument('--num-feat', type=int, default=16, help='DRE width; v_DR has 4x this (paper: 64; default: 16)')
    p.add_argument('--queue', type=int, default=2048, help='MoCo queue length (default: 2048)')
    p.add_argument('--momentum', type=float, default=0.99, help='MoCo key-encoder momentum (default: 0.99)')
    p.add_argument('--temperature', type=float, default=0.07, help='InfoNCE temperature (default: 0.07)')
    p.add_argument('--bn-splits', type=int, default=1,
                   help='MoCo shuffled BatchNorm sub-batches (1 = plain BatchNorm; default: 1)')
    p.add_argument('--batch-negatives', action='store_true',
                   help='MoCo: the other keys of the batch are negatives too (default: the queue only)')
    p.add_argument('--lr', type=float, default=1e-3, help='Adam learning rate, cosine-annealed (default: 1e-3)')
    p.add_argument('--probe-train', type=int, default=600, help='probe training degradations (default: 600)')
    p.add_argument('--probe-test', type=int, default=300, help='probe test degradations (default: 300)')
    p.add_argument('--probe-crops', type=int, default=4, help='crops averaged per degraded image (default: 4)')
    p.add_argument('--no-control', action='store_true', help='skip the random-DRE control')
    p.add_argument('--max-minutes', type=float, default=None, help='stop training after this many CPU minutes')
    p.add_argument('--load-dre', default=None, help='skip training: probe this DRE checkpoint (from --out)')
    p.add_argument('--cache', default=None,
                   help='folder that keeps the degraded bank and probe sets between runs (they cost CPU minutes)')
    p.add_argument('--threads', type=int, default=None, help='torch (and OpenCV) CPU threads')
    p.add_argument('--seed', type=int, default=0)
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
        cv2.setNumThreads(args.threads)
    if args.crop > args.dre_size:
        raise UsageError(f'--crop {args.crop} is larger than --dre-size {args.dre_size}.')
    if args.objective == 'udrl' and args.batch % args.bn_splits:
        raise UsageError(f'--batch {args.batch} must be a multiple of --bn-splits {args.bn_splits}.')
    os.makedirs(args.out, exist_ok=True)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    sampler = make_sampler(args.vary)
    folders = list(args.images) + (clean_face_folders(args.testdata) if args.testdata else [])
    try:
        images, groups = load_hq_images(folders, args.skimage, views=args.views, seed=args.seed)
    except (FileNotFoundError, ValueError) as err:
        raise UsageError(str(err)) from None
    train_names, test_names = split_names(list(images), args.holdout, groups)
    print(f'{len(images)} HQ images ({len(set(groups.values()))} groups); train: {len(train_names)}; held out: '
          f'{test_names}', flush=True)
    print(f'degradations: {sampler}', flush=True)

    moco = MoCo(num_feat=args.num_feat, dim=4 * args.num_feat, K=args.queue, m=args.momentum, T=args.temperature,
                bn_splits=args.bn_splits, batch_negatives=args.batch_negatives)
    random_dre = DegradationEncoder(args.num_feat)
    random_dre.load_state_dict(moco.encoder_q.state_dict())  # the control: same initialisation, never trained
    t0, c0 = time.time(), cpu_seconds()
    losses, bank_cpu = [], 0.0
    max_seconds = None if args.max_minutes is None else 60 * args.max_minutes
    if args.load_dre:
        from panininet.weights.checkpoint import load_checkpoint_file
        from panininet.weights.panini_checkpoint import extract_dre_state
        moco.encoder_q.load_state_dict(extract_dre_state(load_checkpoint_file(args.load_dre), args.load_dre))
    elif args.iters > 0:
        data_key = dict(images=train_names, groups=groups, views=args.views, seed=args.seed,
                        degradation=repr(sampler), dre_size=args.dre_size)

        def make_bank():
            items = build_bank(images, train_names, args.bank, sampler, args.dre_size,
                               np.random.default_rng([args.seed, 1]), groups, args.pool)
            return [np.stack(item[:2]) for item in items], [item[2] for item in items]

        views, params = cached(args.cache, dict(data_key, bank=args.bank, **({'pool': args.pool} if args.pool else {})),
                               make_bank)
        bank = [(v[0], v[1], p) for v, p in zip(views, params)]
        bank_cpu = cpu_seconds() - c0
        print(f'bank of {len(bank)} pairs in {time.time() - t0:.0f} s', flush=True)
        batch = min(args.batch, len(bank))
        if args.objective == 'udrl':
            losses = train_udrl(moco, bank, args.iters, batch, args.crop, args.lr, rng, max_seconds=max_seconds)
        else:
            losses = train_supervised(moco.encoder_q, bank, args.iters, batch, args.crop, args.lr, rng,
                                      max_seconds=max_seconds)
    train_time, train_cpu = time.time() - t0, cpu_seconds() - c0 - bank_cpu
    trained = moco.encoder_q

    t1 = time.time()
    def make_probe():
        probe_rng = np.random.default_rng(args.seed + 1)
        c_tr, t_tr = probe_set(images, train_names, args.probe_train, sampler, args.dre_size, args.crop,
                               args.probe_crops, probe_rng)
        c_te, t_te = probe_set(images, test_names, args.probe_test, sampler, args.dre_size, args.crop,
                               args.probe_crops, probe_rng)
        return [np.stack(c) for c in c_tr + c_te], [t_tr.tolist(), t_te.tolist()]

    probe_key = dict(train=train_names, test=test_names, groups=groups, views=args.views, seed=args.seed,
                     degradation=repr(sampler), dre_size=args.dre_size, crop=args.crop, n=args.probe_train,
                     n_test=args.probe_test, crops=args.probe_crops)
    crops, (y_tr, y_te) = cached(args.cache, probe_key, make_probe)
    crops_tr, crops_te = crops[:args.probe_train], crops[args.probe_train:]
    y_tr, y_te = np.array(y_tr, dtype=np.float64), np.array(y_te, dtype=np.float64)
    trained_name = 'UDRL-trained DRE' if args.objective == 'udrl' else 'supervised DRE (bound)'
    encoders = [(trained_name, trained)] + ([] if args.no_control else [('random DRE (control)', random_dre)])
    scores, cv_scores, preds, alphas = {}, {}, {}, {}
    for name, enc in encoders:
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
            lines.append(f'| {name} | {where} | ' + ' | '.join('—' if math.isnan(sc[t]) else f'{sc[t]:.3f}'
                                                                for t in TARGETS) + f' | {alphas[name]:g} |')
    table = '\n'.join(lines) + '\n'
    result = {
        'scores_r2': scores, 'cv_scores_r2': cv_scores, 'ridge_alpha': alphas, 'train_images': train_names,
        'heldout_images': test_names,
        'iters_done': len(losses), 'final_loss_mean50': float(np.mean(losses[-50:]))
        if losses else None, 'train_time_s': train_time, 'train_cpu_s': train_cpu, 'bank_cpu_s': bank_cpu,
        'probe_time_s': probe_time,
        'config': {k: v for k, v in vars(args).items()}, 'degradation': repr(sampler),
        'v_dr_dim': 4 * args.num_feat, 'probe_train_n': args.probe_train, 'probe_test_n': args.probe_test,
    }
    write_text_atomic(osp.join(args.out, 'probe.json'), json.dumps(json_safe(result), indent=2) + '\n')
    write_text_atomic(osp.join(args.out, 'probe.md'), table)
    if not args.load_dre:
        ckpt = osp.join(args.out, 'dre_udrl_demo.pth')
        torch_save_atomic({'params': trained.state_dict(), 'arch': {'num_feat': args.num_feat},
                           'note': f'DEMONSTRATION DRE ({args.objective}): trained on a CPU for a few minutes on '
                                   'a dozen images; not for restoration.'}, ckpt)
    plot_results(args.out, losses, y_te, preds, scores)
    print(table, end='')
    print(f'training {train_time:.0f} s ({train_cpu / 60:.1f} CPU-min), probe {probe_time:.0f} s; results in '
          f'{args.out}')
    return result


if __name__ == '__main__':
    sys.exit(0 if main() else 1)
