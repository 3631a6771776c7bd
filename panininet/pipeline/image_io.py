"""Image files in and out: the one reader, the one writer and the one list of image extensions.

* :func:`read_image` reads a photo as stored (8 or 16 bits or 32-bit float, gray, BGR or BGRA) and turns it upright
  per its EXIF orientation (:func:`why_unreadable` names the reason when it cannot); :func:`to_bgr8` makes the
  8-bit BGR view detection, the networks and the metrics work on, and :func:`match_format` brings an 8-bit face
  back to a photo's own channels and depth.
* :func:`write_image` encodes by extension and writes atomically (:mod:`panininet.atomic`): never a partial file.
* :data:`IMAGE_EXTENSIONS` / :func:`is_image_file`: what the dataset lists and the evaluation folders count as an
  image (the CLI decodes every file instead, so a mislabelled image still gets restored).
"""
import os.path as osp

import cv2
import numpy as np

from panininet.atomic import write_bytes_atomic

IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.webp', '.ppm')

# EXIF orientation tag (0x0112) value -> the flip/rotation that shows the image upright
_EXIF_OPS = {2: lambda a: a[:, ::-1], 3: lambda a: a[::-1, ::-1], 4: lambda a: a[::-1],
             5: lambda a: np.swapaxes(a, 0, 1), 6: lambda a: np.rot90(a, -1), 7: lambda a: np.rot90(a, 1)[::-1, ::-1],
             8: lambda a: np.rot90(a, 1)}


def is_image_file(path):
    """True when ``path``'s extension (any case) is one of :data:`IMAGE_EXTENSIONS`."""
    return osp.splitext(str(path))[1].lower() in IMAGE_EXTENSIONS


def exif_orientation(path):
    """EXIF orientation (1-8) of an image file; 1 (upright) when it has none or PIL cannot read it."""
    try:
        from PIL import Image

        with Image.open(path) as im:
            return int(im.getexif().get(0x0112, 1))
    except Exception:  # noqa: BLE001  (no EXIF / not readable by PIL: no rotation)
        return 1


def apply_exif_orientation(img, orientation):
    """Rotate/flip ``img`` so it displays upright (EXIF tag 0x0112 values 1-8; others leave it as is)."""
    return np.ascontiguousarray(_EXIF_OPS[orientation](img)) if orientation in _EXIF_OPS else img


def read_image(path):
    """Read a photo as stored (depth, alpha, gray kept), upright per its EXIF orientation.

    Args:
        path (str): Image file.

    Returns:
        np.ndarray | None: (h, w) or (h, w, 3|4) BGR[A], uint8, uint16 or float32 (float TIFFs: values as stored,
        1.0 = white); None when the file is not a readable image (:func:`why_unreadable` says why).

    Raises:
        OSError: The file cannot be read at all (permissions, a dangling link).
    """
    data = np.fromfile(path, dtype=np.uint8)
    img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if img is None or img.dtype not in (np.uint8, np.uint16, np.float32, np.float64):
        return None
    if img.dtype == np.float64:
        img = img.astype(np.float32)
    return apply_exif_orientation(img, exif_orientation(path))


EXR_MAGIC = b'\x76\x2f\x31\x01'


def why_unreadable(path):
    """Why :func:`read_image` gave None for ``path``: one phrase for the user's warning."""
    with open(path, 'rb') as f:
        head = f.read(4)
    if not head:
        return 'an empty file'
    if head == EXR_MAGIC:
        return ('an OpenEXR image, which the OpenCV build of opencv-python cannot decode; convert it to a 32-bit '
                'float TIFF')
    return 'not an image (or a truncated or corrupt one)'


def write_image(img, path, params=None):
    """Write ``img`` atomically (temp file in the same folder, then ``os.replace``); never writes a partial file.

    Args:
        img (np.ndarray): Image as cv2 expects it.
        path (str): Destination; its extension picks the format. The folder is created.
        params (list | None): cv2.imencode parameters. Default: None.
    """
    ok, buf = cv2.imencode(osp.splitext(path)[1], img, params or [])
    if not ok:
        raise OSError(f'could not encode {path}')
    write_bytes_atomic(path, buf.tobytes())


def to_bgr8(img):
    """8-bit 3-channel BGR view of any photo, for detection and the network.

    Args:
        img (np.ndarray): (h, w) gray, (h, w, 1|3|4) BGR[A]; uint8, uint16 or float (1.0 = white; values outside
            [0, 1] are clipped).

    Returns:
        np.ndarray: (h, w, 3) uint8 BGR (16 bits are rounded to 8, alpha is dropped, gray is repeated).
    """
    if img.dtype == np.uint16:
        img = ((img.astype(np.uint32) + 128) // 257).astype(np.uint8)
    elif img.dtype != np.uint8:
        img = np.clip(np.round(img * 255.0), 0, 255).astype(np.uint8)
    if img.ndim == 2 or img.shape[2] == 1:
        return cv2.cvtColor(img.reshape(img.shape[:2]), cv2.COLOR_GRAY2BGR)
    if img.shape[2] == 4:
        return np.ascontiguousarray(img[:, :, :3])
    return img


def match_format(face_bgr8, like):
    """Convert an 8-bit BGR face to ``like``'s channels (gray / BGR) and depth, as float32 values.

    Args:
        face_bgr8 (np.ndarray): (h, w, 3) uint8 BGR.
        like (np.ndarray): (h, w) or (h, w, c) uint8/uint16/float image whose form to match.

    Returns:
        np.ndarray: (h, w, 1) for a gray ``like``, else (h, w, 3); float32 on ``like``'s scale (x 257 for 16 bits,
        / 255 for float images).
    """
    face = face_bgr8.astype(np.float32)
    if like.ndim == 2 or like.shape[2] == 1:
        face = cv2.cvtColor(face, cv2.COLOR_BGR2GRAY)[:, :, None]
    if like.dtype == np.uint16:
        face = face * 257.0
    elif np.issubdtype(like.dtype, np.floating):
        face = face / 255.0
    return face


def resize_square(img, size):
    """``img`` resized to ``size`` x ``size``: area averaging when shrinking, bicubic when enlarging.

    Args:
        img (np.ndarray): (h, w[, c]) image.
        size (int): Output side.

    Returns:
        np.ndarray: ``img`` itself when it already has that size.
    """
    if img.shape[:2] == (size, size):
        return img
    interp = cv2.INTER_AREA if img.shape[0] > size else cv2.INTER_CUBIC
    return cv2.resize(img, (size, size), interpolation=interp)
