"""Calibrate and check the monochrome rule (panininet.pipeline.color.monochrome_tone) on photos nobody here made.

    python scripts/calibrate_monochrome.py [--testdata ../shared/testdata] [--qualities 50 75 95]

Photos: scikit-image's bundled data images (colour and gray, nothing downloaded), the photos under ``--testdata``
(when present), LFW faces of scikit-image's ``lfw_subset`` (gray), and versions of every colour photo made here:
gray scans (sensor noise of 1.5 levels per channel, the red channel half a pixel off, as a scanner's fringes),
sepia and cyanotype prints, and faded colour (half the saturation), each saved as JPEG at ``--qualities``; the
colour photos themselves are saved at the same qualities. Prints, per kind, how many photos the rule calls colour,
gray or tinted, the false-gray (colour called monochrome) and false-colour (monochrome called colour) counts, and
the photos nearest the thresholds.
"""
import argparse
import glob
import os.path as osp
import sys
from collections import Counter

import cv2
import numpy as np

import panininet  # noqa: F401  (compat before basicsr)
from panininet.pipeline.color import MONO_MEAN, MONO_Q99, monochrome_stats, monochrome_tone

HERE = osp.dirname(osp.dirname(osp.abspath(__file__)))
SKIMAGE_COLOUR = ('astronaut', 'chelsea', 'coffee', 'color', 'hubble_deep_field', 'ihc', 'logo', 'motorcycle_left',
                  'motorcycle_right', 'retina', 'rocket')
SKIMAGE_GRAY = ('brick', 'camera', 'cell', 'chessboard_GRAY', 'clock_motion', 'coins', 'grass', 'gravel',
                'microaneurysms', 'moon', 'page', 'text', 'horse', 'phantom', 'chessboard_RGB')
MONOCHROME_KINDS = ('gray', 'gray scan', 'sepia', 'cyanotype')


def _bgr8(img):
    if img.dtype == np.uint16:
        img = (img // 257).astype(np.uint8)
    if img.ndim == 2:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    return np.ascontiguousarray(img[:, :, :3])


def real_photos(testdata):
    """(name, BGR uint8, kind) of the photos as they are: skimage's, the test data's, LFW faces."""
    from skimage import data

    folder = osp.dirname(data.__file__)
    out = []
    for kind, names in (('colour', SKIMAGE_COLOUR), ('gray', SKIMAGE_GRAY)):
        for name in names:
            path = glob.glob(osp.join(folder, name + '.*'))[0]
            out.append((f'skimage/{name}', _bgr8(cv2.imread(path, cv2.IMREAD_UNCHANGED)), kind))
    lfw = np.load(osp.join(folder, 'lfw_subset.npy'))[:40]  # (n, 25, 25) gray faces in [0, 1]
    out += [(f'skimage/lfw_{i:02d}', _bgr8(np.round(face * 255).astype(np.uint8)), 'gray')
            for i, face in enumerate(lfw)]
    if testdata and osp.isdir(testdata):
        for path in sorted(glob.glob(osp.join(testdata, '**', '*.*'), recursive=True)):
            img = cv2.imread(path, cv2.IMREAD_COLOR) if path.lower().endswith(('.png', '.jpg')) else None
            if img is not None:
                spread = (img.max(axis=2).astype(int) - img.min(axis=2)).max()
                out.append((f'testdata/{osp.relpath(path, testdata)}', img, 'gray' if spread == 0 else 'colour'))
    return out


def gray_scan(img, rng):
    g = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY).astype(np.float32)
    out = np.stack([g, g, g], axis=2) + rng.normal(0, 1.5, img.shape)
    shift = np.float32([[1, 0, 0.5], [0, 1, 0]])
    out[:, :, 2] = cv2.warpAffine(out[:, :, 2], shift, g.shape[::-1], borderMode=cv2.BORDER_REFLECT)
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def sepia(img):
    g = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY).astype(np.float32) / 255
    bgr = np.stack([g * 0.78, g * 0.95 + 0.02, g * 1.07 + 0.05], axis=2)
    return np.clip(np.round(bgr * 255), 0, 255).astype(np.uint8)


def cyanotype(img):
    g = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY).astype(np.float32)[:, :, None] / 255
    dark, light = np.float32([90, 45, 20]), np.float32([250, 235, 215])  # Prussian blue to paper white (BGR)
    return np.round(dark + (light - dark) * g).astype(np.uint8)


def faded(img, keep=0.5):
    hsv = cv2.cvtColor(img, cv2.COLOR_BGR2HSV).astype(np.float32)
    hsv[:, :, 1] *= keep
    return cv2.cvtColor(np.round(hsv).astype(np.uint8), cv2.COLOR_HSV2BGR)


def jpeg(img, quality):
    ok, buf = cv2.imencode('.jpg', img, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    return cv2.imdecode(buf, cv2.IMREAD_COLOR)


def all_cases(testdata, qualities):
    """(name, image, kind) of every photo the rule is checked on."""
    rng = np.random.default_rng(0)
    cases = []
    for name, img, kind in real_photos(testdata):
        cases.append((name, img, kind))
        makers = {'colour': img, 'gray scan': gray_scan(img, rng)}
        if kind == 'colour':
            makers.update({'sepia': sepia(img), 'cyanotype': cyanotype(img), 'faded colour': faded(img)})
        for made_kind, made in makers.items():
            for q in qualities:
                if kind == 'gray' and made_kind == 'colour':
                    made_kind = 'gray'  # a gray photo as JPEG
                cases.append((f'{name} {made_kind} q{q}', jpeg(made, q), made_kind))
    return cases


def channel_spread_rule(img, mean_spread=2.0, q99_spread=8.0):
    """The rule before this one, for comparison: gray when B, G, R agree within 2 levels on average and 8 levels
    for 99 % of the pixels (no tint)."""
    spread = img.max(axis=2).astype(np.float32) - img.min(axis=2)
    return 'gray' if spread.mean() <= mean_spread and np.quantile(spread, 0.99) <= q99_spread else 'colour'


def verdict(img):
    tone = monochrome_tone(img)
    return 'colour' if tone is None else 'gray' if tone.neutral else 'tinted'


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--testdata', default=osp.join(osp.dirname(HERE), 'shared', 'testdata'),
                   help='folder of real test photos (skipped when absent)')
    p.add_argument('--qualities', type=int, nargs='+', default=[50, 75, 95], help='JPEG qualities of the versions')
    args = p.parse_args(argv)
    cases = all_cases(args.testdata, args.qualities)
    table, before = {}, {}
    near = []
    for name, img, kind in cases:
        got = verdict(img)
        table.setdefault(kind, Counter())[got] += 1
        before.setdefault(kind, Counter())[channel_spread_rule(img)] += 1
        _, q99, mean = monochrome_stats(img)
        margin = min(abs(q99 - MONO_Q99) / MONO_Q99, abs(mean - MONO_MEAN) / MONO_MEAN)
        near.append((margin, name, kind, got, q99, mean))
    print(f'monochrome rule: 99th percentile <= {MONO_Q99:g} and mean <= {MONO_MEAN:g} (a*b* distance from the tint)')
    print(f'{len(cases)} photos ({sum(1 for c in cases if " q" not in c[0])} as they are, the rest made here)')
    print(f'{"kind":14s} {"photos":>6s} {"colour":>7s} {"gray":>6s} {"tinted":>7s}')
    for kind in ('colour', 'faded colour', *MONOCHROME_KINDS):
        c = table.get(kind, Counter())
        print(f'{kind:14s} {sum(c.values()):6d} {c["colour"]:7d} {c["gray"]:6d} {c["tinted"]:7d}')
    colour_kinds = ('colour', 'faded colour')
    false_gray = sum(table.get(k, Counter())['gray'] + table.get(k, Counter())['tinted'] for k in colour_kinds)
    false_colour = sum(table.get(k, Counter())['colour'] for k in MONOCHROME_KINDS)
    n_colour = sum(sum(table.get(k, Counter()).values()) for k in colour_kinds)
    n_mono = sum(sum(table.get(k, Counter()).values()) for k in MONOCHROME_KINDS)
    print(f'false gray (colour photo made monochrome): {false_gray} of {n_colour}')
    print(f'false colour (monochrome photo left colour): {false_colour} of {n_mono}')
    old_gray = sum(before.get(k, Counter())['gray'] for k in colour_kinds)
    old_colour = sum(before.get(k, Counter())['colour'] for k in MONOCHROME_KINDS)
    print(f'the channel-spread rule on the same photos: false gray {old_gray} of {n_colour}, false colour '
          f'{old_colour} of {n_mono} (it has no tinted class)')
    print('nearest the thresholds (margin, photo, kind, verdict, q99, mean):')
    for margin, name, kind, got, q99, mean in sorted(near)[:8]:
        print(f'  {margin:5.2f}  {name}  [{kind} -> {got}]  q99 {q99:.2f}  mean {mean:.2f}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
