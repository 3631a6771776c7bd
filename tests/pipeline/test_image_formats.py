"""Phone and camera files: HEIC/HEIF and AVIF in and out, the ICC profile and EXIF carried over (orientation reset),
``--strip_metadata``, and colours unchanged outside the faces in a colour-managed comparison."""
import io
import os.path as osp

import cv2
import numpy as np
import pytest
from image_metadata import PHONE_EXIF, display_p3_icc, exif_of, phone_exif
from PIL import Image, ImageCms

from panininet.pipeline.image_io import (
    ImageMetadata,
    exif_upright,
    read_image,
    read_metadata,
    register_heif,
    why_unreadable,
    writable_extensions,
    write_image,
)

HEIF = pytest.mark.skipif(not register_heif(), reason='pillow-heif is not installed (the [heif] extra)')


def _pillow_save(bgr, path, **kwargs):
    fmt = {'.heic': 'HEIF', '.avif': 'AVIF', '.jpg': 'JPEG', '.png': 'PNG'}[osp.splitext(path)[1]]
    Image.fromarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)).save(path, format=fmt, **kwargs)


@pytest.mark.parametrize('ext', [pytest.param('.heic', marks=HEIF), '.avif'])
def test_phone_formats_read_and_written_in_their_own_format(tmp_path, ext):
    rng = np.random.default_rng(0)
    img = cv2.GaussianBlur(rng.integers(0, 255, (40, 56, 3), dtype=np.uint8), (0, 0), 3)  # smooth: little loss
    path = str(tmp_path / f'phone{ext}')
    _pillow_save(img, path, quality=95)
    back = read_image(path)
    assert back.shape == img.shape and back.dtype == np.uint8
    assert np.abs(back.astype(int) - img).mean() < 3  # the same picture (lossy codec), BGR order
    assert ext in writable_extensions()
    out = str(tmp_path / f'out{ext}')
    write_image(back, out)
    assert Image.open(out).format == {'.heic': 'HEIF', '.avif': 'AVIF'}[ext]
    assert np.abs(read_image(out).astype(int) - img).mean() < 4
    rgba = np.dstack([back, np.full(back.shape[:2], 90, np.uint8)])
    write_image(rgba, str(tmp_path / f'alpha{ext}'))
    assert read_image(str(tmp_path / f'alpha{ext}')).shape == (40, 56, 4)


@HEIF
def test_heic_without_pillow_heif_names_the_extra(tmp_path, monkeypatch):
    import panininet.pipeline.image_io as image_io

    path = str(tmp_path / 'x.heic')
    _pillow_save(np.zeros((8, 8, 3), np.uint8), path)
    monkeypatch.setattr(image_io, 'register_heif', lambda: False)
    assert 'panininet[heif]' in why_unreadable(path)


def test_exif_orientation_reset_in_place(tmp_path):
    raw = phone_exif(6)
    upright = exif_upright(raw)
    assert not upright.startswith(b'Exif')
    changed = [i for i, (a, b) in enumerate(zip(raw[6:], upright)) if a != b]
    assert len(upright) == len(raw) - 6 and len(changed) == 1  # one byte: the orientation value, nothing moved
    assert exif_upright(b'Exif\x00\x00garbage') is None


@pytest.mark.parametrize('ext', ['.png', '.jpg', '.webp', '.tif', '.avif', pytest.param('.heic', marks=HEIF)])
def test_writer_embeds_icc_and_exif(tmp_path, ext):
    icc = display_p3_icc()
    meta = ImageMetadata(icc, exif_upright(phone_exif(6)))
    path = str(tmp_path / f'x{ext}')
    write_image(np.full((16, 24, 3), 120, np.uint8), path, metadata=meta)
    got = read_metadata(path)
    assert got.icc_profile == icc
    assert exif_of(path) == (1, PHONE_EXIF['model'], PHONE_EXIF['taken'])


def test_sixteen_bit_png_keeps_depth_and_metadata(tmp_path):
    img = (np.arange(16 * 24 * 3).reshape(16, 24, 3) * 97 % 65536).astype(np.uint16)
    path = str(tmp_path / 'deep.png')
    write_image(img, path, metadata=ImageMetadata(display_p3_icc(), exif_upright(phone_exif())))
    np.testing.assert_array_equal(read_image(path), img)
    assert read_metadata(path).icc_profile == display_p3_icc() and exif_of(path)[1] == PHONE_EXIF['model']


def _managed_srgb(path):
    """The photo as a colour-managed viewer shows it: its embedded profile (sRGB without one) -> sRGB, upright."""
    from panininet.pipeline.image_io import apply_exif_orientation

    register_heif()
    with Image.open(path) as im:
        icc, orientation = im.info.get('icc_profile'), im.getexif().get(0x0112, 1)
        rgb = im.convert('RGB')
    if icc:
        rgb = ImageCms.profileToProfile(rgb, ImageCms.ImageCmsProfile(io.BytesIO(icc)), ImageCms.createProfile('sRGB'))
    return apply_exif_orientation(np.asarray(rgb).astype(int), orientation)


@pytest.fixture(scope='module')
def phone_photos(shared_dir, tmp_path_factory):
    """The right half of Blake_Lively.jpg as a phone stores it: Display P3 profile, EXIF with orientation 6
    (pixels stored turned a quarter), in JPEG, PNG and HEIC."""
    folder = tmp_path_factory.mktemp('phone')
    img = cv2.imread(osp.join(shared_dir, 'testdata', 'whole_imgs', 'Blake_Lively.jpg'))[:, 350:]
    img = cv2.resize(img, (175, 232), interpolation=cv2.INTER_AREA)
    hsv = cv2.cvtColor(img, cv2.COLOR_BGR2HSV).astype(np.float32)
    hsv[:, :, 1] = np.minimum(hsv[:, :, 1] * 1.8, 255)  # saturated, as phone photos are: P3 shows more
    img = cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2BGR)
    stored = np.ascontiguousarray(np.rot90(img, 1))  # orientation 6: the viewer turns it 90 degrees clockwise
    exts = ['.jpg', '.png'] + (['.heic'] if register_heif() else [])
    for ext in exts:
        _pillow_save(stored, str(folder / f'p3_{ext[1:]}{ext}'), icc_profile=display_p3_icc(), exif=phone_exif(6),
                     **({} if ext == '.png' else {'quality': 95}))
    return folder, img, exts


@pytest.mark.parametrize('strip', [False, True])
def test_cli_keeps_profile_and_exif_and_colours_outside_faces(cli, tiny_model, phone_photos, tmp_path, strip):
    pytest.importorskip('dlib')
    from helpers import FAST

    folder, upright_img, exts = phone_photos
    out = tmp_path / 'out'
    args = ['-i', str(folder), '-o', str(out), '--model_path', tiny_model, '-s', '1', *FAST]
    assert cli.main(args + (['--strip_metadata'] if strip else [])) == 0
    for ext in exts:
        src, dst = str(folder / f'p3_{ext[1:]}{ext}'), str(out / 'restored_imgs' / f'p3_{ext[1:]}{ext}')
        assert osp.isfile(dst), sorted((out / 'restored_imgs').iterdir())  # same format as the input
        restored = read_image(dst)
        assert restored.shape == upright_img.shape  # stored upright
        meta = read_metadata(dst)
        if strip:
            assert not meta and exif_of(dst) == (None, None, None)
            continue
        assert meta.icc_profile == display_p3_icc()
        assert exif_of(dst) == (1, PHONE_EXIF['model'], PHONE_EXIF['taken'])
        shown_in, shown_out = _managed_srgb(src), _managed_srgb(dst)
        assert shown_in.shape == shown_out.shape
        raw_in = cv2.cvtColor(read_image(src), cv2.COLOR_BGR2RGB).astype(int)
        raw_out = cv2.cvtColor(restored, cv2.COLOR_BGR2RGB).astype(int)
        outside = np.abs(raw_out - raw_in).max(axis=2) <= 6
        assert outside.mean() > 0.3  # a third of the photo is outside the face's paste-back square
        codec = np.abs(raw_out - raw_in)[outside].mean()  # re-encoding noise (0 for PNG)
        kept = np.abs(shown_out - shown_in)[outside].mean()  # what a colour-managed viewer shows
        dropped = np.abs(raw_out - shown_in)[outside].mean()  # the same viewer, the profile dropped: sRGB
        assert kept < codec + 1 and dropped > 2 * kept + 1, (ext, codec, kept, dropped)
