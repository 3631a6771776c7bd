"""Gray in, gray out; the colour fix at paste-back; float photos (PaniniRestorer on a tiny random network)."""
import os.path as osp

import cv2
import numpy as np
import pytest

from panininet.pipeline.color import is_gray, mean_delta_e, to_gray_bgr
from panininet.pipeline.restorer import PaniniRestorer

pytest.importorskip('dlib')


def restorer(tiny_model, **kwargs):
    return PaniniRestorer(model_path=tiny_model, upscale=2, detector='dlib', dlib_upsample=0, device='cpu',
                          allow_download=False, **kwargs)


@pytest.fixture(scope='module')
def photo(shared_dir):
    img = cv2.imread(osp.join(shared_dir, 'testdata', 'whole_imgs', 'Blake_Lively.jpg'))[:, 350:]
    return cv2.resize(img, (175, 232), interpolation=cv2.INTER_AREA)  # one face of about 60 px


def spread(img):
    img = img.astype(np.int16)
    return int((img.max(axis=2) - img.min(axis=2)).max())


def test_gray_photo_comes_back_gray_in_its_own_layout(tiny_model, photo):
    rest = restorer(tiny_model)
    colour_crops, colour_faces, colour_out = rest.enhance(photo)
    assert len(colour_faces) == 1 and spread(colour_faces[0]) > 20  # the random network colours its output
    gray3 = to_gray_bgr(photo)
    crops, faces, out = rest.enhance(gray3)
    assert len(faces) == 1 and out.shape == (464, 350, 3)
    assert spread(faces[0]) == 0 and spread(out) == 0  # three equal channels, as the input
    gray1 = cv2.cvtColor(photo, cv2.COLOR_BGR2GRAY)
    _, faces1, out1 = rest.enhance(gray1)
    assert out1.shape == (464, 350) and spread(faces1[0]) == 0
    np.testing.assert_array_equal(out1, out[:, :, 0])  # the same gray picture whichever layout it came in


def test_colour_photo_with_a_gray_looking_face_keeps_its_colour(tiny_model, photo):
    img = photo.copy()
    img[20:140, 30:150] = to_gray_bgr(img[20:140, 30:150])  # the face region gray, the rest colour
    assert not is_gray(img)
    _, faces, out = restorer(tiny_model).enhance(img)
    assert len(faces) == 1 and spread(faces[0]) > 20 and spread(out) > 20


def test_aligned_gray_face_is_gray(tiny_model, shared_dir):
    face = cv2.imread(osp.join(shared_dir, 'testdata', 'cropped_faces', 'Julia_Roberts_crop.png'))
    _, faces, _ = restorer(tiny_model).enhance(face, has_aligned=True)
    assert spread(faces[0]) == 0


def test_color_fix_brings_the_face_colour_back_to_the_input(tiny_model, photo):
    crops, plain, _ = restorer(tiny_model).enhance(photo)
    deltas = {'none': mean_delta_e(crops[0], plain[0])}
    for method in ('wavelet', 'adain'):
        crops_m, faces_m, out_m = restorer(tiny_model, color_fix=method).enhance(photo)
        deltas[method] = mean_delta_e(crops_m[0], faces_m[0])
        assert out_m.shape == (464, 350, 3)
    assert deltas['wavelet'] < deltas['none'] / 3 and deltas['adain'] < deltas['none']
    with pytest.raises(ValueError, match='color_fix'):
        restorer(tiny_model, color_fix='sepia')


def test_float_tiff_photo_is_restored_in_float(tiny_model, photo, tmp_path):
    from panininet.pipeline.image_io import read_image, why_unreadable

    f = photo.astype(np.float32) / 255.0
    cv2.imwrite(str(tmp_path / 'f.tif'), f)
    img = read_image(str(tmp_path / 'f.tif'))
    assert img.dtype == np.float32
    _, faces, out = restorer(tiny_model).enhance(img)
    assert len(faces) == 1 and out.dtype == np.float32 and out.shape == (464, 350, 3)
    assert np.isfinite(out).all() and -0.1 < out.min() and out.max() < 1.1  # Lanczos may overshoot: not clipped
    face8 = np.clip(np.round(out * 255), 0, 255).astype(np.uint8)
    _, _, out8 = restorer(tiny_model).enhance(photo)
    assert np.abs(face8.astype(int) - out8).mean() < 1.0  # the same result as the 8-bit photo, on the float scale
    (tmp_path / 'x.exr').write_bytes(b'\x76\x2f\x31\x01' + bytes(60))
    assert read_image(str(tmp_path / 'x.exr')) is None
    assert 'OpenEXR' in why_unreadable(str(tmp_path / 'x.exr'))
