"""Mean ΔE between each face's input crop and its restored face, without and with ``--color_fix``.

    python benchmarks/bench_color_fix.py --photos ../shared/testdata/whole_imgs ../shared/testdata/cropped_faces

For every face the restorer finds (dlib detector; files of ``cropped_faces`` folders are taken as aligned), prints the
mean CIE76 ΔE*ab between the low-frequency colour of its 512 input crop and of the restored face
(:func:`panininet.pipeline.color.mean_delta_e`), for ``--color_fix none``, ``wavelet`` and ``adain``, and the mean per
method. ``--model_path`` gives real weights; without it a tiny randomly initialised PaniniNet is used (its colours
are arbitrary, so the ``none`` row is an upper bound of what a GAN prior can do to colour, and the other rows show how
much of it the fix takes back).
"""
import argparse
import glob
import os.path as osp

import numpy as np
import torch

import panininet  # noqa: F401  (compat before basicsr)
from panininet.families import random_family
from panininet.pipeline.color import COLOR_FIX_METHODS, mean_delta_e
from panininet.pipeline.image_io import is_image_file, read_image
from panininet.pipeline.restorer import PaniniRestorer

TINY = dict(in_size=64, out_size=128, narrow=0.25, channel_multiplier=1, num_style_feat=64, dre_num_feat=16,
            dre_in_size=64)


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--photos', nargs='+', required=True, help='folders of photos (cropped_faces: aligned)')
    p.add_argument('--model_path', default=None, help='weights (default: a tiny random PaniniNet)')
    p.add_argument('--threads', type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    net = None if args.model_path else random_family('mfr', 'cpu', **TINY)
    rows = []
    for method in COLOR_FIX_METHODS:
        rest = PaniniRestorer(model_path=args.model_path, net=net, detector='dlib', dlib_upsample=1, device='cpu',
                              allow_download=False, color_fix=method)
        for folder in args.photos:
            aligned = osp.basename(osp.normpath(folder)) == 'cropped_faces'
            for path in sorted(f for f in glob.glob(osp.join(folder, '*')) if is_image_file(f)):
                crops, faces, _ = rest.enhance(read_image(path), has_aligned=aligned, paste_back=False)
                for idx, (crop, face) in enumerate(zip(crops, faces)):
                    rows.append((method, f'{osp.basename(path)}#{idx}', mean_delta_e(crop, face)))
    names = sorted({r[1] for r in rows})
    print(f'| face | {" | ".join(COLOR_FIX_METHODS)} |\n|---|' + '---|' * len(COLOR_FIX_METHODS))
    for name in names:
        vals = [next(r[2] for r in rows if r[0] == m and r[1] == name) for m in COLOR_FIX_METHODS]
        print(f'| {name} | ' + ' | '.join(f'{v:.1f}' for v in vals) + ' |')
    means = [np.mean([r[2] for r in rows if r[0] == m]) for m in COLOR_FIX_METHODS]
    print(f'| mean of {len(names)} faces | ' + ' | '.join(f'{v:.1f}' for v in means) + ' |')
    print(f'network: {args.model_path or "tiny random PaniniNet " + str(TINY)}')


if __name__ == '__main__':
    main()
