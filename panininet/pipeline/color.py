"""Colour of faces and photos: gray detection, colour transfer at paste-back, and a colour-difference measure.

* :func:`monochrome_tone` tells a monochrome photo from a colour one: gray (one channel, three nearly equal ones, a
  gray scan with JPEG chroma noise) or tinted (sepia, cyanotype: one hue whose strength follows the brightness), so
  that a monochrome photo comes back monochrome, in its own tint (:meth:`MonochromeTone.apply`); :func:`is_gray`
  says whether it is a neutral gray one. The rule and its calibration: ``scripts/calibrate_monochrome.py``.
* :func:`color_fix` gives a restored face the low-frequency colour of its input crop before it is pasted back
  (``--color_fix``): ``wavelet`` keeps the restored face's detail above a blur scale and takes the input's colour
  below it; ``adain`` matches each channel's mean and standard deviation.
* :func:`mean_delta_e` is the mean CIE76 colour difference (ΔE*ab) between the low-frequency colour of two faces,
  which the benchmark reports with and without the fix.

All functions take OpenCV's BGR channel order and work on uint8, uint16 or float images without changing the
caller's array.
"""
import cv2
import numpy as np

COLOR_FIX_METHODS = ('none', 'wavelet', 'adain')

# Monochrome rule (:func:`monochrome_tone`), calibrated by scripts/calibrate_monochrome.py: the photo, shrunk to at
# most MONO_SIDE px (area averaging, which cancels JPEG's chroma noise and a scanner's colour fringes), in CIELAB;
# its tint is the median (a*, b*) of each 5-unit band of L*, interpolated; the photo is monochrome when the
# distance of every pixel's (a*, b*) from the tint of its L* is at most MONO_Q99 for 99 % of the pixels and
# MONO_MEAN on average (colour photos have other hues at the same brightness: skin, sky, clothes), and neutral gray
# when the tint's chroma is at most MONO_NEUTRAL_CHROMA.
MONO_SIDE = 64
MONO_Q99 = 12.0
MONO_MEAN = 3.0
MONO_NEUTRAL_CHROMA = 2.5
_L_BAND = 5.0
_MIN_BAND_PIXELS = 20


def _levels8(img):
    """float32 copy of ``img`` in 8-bit levels (uint16 / 65535-scaled and [0, 1] floats mapped to 0..255)."""
    if img.dtype == np.uint8:
        return img.astype(np.float32)
    if img.dtype == np.uint16:
        return img.astype(np.float32) / 257.0
    return img.astype(np.float32) * 255.0


class MonochromeTone:
    """The tint of a monochrome photo: (a*, b*) as a function of L* (CIELAB), or neutral gray.

    Args:
        lightness (np.ndarray): (n,) increasing L* band centres (empty for neutral gray).
        ab (np.ndarray): (n, 2) the photo's median (a*, b*) in each band.
        neutral (bool): Gray: faces get three equal channels. Default: False.
    """

    def __init__(self, lightness, ab, neutral=False):
        self.lightness = np.asarray(lightness, np.float32)
        self.ab = np.asarray(ab, np.float32).reshape(-1, 2)
        self.neutral = bool(neutral)

    def __repr__(self):
        if self.neutral:
            return 'MonochromeTone(neutral gray)'
        return f'MonochromeTone(tint chroma {self.chroma:.1f})'

    @property
    def chroma(self):
        """Median chroma of the tint (0 for gray)."""
        return float(np.median(np.hypot(self.ab[:, 0], self.ab[:, 1]))) if len(self.ab) else 0.0

    def apply(self, face):
        """A restored face in the photo's tone: its own luminance, the photo's tint at that luminance.

        Args:
            face (np.ndarray): (h, w, 3) uint8 BGR.

        Returns:
            np.ndarray: (h, w, 3) uint8 BGR (three equal channels when neutral).
        """
        if self.neutral or len(self.lightness) == 0:
            return to_gray_bgr(face)
        lab = cv2.cvtColor(face.astype(np.float32) / 255.0, cv2.COLOR_BGR2LAB)
        light = lab[:, :, 0]
        lab[:, :, 1] = np.interp(light, self.lightness, self.ab[:, 0])
        lab[:, :, 2] = np.interp(light, self.lightness, self.ab[:, 1])
        bgr = cv2.cvtColor(lab, cv2.COLOR_LAB2BGR)
        return np.clip(np.round(bgr * 255.0), 0, 255).astype(np.uint8)


def monochrome_stats(img, side=MONO_SIDE):
    """What :func:`monochrome_tone` decides on: the tint and the pixels' distance from it.

    Args:
        img (np.ndarray): (h, w, 3|4) BGR[A]; uint8, uint16 or float in [0, 1]. Alpha is ignored.
        side (int): Longest side of the analysed copy. Default: MONO_SIDE.

    Returns:
        tuple[MonochromeTone, float, float]: The tint (as if monochrome), the 99th percentile and the mean of the
        distances (CIELAB a*b* units).
    """
    bgr = _levels8(img[:, :, :3])
    h, w = bgr.shape[:2]
    scale = side / max(h, w)
    if scale < 1:
        bgr = cv2.resize(bgr, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    lab = cv2.cvtColor(np.clip(bgr, 0, 255) / 255.0, cv2.COLOR_BGR2LAB).reshape(-1, 3)
    keep = (lab[:, 0] > 4) & (lab[:, 0] < 97)  # chroma means little in near-black and near-white
    if keep.sum() >= 100:
        lab = lab[keep]
    light, ab = lab[:, 0], lab[:, 1:]
    bands = np.clip((light / _L_BAND).astype(int), 0, int(100 / _L_BAND) - 1)
    centres, medians = [], []
    for band in np.unique(bands):
        inside = bands == band
        if inside.sum() >= min(_MIN_BAND_PIXELS, len(light)):
            centres.append(light[inside].mean())
            medians.append(np.median(ab[inside], axis=0))
    if not centres:  # a handful of pixels: one band
        centres, medians = [light.mean()], [np.median(ab, axis=0)]
    centres, medians = np.array(centres, np.float32), np.array(medians, np.float32).reshape(-1, 2)
    tint_a = np.interp(light, centres, medians[:, 0])
    tint_b = np.interp(light, centres, medians[:, 1])
    dist = np.hypot(ab[:, 0] - tint_a, ab[:, 1] - tint_b)
    tone = MonochromeTone(centres, medians)
    tone.neutral = tone.chroma <= MONO_NEUTRAL_CHROMA
    return tone, float(np.quantile(dist, 0.99)), float(dist.mean())


def monochrome_tone(img, q99=MONO_Q99, mean=MONO_MEAN):
    """The tone of a monochrome photo, or None for a colour one.

    Args:
        img (np.ndarray): (h, w), (h, w, 1), (h, w, 3) or (h, w, 4) BGR[A]; uint8, uint16 or float in [0, 1].
        q99 (float): Largest 99th-percentile distance from the tint. Default: MONO_Q99.
        mean (float): Largest mean distance from the tint. Default: MONO_MEAN.

    Returns:
        MonochromeTone | None: Neutral for gray photos (one channel, gray scans), a tint for sepia, cyanotype and
        other single-hue photos; None for colour photos.
    """
    if img.ndim == 2 or img.shape[2] == 1:
        return MonochromeTone([], [], neutral=True)
    if img.shape[0] == 0 or img.shape[1] == 0:
        return None
    tone, dist_q99, dist_mean = monochrome_stats(img)
    return tone if dist_q99 <= q99 and dist_mean <= mean else None


def is_gray(img):
    """Whether ``img`` is a neutral gray picture (one channel, or three channels that :func:`monochrome_tone` finds
    monochrome without a tint, JPEG chroma noise and scanner fringes included).

    Args:
        img (np.ndarray): (h, w), (h, w, 1), (h, w, 3) or (h, w, 4) BGR[A]; uint8, uint16 or float in [0, 1].
            Alpha is ignored.

    Returns:
        bool: True for a gray picture (False for tinted monochrome and colour).
    """
    tone = monochrome_tone(img)
    return tone is not None and tone.neutral


def to_gray_bgr(img):
    """The luma of a BGR image replicated into three equal channels (same dtype and shape as ``img``)."""
    gray = cv2.cvtColor(np.ascontiguousarray(img[:, :, :3]), cv2.COLOR_BGR2GRAY)
    out = np.repeat(gray[:, :, None], 3, axis=2)
    if img.shape[2] == 4:
        out = np.concatenate([out, img[:, :, 3:]], axis=2)
    return out


def _blur_sigma(size):
    """Blur scale of the colour transfer for a face of ``size`` px: 1/32 of it (16 px for a 512 crop)."""
    return max(size / 32.0, 1.0)


def _low_pass(img, sigma):
    return cv2.GaussianBlur(img, (0, 0), sigmaX=sigma, sigmaY=sigma, borderType=cv2.BORDER_REFLECT)


def color_fix(restored, reference, method='wavelet'):
    """Give a restored face the colour of its input crop.

    Args:
        restored (np.ndarray): (H, W, 3) uint8 BGR restored face.
        reference (np.ndarray): (h, w, 3) uint8 BGR input crop of the same face (any size: resized to H x W).
        method (str): 'wavelet' (the restored face's detail above the blur scale of :func:`_blur_sigma` plus the
            reference's colour below it), 'adain' (per-channel mean and standard deviation of the reference), or
            'none' (``restored`` unchanged). Default: 'wavelet'.

    Returns:
        np.ndarray: (H, W, 3) uint8 BGR.

    Raises:
        ValueError: Unknown method.
    """
    if method not in COLOR_FIX_METHODS:
        raise ValueError(f'color fix {method!r}: use one of {", ".join(COLOR_FIX_METHODS)}')
    if method == 'none':
        return restored
    h, w = restored.shape[:2]
    ref = reference if reference.shape[:2] == (h, w) else cv2.resize(reference, (w, h), interpolation=cv2.INTER_LINEAR)
    out = restored.astype(np.float32)
    ref = ref.astype(np.float32)
    if method == 'wavelet':
        sigma = _blur_sigma(min(h, w))
        out = out - _low_pass(out, sigma) + _low_pass(ref, sigma)
    else:
        mean_o, std_o = out.mean(axis=(0, 1)), out.std(axis=(0, 1)) + 1e-6
        mean_r, std_r = ref.mean(axis=(0, 1)), ref.std(axis=(0, 1))
        out = (out - mean_o) / std_o * std_r + mean_r
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def mean_delta_e(face_a, face_b, inner=0.8):
    """Mean CIE76 ΔE*ab between the low-frequency colour of two faces, over their central square.

    Args:
        face_a (np.ndarray): (h, w, 3) uint8 BGR, e.g. the input crop.
        face_b (np.ndarray): (H, W, 3) uint8 BGR, e.g. the restored face (resized to h x w).
        inner (float): Side of the central square that is compared, as a fraction of the face. Default: 0.8.

    Returns:
        float: Mean ΔE*ab (1 is about the smallest difference a person sees; > 10 is an obvious colour cast).
    """
    h, w = face_a.shape[:2]
    b = face_b if face_b.shape[:2] == (h, w) else cv2.resize(face_b, (w, h), interpolation=cv2.INTER_AREA)
    sigma = _blur_sigma(min(h, w))
    lab_a = cv2.cvtColor(_low_pass(face_a.astype(np.float32) / 255.0, sigma), cv2.COLOR_BGR2LAB)
    lab_b = cv2.cvtColor(_low_pass(b.astype(np.float32) / 255.0, sigma), cv2.COLOR_BGR2LAB)
    m_y, m_x = int(round(h * (1 - inner) / 2)), int(round(w * (1 - inner) / 2))
    diff = (lab_a - lab_b)[m_y:h - m_y, m_x:w - m_x]
    return float(np.sqrt((diff ** 2).sum(axis=2)).mean())
