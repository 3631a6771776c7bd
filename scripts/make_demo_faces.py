"""Build the tiny face set of the training demo (options/train_panini_mfr_demo.yml) from a public-domain photo.

The photo is scikit-image's bundled NASA portrait of astronaut Eileen Collins (``skimage.data.astronaut()``, public
domain, shipped inside scikit-image, so nothing is downloaded). The script writes, under ``--output``:

* ``train/``: ``--num_train`` face crops with random scale, shift, rotation, flip and colour jitter, ``--size`` px;
* ``val/``: ``--num_val`` crops made the same way from another seed;
* ``photo_degraded.png``: the whole photo blurred, downscaled and JPEG-compressed, for the restore step.

These are HQ faces: the demo's dataset degrades them on the fly, as FFHQ in the real options. The images are
written atomically; files already there are kept (run it again to complete an interrupted set). With ``--check``
nothing is written: it says whether the set is complete and exits 1 if not.

    python scripts/make_demo_faces.py                       # -> datasets/demo_faces (relative to the working
                                                             #    directory, as the options' dataset paths)
    python scripts/make_demo_faces.py --check
"""
import argparse
import os.path as osp
import sys

import cv2
import numpy as np

from panininet.atomic import write_bytes_atomic

# the face of skimage.data.astronaut(): centre and side (px) of an FFHQ-like crop around dlib's box (175, 76)-(265, 166)
FACE_CENTRE = (220.0, 128.0)
FACE_SIDE = 200.0


def astronaut():
    """The photo as a BGR uint8 array (512, 512, 3)."""
    from skimage import data
    return cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)


def face_crop(photo, size, rng):
    """One augmented face crop.

    Args:
        photo (ndarray): BGR uint8 (h, w, 3).
        size (int): Side of the crop in pixels.
        rng (np.random.Generator): Source of the augmentation.

    Returns:
        ndarray: BGR uint8 (size, size, 3).
    """
    scale = size / (FACE_SIDE * rng.uniform(0.9, 1.1))
    angle = rng.uniform(-6, 6)
    cx = FACE_CENTRE[0] + rng.uniform(-0.04, 0.04) * FACE_SIDE
    cy = FACE_CENTRE[1] + rng.uniform(-0.04, 0.04) * FACE_SIDE
    m = cv2.getRotationMatrix2D((cx, cy), angle, scale)
    m[:, 2] += (size / 2 - cx, size / 2 - cy)
    img = cv2.warpAffine(photo, m, (size, size), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REFLECT)
    if rng.random() < 0.5:
        img = img[:, ::-1]
    gain = rng.uniform(0.85, 1.15, size=3)  # per-channel colour jitter
    offset = rng.uniform(-12, 12)
    return np.clip(img.astype(np.float32) * gain + offset, 0, 255).astype(np.uint8)


def degraded_photo(photo):
    """The photo blurred, downscaled 2x, JPEG-compressed (quality 30) and resized back: the restore step's input
    (milder would not show; harsher and dlib's face detector, which the demo restores with, misses the face)."""
    h, w = photo.shape[:2]
    small = cv2.resize(cv2.GaussianBlur(photo, (0, 0), 1.0), (w // 2, h // 2), interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode('.jpg', small, [cv2.IMWRITE_JPEG_QUALITY, 30])
    return cv2.resize(cv2.imdecode(buf, cv2.IMREAD_COLOR), (w, h), interpolation=cv2.INTER_LINEAR)


def planned_files(num_train, num_val):
    """Relative paths of everything the set holds."""
    return ([f'train/{i:04d}.png' for i in range(num_train)] + [f'val/{i:04d}.png' for i in range(num_val)]
            + ['photo_degraded.png'])


def build(output, size=64, num_train=48, num_val=4, seed=0):
    """Write the set; files already there are kept.

    Args:
        output (str): Folder to write.
        size (int): Side of the face crops. Default: 64 (the demo's out_size).
        num_train (int): Training crops. Default: 48.
        num_val (int): Validation crops. Default: 4.
        seed (int): Seed of the augmentation (validation uses seed + 1). Default: 0.

    Returns:
        int: Number of files written.
    """
    photo = astronaut()
    written = 0
    for split, num, split_seed in (('train', num_train, seed), ('val', num_val, seed + 1)):
        rng = np.random.default_rng(split_seed)
        for i in range(num):
            img = face_crop(photo, size, rng)  # drawn for every index, so a resumed set equals a fresh one
            path = osp.join(output, split, f'{i:04d}.png')
            if not osp.isfile(path):
                write_bytes_atomic(path, cv2.imencode('.png', img)[1].tobytes())
                written += 1
    path = osp.join(output, 'photo_degraded.png')
    if not osp.isfile(path):
        write_bytes_atomic(path, cv2.imencode('.png', degraded_photo(photo))[1].tobytes())
        written += 1
    return written


def check(output, size=64, num_train=48, num_val=4):
    """Problems of the set at ``output`` (missing or unreadable files, crops of another size); empty if complete."""
    problems = []
    for rel in planned_files(num_train, num_val):
        path = osp.join(output, rel)
        if not osp.isfile(path):
            problems.append(f'{path}: missing')
            continue
        img = cv2.imread(path)
        if img is None:
            problems.append(f'{path}: not a readable image')
        elif rel != 'photo_degraded.png' and img.shape[:2] != (size, size):
            problems.append(f'{path}: {img.shape[1]}x{img.shape[0]}, expected {size}x{size}')
    return problems


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--output', default=osp.join('datasets', 'demo_faces'),
                   help='folder to write (default: datasets/demo_faces, as options/train_panini_mfr_demo.yml reads)')
    p.add_argument('--size', type=int, default=64, help='side of the face crops (the options\' out_size)')
    p.add_argument('--num_train', type=int, default=48)
    p.add_argument('--num_val', type=int, default=4)
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--check', action='store_true', help='verify the set, write nothing')
    args = p.parse_args(argv)
    if args.size < 8 or args.num_train < 1 or args.num_val < 0:
        print('Error: --size must be >= 8, --num_train >= 1 and --num_val >= 0.', file=sys.stderr)
        return 2
    if args.check:
        problems = check(args.output, args.size, args.num_train, args.num_val)
        for line in problems:
            print(line)
        total = len(planned_files(args.num_train, args.num_val))
        print(f'{args.output}: {total - len(problems)} of {total} files in order'
              + ('' if problems else ' (complete)'))
        return 1 if problems else 0
    try:
        import skimage  # noqa: F401
    except ImportError:
        print('Error: the demo photo comes with scikit-image: pip install scikit-image', file=sys.stderr)
        return 2
    try:
        n = build(args.output, args.size, args.num_train, args.num_val, args.seed)
    except OSError as err:
        print(f'Error: cannot write {args.output}: {err}', file=sys.stderr)
        return 2
    print(f'{args.output}: {n} files written, {len(planned_files(args.num_train, args.num_val)) - n} already there '
          f'({args.num_train} training and {args.num_val} validation faces of {args.size} px, photo_degraded.png)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
