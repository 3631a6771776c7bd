"""Image files in and out: the one reader, the one writer and the one list of image extensions.

* :func:`read_image` reads a photo as stored (8 or 16 bits or 32-bit float, gray, BGR or BGRA) and turns it upright
  per its EXIF orientation (:func:`why_unreadable` names the reason when it cannot); :func:`to_bgr8` makes the
  8-bit BGR view detection, the networks and the metrics work on, and :func:`match_format` brings an 8-bit face
  back to a photo's own channels and depth.
  HEIC/HEIF (iPhones' default; needs pillow-heif, the ``[heif]`` extra) and AVIF are decoded through Pillow.
* :func:`read_metadata` gives what a restored photo should carry over from its input: the ICC colour profile and the
  EXIF block (date taken, camera, GPS), with the EXIF orientation reset to 1 since :func:`read_image` stores the
  pixels upright.
* :func:`write_image` encodes by extension and writes atomically (:mod:`panininet.atomic`): never a partial file.
  With ``metadata`` the ICC profile and EXIF go into the file: spliced into OpenCV's own PNG / JPEG bytes (so 16-bit
  PNGs keep their depth), through Pillow for WebP, AVIF, HEIC and 8-bit TIFF.
* :data:`IMAGE_EXTENSIONS` / :func:`is_image_file`: what the dataset lists and the evaluation folders count as an
  image (the CLI decodes every file instead, so a mislabelled image still gets restored).
* :func:`output_extension` / :func:`fit_for_format`: the format a restored photo is written in (the input's own,
  by default) and the conversion a format that cannot hold its alpha, depth or float values needs (the CLI and the
  web page write the same files).
"""
import os.path as osp
import struct
import warnings
import zlib
from dataclasses import dataclass

import cv2
import numpy as np

from panininet.atomic import write_bytes_atomic

IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.webp', '.ppm', '.heic', '.heif', '.avif')
# encoded through Pillow (OpenCV's wheels have no HEIF codec; Pillow's AVIF keeps ICC and EXIF)
PILLOW_WRITTEN = ('.heic', '.heif', '.avif')
_PILLOW_FORMAT = {'.heic': 'HEIF', '.heif': 'HEIF', '.avif': 'AVIF', '.webp': 'WEBP', '.tif': 'TIFF', '.tiff': 'TIFF'}
_HEIF_BRANDS = (b'heic', b'heix', b'heim', b'heis', b'hevc', b'hevx', b'mif1', b'msf1')
_AVIF_BRANDS = (b'avif', b'avis')
DEFAULT_MAX_OUTPUT_PIXELS = 200_000_000  # 200 MP, e.g. 17,300 x 11,500: about 0.6 GB for an 8-bit canvas

# EXIF orientation tag (0x0112) value -> the flip/rotation that shows the image upright
_EXIF_OPS = {2: lambda a: a[:, ::-1], 3: lambda a: a[::-1, ::-1], 4: lambda a: a[::-1],
             5: lambda a: np.swapaxes(a, 0, 1), 6: lambda a: np.rot90(a, -1), 7: lambda a: np.rot90(a, 1)[::-1, ::-1],
             8: lambda a: np.rot90(a, 1)}


def writable_extensions():
    """The image extensions this installation can write: OpenCV's, plus HEIC/HEIF when pillow-heif has an HEVC
    encoder and AVIF when Pillow has an AVIF encoder."""
    from PIL import features

    exts = ['.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.webp', '.ppm']
    if register_heif():
        import pillow_heif

        if pillow_heif.libheif_info().get('HEIF'):
            exts += ['.heic', '.heif']
    if features.check('avif'):
        exts.append('.avif')
    return tuple(exts)


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


@dataclass(frozen=True)
class ImageMetadata:
    """What a restored photo carries over from its input (see :func:`read_metadata`).

    Attributes:
        icc_profile (bytes | None): The embedded ICC colour profile (e.g. a phone's Display P3).
        exif (bytes | None): The EXIF block as a TIFF structure (no ``Exif\\0\\0`` prefix), orientation set to 1.
    """
    icc_profile: bytes = None
    exif: bytes = None

    def __bool__(self):
        return bool(self.icc_profile or self.exif)


def _isobmff_brand(data):
    """The major brand of an ISO-BMFF file (HEIF, AVIF, MP4) from its first bytes, else None."""
    return bytes(data[8:12]) if len(data) >= 12 and bytes(data[4:8]) == b'ftyp' else None


def register_heif():
    """Let Pillow open HEIC/HEIF files (pillow-heif); False when pillow-heif is not installed."""
    try:
        import pillow_heif
    except ImportError:
        return False
    pillow_heif.register_heif_opener()
    return True


def _pillow_to_array(im):
    """(h, w) gray, (h, w, 3) BGR or (h, w, 4) BGRA uint8 (uint16 for 16-bit gray) from a Pillow image."""
    if im.mode in ('I;16', 'I;16L', 'I;16B'):
        return np.asarray(im, dtype=np.uint16)
    if im.mode != 'L':
        has_alpha = 'A' in im.getbands() or 'transparency' in im.info
        im = im.convert('RGBA' if has_alpha else 'RGB')
    arr = np.asarray(im)
    if arr.ndim == 3:
        arr = cv2.cvtColor(arr, cv2.COLOR_RGBA2BGRA if arr.shape[2] == 4 else cv2.COLOR_RGB2BGR)
    return np.ascontiguousarray(arr)


def _read_with_pillow(path):
    from PIL import Image

    register_heif()
    try:
        with Image.open(path) as im:
            im.load()
            orientation = int(im.getexif().get(0x0112, 1))
            return apply_exif_orientation(_pillow_to_array(im), orientation)
    except Exception:  # noqa: BLE001  (truncated or not decodable: the caller reports why_unreadable)
        return None


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
    if img is None and _isobmff_brand(data) in _HEIF_BRANDS + _AVIF_BRANDS:
        return _read_with_pillow(path)  # HEIC (no HEIF codec in OpenCV's wheels), or an AVIF OpenCV cannot decode
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
    with open(path, 'rb') as f:
        brand = _isobmff_brand(f.read(12))
    if brand in _HEIF_BRANDS and not register_heif():
        return 'a HEIC/HEIF image, which needs pillow-heif: pip install "panininet[heif]" (or pip install pillow-heif)'
    return 'not an image (or a truncated or corrupt one)'


def read_metadata(path):
    """The ICC profile and EXIF block of an image file, for its restored copy (see :class:`ImageMetadata`).

    Args:
        path (str): Image file.

    Returns:
        ImageMetadata: Empty (falsy) when the file has neither, or Pillow cannot read its header.
    """
    from PIL import Image

    register_heif()
    try:
        with Image.open(path) as im:
            icc = im.info.get('icc_profile') or None
            exif = im.info.get('exif')
            if not exif:
                tags = im.getexif()
                exif = tags.tobytes() if len(tags) else None
    except Exception:  # noqa: BLE001  (Pillow cannot read it: nothing to carry over)
        return ImageMetadata()
    return ImageMetadata(icc, exif_upright(exif) if exif else None)


def exif_upright(exif):
    """An EXIF block with its orientation tag (0x0112 in IFD0) set to 1, every other byte unchanged.

    The block is edited in place rather than re-serialised, so maker notes and their offsets survive.

    Args:
        exif (bytes): TIFF-structured EXIF, with or without the ``Exif\\0\\0`` prefix of JPEG's APP1.

    Returns:
        bytes | None: TIFF-structured EXIF without the prefix; None when the block is malformed (dropped rather
        than risk a viewer turning the upright pixels again).
    """
    tiff = bytearray(exif[6:] if exif.startswith(b'Exif\x00\x00') else exif)
    order = {b'II': '<', b'MM': '>'}.get(bytes(tiff[:2]))
    try:
        if order is None or struct.unpack(order + 'H', tiff[2:4])[0] != 42:
            return None
        ifd = struct.unpack(order + 'I', tiff[4:8])[0]
        for i in range(struct.unpack(order + 'H', tiff[ifd:ifd + 2])[0]):
            entry = ifd + 2 + 12 * i
            tag, kind, count = struct.unpack(order + 'HHI', tiff[entry:entry + 8])
            if tag == 0x0112 and kind == 3 and count == 1:  # SHORT, stored in the first 2 bytes of the value
                tiff[entry + 8:entry + 10] = struct.pack(order + 'H', 1)
    except struct.error:
        return None
    return bytes(tiff)


def _png_chunk(kind, data):
    return struct.pack('>I', len(data)) + kind + data + struct.pack('>I', zlib.crc32(kind + data) & 0xFFFFFFFF)


def _png_with_metadata(png, metadata):
    """iCCP and eXIf chunks right after IHDR (both must come before IDAT)."""
    chunks = b''
    if metadata.icc_profile:
        chunks += _png_chunk(b'iCCP', b'icc\x00\x00' + zlib.compress(metadata.icc_profile))
    if metadata.exif:
        chunks += _png_chunk(b'eXIf', metadata.exif)
    end_of_ihdr = 8 + 8 + 13 + 4
    return png[:end_of_ihdr] + chunks + png[end_of_ihdr:]


def _jpeg_segment(marker, payload):
    return b'\xff' + marker + struct.pack('>H', len(payload) + 2) + payload


def _jpeg_with_metadata(jpeg, metadata):
    """APP1 (EXIF) and APP2 (ICC profile, in chunks of at most 65519 bytes) after SOI and JFIF's APP0."""
    segments = b''
    if metadata.exif:
        if len(metadata.exif) + 8 <= 0xFFFF:
            segments += _jpeg_segment(b'\xe1', b'Exif\x00\x00' + metadata.exif)
        else:
            warnings.warn('EXIF block larger than a JPEG segment (64 KB); not written.', stacklevel=3)
    if metadata.icc_profile:
        step = 0xFFFF - 2 - 14
        parts = [metadata.icc_profile[i:i + step] for i in range(0, len(metadata.icc_profile), step)]
        for i, part in enumerate(parts):
            segments += _jpeg_segment(b'\xe2', b'ICC_PROFILE\x00' + bytes([i + 1, len(parts)]) + part)
    pos = 2
    if jpeg[2:4] == b'\xff\xe0':  # keep JFIF's APP0 first
        pos = 4 + struct.unpack('>H', jpeg[4:6])[0]
    return jpeg[:pos] + segments + jpeg[pos:]


def _encode_with_pillow(img, ext, metadata):
    """HEIC/HEIF, AVIF, WebP or TIFF bytes of an 8-bit image, with the ICC profile and EXIF when given."""
    import io

    from PIL import Image

    if ext in ('.heic', '.heif') and not register_heif():
        raise OSError(f'writing {ext} needs pillow-heif: pip install "panininet[heif]"')
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if img.ndim == 2:
        im = Image.fromarray(img, 'L')
    else:
        code = cv2.COLOR_BGRA2RGBA if img.shape[2] == 4 else cv2.COLOR_BGR2RGB
        im = Image.fromarray(cv2.cvtColor(img, code), 'RGBA' if img.shape[2] == 4 else 'RGB')
    kwargs = {'lossless': True} if ext == '.webp' else {} if ext in ('.tif', '.tiff') else {'quality': 95}
    if metadata is not None and metadata.icc_profile:
        kwargs['icc_profile'] = metadata.icc_profile
    if metadata is not None and metadata.exif:
        kwargs['exif'] = b'Exif\x00\x00' + metadata.exif if ext in ('.heic', '.heif', '.avif') else metadata.exif
    buf = io.BytesIO()
    im.save(buf, format=_PILLOW_FORMAT[ext], **kwargs)
    return buf.getvalue()


def write_image(img, path, params=None, metadata=None):
    """Write ``img`` atomically (temp file in the same folder, then ``os.replace``); never writes a partial file.

    Args:
        img (np.ndarray): Image as cv2 expects it (uint8 for HEIC/HEIF and AVIF).
        path (str): Destination; its extension picks the format. The folder is created.
        params (list | None): cv2.imencode parameters (formats OpenCV encodes). Default: None.
        metadata (ImageMetadata | None): ICC profile and EXIF to embed (PNG, JPEG, WebP, AVIF, HEIC, 8-bit TIFF;
            other files are written without them, with a warning). Default: None.
    """
    ext = osp.splitext(path)[1].lower()
    metadata = metadata if metadata else None
    by_pillow = ext in PILLOW_WRITTEN or (metadata is not None and ext in _PILLOW_FORMAT and img.dtype == np.uint8)
    if by_pillow:
        data = _encode_with_pillow(img, ext, metadata)
    else:
        ok, buf = cv2.imencode(osp.splitext(path)[1], img, params or [])
        if not ok:
            raise OSError(f'could not encode {path}')
        data = buf.tobytes()
        if metadata is not None and ext == '.png':
            data = _png_with_metadata(data, metadata)
        elif metadata is not None and ext in ('.jpg', '.jpeg'):
            data = _jpeg_with_metadata(data, metadata)
        elif metadata is not None:
            warnings.warn(f'{osp.basename(path)}: {ext} ({img.dtype}) is written without the ICC profile and EXIF '
                          'of its input.', stacklevel=2)
    write_bytes_atomic(path, data)


def output_extension(in_path, ext='auto'):
    """Extension (no dot) of a restored photo: ``ext``, or with 'auto' the input's own (jpeg -> jpg) when this
    installation can write it (:func:`writable_extensions`), else png."""
    if ext != 'auto':
        return ext
    ext = osp.splitext(in_path)[1].lower().lstrip('.')
    return 'jpg' if ext == 'jpeg' else ext if f'.{ext}' in writable_extensions() else 'png'


def fit_for_format(img, ext, name):
    """Formats that cannot hold what the photo has: convert (with a warning) rather than fail.

    Only TIFF holds 32-bit float (float photos become 16 bits in PNG, 8 in the others, values clipped to [0, 1]);
    JPEG, WebP and BMP hold neither alpha nor 16 bits; HEIC and AVIF are written in 8 bits (alpha kept).

    Args:
        img (np.ndarray): (h, w) or (h, w, 3|4) uint8, uint16 or float32 photo.
        ext (str): Extension it is written as (no dot).
        name (str): The photo's name, for the warning.

    Returns:
        np.ndarray: ``img``, or the converted copy.
    """
    if np.issubdtype(img.dtype, np.floating) and ext not in ('tif', 'tiff'):
        depth = 16 if ext == 'png' else 8
        warnings.warn(f'{name}: {ext} cannot hold 32-bit float; writing {depth} bits (give a TIFF input and keep '
                      '--ext auto to keep them).', stacklevel=2)
        top = 65535 if depth == 16 else 255
        img = np.clip(np.round(img * top), 0, top).astype(np.uint16 if depth == 16 else np.uint8)
    if ext in ('jpg', 'jpeg', 'webp', 'bmp', 'heic', 'heif', 'avif'):
        if img.dtype == np.uint16:
            warnings.warn(f'{name}: {ext} cannot hold 16 bits; writing 8 bits (use --ext png to keep them).',
                          stacklevel=2)
            img = ((img.astype(np.uint32) + 128) // 257).astype(np.uint8)
        if img.ndim == 3 and img.shape[2] == 4 and ext not in ('heic', 'heif', 'avif'):
            warnings.warn(f'{name}: {ext} cannot hold alpha; dropping it (use --ext png to keep it).', stacklevel=2)
            img = np.ascontiguousarray(img[:, :, :3])
    return img


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
