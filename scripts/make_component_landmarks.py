#!/usr/bin/env python
"""Compute eye/mouth regions of a folder of aligned faces in GFP-GAN's component-landmarks format.

For every image of the folder, in the order the training datasets list it (sorted names, the extensions of
``panininet.data.data_util.IMG_EXTENSIONS``, or the order of ``--meta_info``), dlib finds the face (HOG) and its 68
landmarks (``shape_predictor_68_face_landmarks.dat`` from the ``face_recognition_models`` wheel), and the entry
``{'left_eye'|'right_eye'|'mouth': [x, y, half_len]}`` is stored under the image's 8-digit index, in pixels of the
face resized to ``--size`` (512, as GFP-GAN's ``FFHQ_eye_mouth_landmarks_512.pth``): see
:mod:`panininet.data.face_components`. The file is usable as GFP-GAN's ``component_path`` and as our datasets'.

A face dlib does not find gets the FFHQ template's boxes (aligned faces put the eyes and mouth there) and is
listed at the end; ``--strict`` makes that an error instead. The output is written atomically.

Example:
  python scripts/make_component_landmarks.py --input datasets/ffhq/ffhq_512 --output ffhq_components_512.pth
"""
import argparse
import os.path as osp
import sys

import cv2
import numpy as np

import panininet  # noqa: F401  (compat before basicsr)
from panininet.data.data_util import IMG_EXTENSIONS, hq_paths
from panininet.data.face_components import (
    components_from_landmarks68,
    index_key,
    save_component_landmarks,
    template_entry,
)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument('--input', '-i', required=True, help='folder of aligned face images (as dataroot_gt)')
    p.add_argument('--output', '-o', required=True, help='output .pth file')
    p.add_argument('--meta_info', default=None, help='text file listing the images (as the datasets\' meta_info)')
    p.add_argument('--size', type=int, default=512, help='side the coordinates refer to. Default: 512 (GFP-GAN)')
    p.add_argument('--upsample', type=int, default=1, help='dlib HOG upsampling passes. Default: 1')
    p.add_argument('--strict', action='store_true', help='fail when dlib finds no face in an image')
    return p.parse_args(argv)


def fail(msg):
    print(f'error: {msg}', file=sys.stderr)
    sys.exit(2)


class Landmarks68:
    """dlib HOG detector + 68-point predictor on one image, at ``size`` x ``size``."""

    def __init__(self, size=512, upsample=1):
        import dlib

        from panininet.pipeline.face_detection import dlib_model_path
        self.size, self.upsample = size, upsample
        self.detector = dlib.get_frontal_face_detector()
        self.predictor = dlib.shape_predictor(dlib_model_path('shape_predictor_68_face_landmarks.dat'))

    def __call__(self, img):
        """(68, 2) landmarks in pixels of the ``size`` face, or None when no face is found (the largest one wins)."""
        interp = cv2.INTER_AREA if img.shape[0] >= self.size else cv2.INTER_CUBIC
        img = cv2.resize(img, (self.size, self.size), interpolation=interp) if img.shape[:2] != (self.size,) * 2 \
            else img
        rgb = np.ascontiguousarray(img[:, :, ::-1])
        rects = self.detector(rgb, self.upsample)
        if not rects:
            return None
        rect = max(rects, key=lambda r: r.area())
        return np.array([[p.x, p.y] for p in self.predictor(rgb, rect).parts()], dtype=np.float64)


def main(argv=None):
    args = parse_args(argv)
    if not osp.isdir(args.input):
        fail(f'--input {args.input!r} does not exist or is not a folder.')
    if args.size <= 0:
        fail(f'--size must be positive, got {args.size}.')
    if osp.isdir(args.output):
        fail(f'--output {args.output!r} is a folder; give a .pth file name.')
    opt = {'dataroot_gt': args.input, 'meta_info': args.meta_info}
    try:
        paths = hq_paths(opt)
    except (FileNotFoundError, RuntimeError, ValueError) as err:
        fail(f'{err} (looked for {", ".join(IMG_EXTENSIONS)})')
    if osp.realpath(args.output) in {osp.realpath(p) for p in paths}:
        fail(f'--output {args.output!r} is an input file; refusing to overwrite it.')
    try:
        detect = Landmarks68(args.size, args.upsample)
    except ImportError as err:
        fail(str(err))
    entries, missed = {}, []
    for i, path in enumerate(paths):
        img = cv2.imread(path, cv2.IMREAD_COLOR)
        if img is None:
            fail(f'cannot read image {path!r} (not an image or corrupt).')
        points = detect(img)
        if points is None:
            if args.strict:
                fail(f'dlib finds no face in {path!r} (--strict).')
            missed.append(path)
            entries[index_key(i)] = template_entry(args.size)
        else:
            entries[index_key(i)] = components_from_landmarks68(points, min_half_len=16 * args.size / 512)
    save_component_landmarks(entries, args.output)
    print(f'{len(entries)} faces -> {args.output} ({len(missed)} with the template boxes: no face found)')
    for path in missed:
        print(f'  template: {path}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
