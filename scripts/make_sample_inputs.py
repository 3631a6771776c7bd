"""Write the sample photos of ``inputs/``: public-domain pictures only, never test data of others.

    python scripts/make_sample_inputs.py                 # -> inputs/whole_imgs/astronaut.jpg, astronaut_degraded.jpg

``astronaut.jpg`` is scikit-image's ``data.astronaut()`` (Eileen Collins, NASA, public domain; see
``inputs/README.md``); ``astronaut_degraded.jpg`` is the same photo through Panini-Net's eq. (10) degradation
(Gaussian blur, 4x down and up, noise, JPEG), so the restoration has something to do. Needs scikit-image
(``pip install scikit-image``); the files are kept in the repository, so users need not run this.
"""
import argparse
import os.path as osp
import sys

import cv2
import numpy as np

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, REPO)

from panininet.atomic import write_bytes_atomic  # noqa: E402
from panininet.data.degradations import degrade  # noqa: E402

# eq. (10) parameters of the degraded copy: sigma 2 px, r 40 (a factor 4 in tenths), delta 8, JPEG quality 40
DEGRADATION = dict(sigma=2.0, r=40, delta=8.0, q=40)


def jpeg_bytes(img, quality=95):
    ok, buf = cv2.imencode('.jpg', img, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError('OpenCV could not encode a JPEG')
    return buf.tobytes()


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--out', default=osp.join(REPO, 'inputs', 'whole_imgs'), help='output folder')
    p.add_argument('--seed', type=int, default=0, help='seed of the degradation noise')
    args = p.parse_args(argv)
    try:
        from skimage import data
    except ImportError:
        print('Error: scikit-image is needed to write the sample photos: pip install scikit-image', file=sys.stderr)
        return 2
    photo = np.ascontiguousarray(data.astronaut()[..., ::-1])  # RGB -> BGR
    lq = degrade(photo.astype(np.float32) / 255, **DEGRADATION, rng=np.random.default_rng(args.seed))
    degraded = np.clip(lq * 255 + 0.5, 0, 255).astype(np.uint8)
    for name, img in (('astronaut.jpg', photo), ('astronaut_degraded.jpg', degraded)):
        path = osp.join(args.out, name)
        write_bytes_atomic(path, jpeg_bytes(img))
        print(path)
    return 0


if __name__ == '__main__':
    sys.exit(main())
