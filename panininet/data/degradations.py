"""The paper's degradation model, eq. (10), as one function (its parameters are drawn by
:mod:`panininet.data.degradation_sampler`).

    X = [ (Y (*) k_sigma) down_r  +  N_delta ]_JPEG_q                                   (Panini-Net eq. 10)

Y is blurred by an isotropic Gaussian of standard deviation ``sigma`` (pixels), downsampled by a factor and
resized back to its own size ("with a symmetric upsampling to keep the size invariant"), white Gaussian noise of
standard deviation ``delta`` on the 0..255 scale is added, and the result is JPEG-compressed at quality ``q``.

What ``r`` means. The paper draws r from [10:200] and uses r = 16, 32, 64, 128 in Table 4, where a larger r is a
*more severe* degradation (the GAN-prior usage theta rises with r). So r is not a target size. Read as a plain
factor it would shrink a 512 input to 51..2.6 px (r = 10..200) and the Table-4 images to 32..4 px, which contradicts
the paper's own examples (its "mild" MFR example keeps eyelids and hair strands). We therefore read r in tenths:
the downsampling factor is ``r / r_base`` with ``r_base = 10``, so r in [10, 200] is a factor 1..20 (r = 10 is no
downsampling) and Table 4's r = 16, 32, 64, 128 are factors 1.6, 3.2, 6.4, 12.8 (320, 160, 80 and 40 px of a 512
input): a sweep from mild to severe that keeps a face recognisable. GFP-GAN gives plain factors (r in {1:8}); use
``r_base = 1`` for those (preset ``'gfpgan'``).

Which size. The whole chain runs at the network's *input* size (512 for MFR): the HQ face is first resized to that
size (area interpolation) and then degraded. Noise and JPEG must act at the size the network sees (a resize after
them would change the noise level and move the 8x8 JPEG grid), and running the blur there too makes sigma a
number of input pixels, as in GFP-GAN (512 px faces, sigma in {0.2:10}). The paper leaves sigma's range open
("randomly selected"); we use GFP-GAN's [0.2, 10] input pixels, the practice the paper says it follows.

The JPEG step is :func:`add_jpg_compression`, basicsr's ``add_jpg_compression`` with the quality rounded to an
int (OpenCV 5 rejects a float quality; :func:`panininet.platform.compat_basicsr.patch_jpeg_quality` installs it into
basicsr too).
Nothing else of ``basicsr.data.degradations`` is used: its noise and kernel samplers draw from the global NumPy
RNG, which the reproducible (validation/test) mode must not touch, and its 41x41 ``filter2D`` blur is several times
slower than OpenCV's separable Gaussian, so those two steps are done here.

Conventions: images are float32 HWC arrays in [0, 1] (BGR as read by OpenCV; every step is channel-symmetric, so
RGB works the same). Randomness (only the noise and the sampler are random) comes from an explicit
``numpy.random.Generator``; nothing here touches the global RNG state.
"""

import cv2
import numpy as np
import torch

from panininet._old_paths import old_names_getattr
from panininet.data.blur import gaussian_blur, motion_blur, motion_blur_kernel

_INTERP = {
    'nearest': cv2.INTER_NEAREST,
    'linear': cv2.INTER_LINEAR,
    'bilinear': cv2.INTER_LINEAR,
    'area': cv2.INTER_AREA,
    'cubic': cv2.INTER_CUBIC,
    'bicubic': cv2.INTER_CUBIC,
}

def add_jpg_compression(img, quality=90):
    """JPEG-compress an image, as ``basicsr.data.degradations.add_jpg_compression`` but OpenCV-5 safe.

    Args:
        img (ndarray): float32 image in [0, 1], shape (h, w, c) BGR or (h, w).
        quality (float | int): JPEG quality 0..100; rounded to the nearest int (OpenCV 5 needs an int).

    Returns:
        ndarray: float32 image in [0, 1], same shape as ``img``.
    """
    img = np.clip(img, 0, 1)
    quality = int(round(float(quality)))
    if not 0 <= quality <= 100:
        raise ValueError(f'JPEG quality must be in [0, 100], got {quality}.')
    # OpenCV would convert float input to 8 bit itself (saturate + round half to even) with a warning; same values
    img_u8 = np.clip(img * 255., 0, 255).round().astype(np.uint8)
    ok, encimg = cv2.imencode('.jpg', img_u8, [int(cv2.IMWRITE_JPEG_QUALITY), quality])
    if not ok:
        raise RuntimeError('cv2.imencode failed to JPEG-encode the image.')
    return np.float32(cv2.imdecode(encimg, cv2.IMREAD_UNCHANGED)) / 255.


def interpolation_flag(name):
    """OpenCV's interpolation flag of a name ('area', 'linear', 'cubic', ...); ValueError for an unknown one."""
    try:
        return _INTERP[name]
    except KeyError:
        raise ValueError(f'Unknown interpolation {name!r}; choose one of {sorted(_INTERP)}.') from None


def resize(img, size, interpolation='area'):
    """Resize an HWC (or HW) image to ``size``.

    Args:
        img (ndarray): Image, shape (h, w, c) or (h, w).
        size (int | tuple[int, int]): Output size; an int means a square (size, size); a tuple is (h, w).
        interpolation (str): 'area' (anti-aliased, for shrinking), 'linear', 'cubic' or 'nearest'. Default: 'area'.

    Returns:
        ndarray: The resized image, same dtype; returned unchanged (same object) when the size already matches.
    """
    h, w = (size, size) if isinstance(size, int) else tuple(size)
    if img.shape[:2] == (h, w):
        return img
    out = cv2.resize(img, (w, h), interpolation=interpolation_flag(interpolation))
    if img.ndim == 3 and out.ndim == 2:  # cv2 drops a trailing channel axis of size 1
        out = out[:, :, None]
    return out


def down_up(img, r, r_base=10.0, down='area', up='linear'):
    """Downsample by the factor ``r / r_base`` and resize back to the input size.

    Args:
        img (ndarray): Image (h, w, c) or (h, w).
        r (float): Downsampling rate in the paper's units (see the module docstring). Must be > 0.
        r_base (float): The r that means "no downsampling": factor = r / r_base. Default: 10 (paper).
            Use 1 for plain factors (GFP-GAN).
        down (str): Interpolation for the downsampling. Default: 'area' (anti-aliased: the low-resolution image is
            what a coarser sensor would record, not an aliased subsampling).
        up (str): Interpolation for the upsampling back to (h, w). Default: 'linear' (as GFP-GAN).

    Returns:
        ndarray: Same shape as ``img``. The small image has round(h / factor) x round(w / factor) pixels (>= 1).
        Factor 1 returns ``img`` unchanged.
    """
    if r <= 0 or r_base <= 0:
        raise ValueError(f'Downsampling rate r and r_base must be > 0, got r={r}, r_base={r_base}.')
    factor = float(r) / float(r_base)
    if factor == 1:
        return img
    h, w = img.shape[:2]
    small = resize(img, (max(1, round(h / factor)), max(1, round(w / factor))), down)
    return resize(small, (h, w), up)


def add_noise(img, delta, rng=None):
    """Add white Gaussian noise N_delta (independent per pixel and channel) and clip to [0, 1].

    Args:
        img (ndarray): float32 image in [0, 1].
        delta (float): Noise standard deviation on the 0..255 scale (the paper's delta); 0 adds nothing.
        rng (numpy.random.Generator | None): Source of the noise. None: a fresh, OS-seeded generator.
            The samples come from a local ``torch.Generator`` seeded from ``rng`` (2-3x faster than NumPy's
            normal sampler); the global torch and NumPy states are not used.

    Returns:
        ndarray: float32 image in [0, 1], same shape.
    """
    if delta < 0:
        raise ValueError(f'Noise delta must be >= 0, got {delta}.')
    if delta == 0:
        return img
    rng = np.random.default_rng() if rng is None else rng
    gen = torch.Generator().manual_seed(int(rng.integers(0, 2**63 - 1)))
    noise = torch.randn(img.shape, generator=gen, dtype=torch.float32).numpy()
    noise *= np.float32(delta / 255.)
    noise += img
    return np.clip(noise, 0, 1, out=noise)


def jpeg(img, q):
    """JPEG-compress at quality ``q`` through :func:`add_jpg_compression` (OpenCV, int quality).

    Args:
        img (ndarray): float32 image in [0, 1], (h, w, 3) or (h, w).
        q (int | float | None): Quality 0..100 (rounded to int); None turns JPEG off (image returned unchanged).

    Returns:
        ndarray: float32 image in [0, 1], same shape.
    """
    if q is None:
        return img
    return add_jpg_compression(img, q).reshape(img.shape)


def degrade(img, sigma, r, delta, q, r_base=10.0, rng=None, down='area', up='linear', kernel_size=None, motion=None,
            upsample_last=False):
    """Eq. (10): X = [(Y (*) k_sigma) down_r + N_delta]_JPEG_q, at the size of ``img``.

    Args:
        img (ndarray): float32 HQ image in [0, 1], shape (h, w, 3) (or (h, w)); already at the LQ size.
        sigma (float): Gaussian blur std in pixels of ``img``; 0 = no blur.
        r (float): Downsampling rate; factor = r / r_base (paper: r in [10, 200], r_base 10); r = r_base = no-op.
        delta (float): Noise std on the 0..255 scale; 0 = no noise.
        q (int | None): JPEG quality 0..100; None = no JPEG.
        r_base (float): See :func:`down_up`. Default: 10.
        rng (numpy.random.Generator | None): For the noise. None: a fresh, OS-seeded generator.
        down (str): Downsampling interpolation. Default: 'area'.
        up (str): Upsampling interpolation. Default: 'linear'.
        kernel_size (int | None): Largest blur kernel side (MMRB eq. 17: 41). Default: None (no limit).
        motion (tuple[float, float] | None): (length px, angle rad): a motion blur (:func:`motion_blur`) instead of
            the Gaussian (``sigma`` is then unused). Default: None.
        upsample_last (bool): Add the noise and JPEG at the downsampled size and resize back last (GFP-GAN's and
            Real-ESRGAN's order, MMRB eq. 17 read literally). Default: False (resize back first, eq. 10's
            "symmetric upsampling").

    Returns:
        ndarray: float32 LQ image in [0, 1], same shape as ``img``. With sigma=0, r=r_base, delta=0, q=None
        it equals ``img`` exactly.
    """
    img = np.asarray(img)
    if img.dtype != np.float32:
        raise TypeError(f'degrade expects a float32 image in [0, 1], got dtype {img.dtype}.')
    if motion is None:
        out = gaussian_blur(img, sigma, kernel_size)
    else:
        out = motion_blur(img, motion[0], motion[1], 41 if kernel_size is None else kernel_size)
    if upsample_last:
        return _noise_jpeg_then_up(out, r, r_base, delta, q, rng, down, up)
    out = down_up(out, r, r_base, down, up)
    out = add_noise(out, delta, rng)
    out = jpeg(out, q)
    return out


# ---------------------------------------------------------------------------------------------------------------------
# MMRB-Net's eq. (17): the sampler picks the motion blur (panininet.data.blur) with probability ``motion_prob`` per
# pair, else the Gaussian; noise and JPEG at the downsampled size, resized back last.
# ---------------------------------------------------------------------------------------------------------------------
def _noise_jpeg_then_up(img, r, r_base, delta, q, rng, down, up):
    """Downsample by r / r_base, add the noise and JPEG there, resize back to the input size last."""
    if r <= 0 or r_base <= 0:
        raise ValueError(f'Downsampling rate r and r_base must be > 0, got r={r}, r_base={r_base}.')
    h, w = img.shape[:2]
    factor = float(r) / float(r_base)
    small = img if factor == 1 else resize(img, (max(1, round(h / factor)), max(1, round(w / factor))), down)
    small = jpeg(add_noise(np.ascontiguousarray(small), delta, rng), q)
    return resize(small, (h, w), up)


# 0.1.0 had the sampler's names here (PRESETS, DegradationSampler, make_lq, ...): handed on for one release
__getattr__ = old_names_getattr(__name__)

__all__ = ['add_jpg_compression', 'add_noise', 'degrade', 'down_up', 'gaussian_blur', 'jpeg', 'motion_blur',
           'motion_blur_kernel', 'resize']
