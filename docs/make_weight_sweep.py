"""Make docs/weight_sweep.jpg: one face restored at several -w values, with each level-mean DAFI prior weight.

    python docs/make_weight_sweep.py --model_path /path/to/panini_mfr_latest.pth

The face is ``skimage.data.astronaut()`` (NASA photo, public domain; ``pip install scikit-image``), found with the
offline dlib detector. Each tile is labelled with -w and theta, the mean DAFI mask (share of the GAN prior's
features) over all fused levels.
"""
import argparse
import os.path as osp

import cv2
import numpy as np
import torch

import panininet  # noqa: F401  (compat before basicsr)
from panininet.pipeline.restorer import PaniniRestorer, weight_to_mask_bias, write_image

HERE = osp.dirname(osp.abspath(__file__))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--model_path', required=True)
    parser.add_argument('--weights', default='0,0.25,0.5,0.75,1')
    parser.add_argument('--tile', type=int, default=192)
    parser.add_argument('--output', default=osp.join(HERE, 'weight_sweep.jpg'))
    args = parser.parse_args()
    from skimage.data import astronaut

    img = np.ascontiguousarray(astronaut()[:, :, ::-1])  # RGB -> BGR
    restorer = PaniniRestorer(model_path=args.model_path, upscale=1, detector='dlib', device='cpu')
    cropped, _, _ = restorer.enhance(img, only_center_face=True, paste_back=False)
    face = cropped[0]
    tiles = [cv2.resize(face, (args.tile, args.tile), interpolation=cv2.INTER_AREA)]
    labels = ['input']
    x = torch.from_numpy(cv2.resize(face, (restorer.in_size,) * 2, interpolation=cv2.INTER_AREA)[..., ::-1].copy())
    x = (x.permute(2, 0, 1)[None].float() / 255 - 0.5) / 0.5
    for w in [float(v) for v in args.weights.split(',')]:
        out = restorer.restore_faces([face], weight=w)[0]
        with torch.no_grad():
            theta = restorer.net(x, mask_bias=weight_to_mask_bias(w), return_extras=True)[1]['theta'].mean().item()
        tiles.append(cv2.resize(out, (args.tile, args.tile), interpolation=cv2.INTER_AREA))
        labels.append(f'-w {w:g}  theta {theta:.2f}')
    for tile, label in zip(tiles, labels):
        cv2.rectangle(tile, (0, 0), (args.tile, 18), (0, 0, 0), -1)
        cv2.putText(tile, label, (4, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (255, 255, 255), 1, cv2.LINE_AA)
    write_image(np.concatenate(tiles, axis=1), args.output, [cv2.IMWRITE_JPEG_QUALITY, 88])
    print(f'wrote {args.output}')


if __name__ == '__main__':
    main()
