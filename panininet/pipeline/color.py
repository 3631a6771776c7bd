"""Colour of faces and photos: gray detection, colour transfer at paste-back, and a colour-difference measure.

* :func:`is_gray` tells a grayscale photo stored with three (nearly) equal channels (most scans of prints and old
  JPEGs) from a colour one, so that gray photos come back gray.
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

# A photo is gray when its per-pixel channel spread (max - min over B, G, R, in 8-bit levels) is at most
# GRAY_MEAN_SPREAD on average and at most GRAY_Q99_SPREAD for 99 % of the pixels. JPEG's chroma rounding leaves 1-2
# levels on a gray picture; the colour test photos have mean spreads of 30-66 levels.
GRAY_MEAN_SPREAD = 2.0
GRAY_Q99_SPREAD = 8.0


def _levels8(img):
    """float32 copy of ``img`` in 8-bit levels (uint16 / 65535-scaled and [0, 1] floats mapped to 0..255)."""
    if img.dtype == np.uint8:
        return img.astype(np.float32)
    if img.dtype == np.uint16:
        return img.astype(np.float32) / 257.0
    return img.astype(np.float32) * 255.0


def is_gray(img, mean_spread=GRAY_MEAN_SPREAD, q99_spread=GRAY_Q99_SPREAD):
    """Whether ``img`` is a grayscale picture (one channel, or B, G and R equal within a small tolerance).

    Args:
        img (np.ndarray): (h, w), (h, w, 1), (h, w, 3) or (h, w, 4) BGR[A]; uint8, uint16 or float in [0, 1].
            Alpha is ignored.
        mean_spread (float): Largest mean channel spread, in 8-bit levels. Default: GRAY_MEAN_SPREAD.
        q99_spread (float): Largest 99th-percentile channel spread, in 8-bit levels. Default: GRAY_Q99_SPREAD.

    Returns:
        bool: True for a gray picture.
    """
    if img.ndim == 2 or img.shape[2] == 1:
        return True
    bgr = _levels8(img[:, :, :3])
    spread = bgr.max(axis=2) - bgr.min(axis=2)
    if spread.size == 0:
        return False
    return bool(spread.mean() <= mean_spread and np.quantile(spread, 0.99) <= q99_spread)


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
