"""Gray detection, colour transfer and the ΔE measure (panininet/pipeline/color.py)."""
import cv2
import numpy as np
import pytest
from helpers import get_shared

from panininet.pipeline.color import color_fix, is_gray, mean_delta_e, to_gray_bgr


def _read(*parts):
    return cv2.imread(get_shared('testdata', *parts), cv2.IMREAD_UNCHANGED)


@pytest.mark.parametrize(('name', 'gray'), [('Julia_Roberts_crop.png', True), ('Adele_crop.png', False),
                                            ('Justin_Timberlake_crop.png', False)])
def test_gray_photos_are_told_from_colour_ones(name, gray):
    assert is_gray(_read('cropped_faces', name)) is gray


def test_gray_survives_jpeg_and_depth_and_layout():
    gray3 = _read('cropped_faces', 'Julia_Roberts_crop.png')
    ok, buf = cv2.imencode('.jpg', gray3, [cv2.IMWRITE_JPEG_QUALITY, 60])
    assert ok and is_gray(cv2.imdecode(buf, cv2.IMREAD_COLOR))  # chroma rounding stays within the tolerance
    assert is_gray(gray3[:, :, 0]) and is_gray(gray3[:, :, :1])
    assert is_gray(gray3.astype(np.uint16) * 257) and is_gray(gray3.astype(np.float32) / 255)
    rgba = np.concatenate([gray3, np.full_like(gray3[:, :, :1], 7)], axis=2)
    assert is_gray(rgba)  # alpha is not a colour channel


def test_a_colour_photo_with_a_gray_looking_face_is_colour():
    photo = _read('cropped_faces', 'Adele_crop.png').copy()
    photo[128:384, 128:384] = to_gray_bgr(photo[128:384, 128:384])  # a quarter of the picture gray
    assert not is_gray(photo)
    tinted = to_gray_bgr(_read('cropped_faces', 'Julia_Roberts_crop.png')).astype(np.int16)
    tinted[:, :, 2] += 12  # a sepia-like cast of 12 levels is colour
    assert not is_gray(np.clip(tinted, 0, 255).astype(np.uint8))


@pytest.mark.parametrize('method', ['wavelet', 'adain'])
def test_color_fix_removes_a_colour_cast_and_keeps_detail(method):
    ref = _read('cropped_faces', 'Adele_crop.png')
    restored = cv2.resize(ref, (1024, 1024), interpolation=cv2.INTER_CUBIC).astype(np.int16)
    restored[:, :, 0] += 40  # a blue cast, as a GAN prior may give
    restored[:, :, 2] -= 25
    restored = np.clip(restored, 0, 255).astype(np.uint8)
    before = mean_delta_e(ref, restored)
    fixed = color_fix(restored, ref, method)
    after = mean_delta_e(ref, fixed)
    assert fixed.shape == restored.shape and fixed.dtype == np.uint8
    assert before > 10 and after < before / 4
    # the detail (high frequencies) of the restored face is kept: Laplacian energy within 15 %
    lap = [cv2.Laplacian(cv2.cvtColor(x, cv2.COLOR_BGR2GRAY), cv2.CV_32F).std() for x in (restored, fixed)]
    assert abs(lap[1] - lap[0]) / lap[0] < 0.15


def test_color_fix_none_and_bad_method():
    face = np.zeros((8, 8, 3), np.uint8)
    assert color_fix(face, face, 'none') is face
    with pytest.raises(ValueError, match='use one of'):
        color_fix(face, face, 'hue')


def test_delta_e_is_zero_on_identical_faces_and_grows_with_a_cast():
    ref = _read('cropped_faces', 'Adele_crop.png')
    assert mean_delta_e(ref, ref) == pytest.approx(0.0, abs=1e-4)
    casts = [mean_delta_e(ref, np.clip(ref.astype(np.int16) + [0, 0, d], 0, 255).astype(np.uint8))
             for d in (5, 15, 30)]
    assert casts[0] < casts[1] < casts[2]


# ------------------------------------------------------------------------- monochrome: gray scans and tinted prints
def _gray_scan(gray3, quality=75, seed=0):
    """A gray print as a scanner and JPEG give it: 1.5 levels of sensor noise per channel, the red channel half a
    pixel off (colour fringes at edges), JPEG 4:2:0."""
    rng = np.random.default_rng(seed)
    scan = gray3.astype(np.float32) + rng.normal(0, 1.5, gray3.shape)
    shift = np.float32([[1, 0, 0.5], [0, 1, 0]])
    scan[:, :, 2] = cv2.warpAffine(scan[:, :, 2], shift, gray3.shape[1::-1], borderMode=cv2.BORDER_REFLECT)
    scan = np.clip(np.round(scan), 0, 255).astype(np.uint8)
    ok, buf = cv2.imencode('.jpg', scan, [cv2.IMWRITE_JPEG_QUALITY, quality])
    return cv2.imdecode(buf, cv2.IMREAD_COLOR)


def _tinted(bgr, kind):
    g = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY).astype(np.float32)[:, :, None] / 255
    if kind == 'sepia':
        out = np.concatenate([g * 0.78, g * 0.95 + 0.02, g * 1.07 + 0.05], axis=2) * 255
    else:  # cyanotype: Prussian blue to paper white
        dark, light = np.float32([90, 45, 20]), np.float32([250, 235, 215])
        out = dark + (light - dark) * g
    ok, buf = cv2.imencode('.jpg', np.clip(np.round(out), 0, 255).astype(np.uint8), [cv2.IMWRITE_JPEG_QUALITY, 75])
    return cv2.imdecode(buf, cv2.IMREAD_COLOR)


@pytest.mark.parametrize('quality', [50, 75, 95])
def test_gray_scan_with_jpeg_chroma_noise_is_gray(quality):
    from panininet.pipeline.color import monochrome_tone

    scan = _gray_scan(_read('cropped_faces', 'Julia_Roberts_crop.png'), quality)
    spread = scan.max(axis=2).astype(int) - scan.min(axis=2)
    assert np.quantile(spread, 0.99) > 8  # what the channel-spread rule took for colour
    tone = monochrome_tone(scan)
    assert tone is not None and tone.neutral and is_gray(scan)


@pytest.mark.parametrize('kind', ['sepia', 'cyanotype'])
def test_tinted_prints_are_monochrome_with_their_own_tint(kind):
    from panininet.pipeline.color import monochrome_tone

    print_ = _tinted(_read('cropped_faces', 'Adele_crop.png'), kind)
    tone = monochrome_tone(print_)
    assert tone is not None and not tone.neutral and not is_gray(print_)
    a, b = np.median(tone.ab, axis=0)
    assert (b > 5 and a > 0) if kind == 'sepia' else b < -5  # yellow-brown / blue
    # a colourful restored face takes that tint at its own luminance
    face = _read('cropped_faces', 'Justin_Timberlake_crop.png')
    toned = tone.apply(face)
    def lightness(img):
        return cv2.cvtColor(img.astype(np.float32) / 255, cv2.COLOR_BGR2LAB)[:, :, 0]

    assert np.abs(lightness(toned) - lightness(face)).mean() < 1  # the restored luminance (CIE L*) is kept
    again = monochrome_tone(toned)
    assert again is not None and np.abs(np.median(again.ab, axis=0) - (a, b)).max() < 3


@pytest.mark.parametrize('name', ['Adele_crop.png', 'Justin_Timberlake_crop.png'])
def test_colour_photos_are_not_monochrome(name):
    from panininet.pipeline.color import monochrome_tone

    photo = _read('cropped_faces', name)
    assert monochrome_tone(photo) is None
    ok, buf = cv2.imencode('.jpg', photo, [cv2.IMWRITE_JPEG_QUALITY, 50])
    assert monochrome_tone(cv2.imdecode(buf, cv2.IMREAD_COLOR)) is None
