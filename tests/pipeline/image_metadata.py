"""Test helpers for photo metadata: a Display P3 ICC profile and a phone-like EXIF block, built here."""
import struct


def display_p3_icc():
    """A minimal ICC v2 display profile with Display P3's primaries (D50-adapted) and a 2.2 gamma.

    Returns:
        bytes: The profile (LittleCMS / Pillow's ImageCms accept it).
    """
    def s15(v):
        return struct.pack('>i', int(round(v * 65536)))

    def xyz(x, y, z):
        return b'XYZ ' + bytes(4) + s15(x) + s15(y) + s15(z)

    text = b'Display P3 (test)\x00'
    desc = b'desc' + bytes(4) + struct.pack('>I', len(text)) + text + bytes(4 + 4 + 2 + 1 + 67)
    curv = b'curv' + bytes(4) + struct.pack('>I', 1) + struct.pack('>H', int(2.2 * 256)) + bytes(2)
    tags = [(b'desc', desc), (b'wtpt', xyz(0.9642, 1.0, 0.8249)), (b'rXYZ', xyz(0.5151, 0.2412, -0.0011)),
            (b'gXYZ', xyz(0.2920, 0.6922, 0.0419)), (b'bXYZ', xyz(0.1571, 0.0666, 0.7841)),
            (b'rTRC', curv), (b'gTRC', curv), (b'bTRC', curv), (b'cprt', b'text' + bytes(4) + b'none' + bytes(4))]
    offset = 128 + 4 + 12 * len(tags)
    table, data = struct.pack('>I', len(tags)), b''
    for sig, body in tags:
        body += bytes(-len(body) % 4)
        table += sig + struct.pack('>II', offset + len(data), len(body))
        data += body
    header = (struct.pack('>I', offset + len(data)) + b'lcms' + struct.pack('>I', 0x02100000) + b'mntrRGB XYZ '
              + bytes(12) + b'acsp' + bytes(28) + s15(0.9642) + s15(1.0) + s15(0.8249) + bytes(48))
    return header + table + data


PHONE_EXIF = {'model': 'iPhone 15 Pro', 'taken': '2024:05:01 10:20:30'}


def phone_exif(orientation=1):
    """EXIF bytes (with the ``Exif\\0\\0`` prefix) holding a camera model, a date taken and ``orientation``."""
    from PIL import Image

    exif = Image.Exif()
    exif[0x0112] = orientation
    exif[0x0110] = PHONE_EXIF['model']
    exif.get_ifd(0x8769)[0x9003] = PHONE_EXIF['taken']  # DateTimeOriginal, in the Exif sub-IFD
    return exif.tobytes()


def exif_of(path):
    """(orientation, model, date taken) of an image file's EXIF; (None, None, None) without EXIF.

    A file whose EXIF has no orientation tag (Pillow's AVIF writer drops a 1) counts as orientation 1.
    """
    from PIL import Image

    from panininet.pipeline.image_io import register_heif

    register_heif()
    with Image.open(path) as im:
        exif = im.getexif()
        if not len(exif):
            return None, None, None
        return exif.get(0x0112, 1), exif.get(0x0110), exif.get_ifd(0x8769).get(0x9003)
