"""The paper's degradation model, eq. (10), as one function, and a sampler for its parameters.

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
int (OpenCV 5 rejects a float quality; :func:`panininet.compat.patch_jpeg_quality` installs it into basicsr too).
Nothing else of ``basicsr.data.degradations`` is used: its noise and kernel samplers draw from the global NumPy
RNG, which the reproducible (validation/test) mode must not touch, and its 41x41 ``filter2D`` blur is several times
slower than OpenCV's separable Gaussian, so those two steps are done here.

Conventions: images are float32 HWC arrays in [0, 1] (BGR as read by OpenCV; every step is channel-symmetric, so
RGB works the same). Randomness (only the noise and the sampler are random) comes from an explicit
``numpy.random.Generator``; nothing here touches the global RNG state.
"""
import math

import cv2
import numpy as np
import torch

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


#: Parameter ranges (inclusive) of the published degradation settings. ``q_range=None`` turns JPEG off.
PRESETS = {
    # Panini-Net MFR (paper, "Experiments"): r in [10:200] (factor r/10), delta in [0:25], q in [5:50];
    # sigma "randomly selected": GFP-GAN's [0.2, 10].
    'panini_mfr': dict(sigma_range=(0.2, 10.0), r_range=(10.0, 200.0), delta_range=(0.0, 25.0), q_range=(5, 50),
                       r_base=10.0),
    # GFP-GAN (CVPR 2021, sec. 4.1): sigma {0.2:10}, r {1:8}, delta {0:15}, q {60:100}.
    'gfpgan': dict(sigma_range=(0.2, 10.0), r_range=(1.0, 8.0), delta_range=(0.0, 15.0), q_range=(60, 100),
                   r_base=1.0),
}

#: The paper's Table 4 rates (fixed sigma, delta, q; only r changes).
TABLE4_RATES = (16, 32, 64, 128)
#: The fixed sigma (input px), delta (0..255) and q we use for Table 4; the paper does not give its values.
#: sigma = 1 keeps r the dominant difference: a 2 px blur alone already smooths like a ~3x downsampling, so with
#: sigma = 2 the r = 16 and r = 32 inputs differ little (mean |LQ - HQ| 4.7 vs 5.4 grey levels; 3.0 vs 4.3 at 1).
TABLE4_FIXED = dict(sigma=1.0, delta=10.0, q=40)


def _interp(name):
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
    out = cv2.resize(img, (w, h), interpolation=_interp(interpolation))
    if img.ndim == 3 and out.ndim == 2:  # cv2 drops a trailing channel axis of size 1
        out = out[:, :, None]
    return out


def gaussian_blur(img, sigma):
    """Convolve with an isotropic Gaussian kernel k_sigma (separable, radius ceil(3 sigma), reflected borders).

    Args:
        img (ndarray): Image (h, w, c) or (h, w), float32 or uint8.
        sigma (float): Standard deviation in pixels; 0 leaves the image unchanged.

    Returns:
        ndarray: Blurred image, same shape and dtype.
    """
    if sigma < 0:
        raise ValueError(f'Blur sigma must be >= 0, got {sigma}.')
    if sigma == 0:
        return img
    k = 2 * math.ceil(3 * sigma) + 1  # +-3 sigma holds 99.7 % of the mass (OpenCV's default for float is 4 sigma)
    out = cv2.GaussianBlur(img, (k, k), sigmaX=float(sigma), sigmaY=float(sigma), borderType=cv2.BORDER_REFLECT_101)
    return out.reshape(img.shape)


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


def degrade(img, sigma, r, delta, q, r_base=10.0, rng=None, down='area', up='linear'):
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

    Returns:
        ndarray: float32 LQ image in [0, 1], same shape as ``img``. With sigma=0, r=r_base, delta=0, q=None
        it equals ``img`` exactly.
    """
    img = np.asarray(img)
    if img.dtype != np.float32:
        raise TypeError(f'degrade expects a float32 image in [0, 1], got dtype {img.dtype}.')
    out = gaussian_blur(img, sigma)
    out = down_up(out, r, r_base, down, up)
    out = add_noise(out, delta, rng)
    out = jpeg(out, q)
    return out


def _as_range(value, name):
    """(lo, hi) from a scalar (fixed value) or a 2-sequence; None passes through."""
    if value is None:
        return None
    if np.isscalar(value):
        return (float(value), float(value))
    lo, hi = value
    if lo > hi:
        raise ValueError(f'{name} must be [low, high] with low <= high, got {list(value)}.')
    return (lo, hi)


class DegradationSampler:
    """Draws (sigma, r, delta, q) uniformly from ranges and applies :func:`degrade`.

    Args:
        preset (str | None): Start from :data:`PRESETS` ('panini_mfr' (default) or 'gfpgan'); None: no preset
            (then every range must be given).
        sigma_range (float | list[float] | None): [low, high] blur std in pixels, or one number for a fixed value.
        r_range (float | list[float] | None): [low, high] downsampling rate (paper units, factor r / r_base).
        delta_range (float | list[float] | None): [low, high] noise std on the 0..255 scale.
        q_range (int | list[int] | None): [low, high] JPEG quality, integers, both ends included.
            Overrides the preset; pass ``jpeg=False`` to turn JPEG off.
        r_base (float | None): r that means factor 1. Default: the preset's (10 for 'panini_mfr', 1 for 'gfpgan').
        jpeg (bool): False turns the JPEG step off (q is then None). Default: True.
        down (str): Downsampling interpolation. Default: 'area'.
        up (str): Upsampling interpolation. Default: 'linear'.

    Every draw is uniform (the paper says "randomly chosen from" the ranges); q is a uniform integer.
    """

    def __init__(self, preset='panini_mfr', sigma_range=None, r_range=None, delta_range=None, q_range=None,
                 r_base=None, jpeg=True, down='area', up='linear'):
        base = {}
        if preset is not None:
            if preset not in PRESETS:
                raise ValueError(f'Unknown degradation preset {preset!r}; choose one of {sorted(PRESETS)} or None.')
            base = dict(PRESETS[preset])
        given = dict(sigma_range=sigma_range, r_range=r_range, delta_range=delta_range, q_range=q_range,
                     r_base=r_base)
        base.update({k: v for k, v in given.items() if v is not None})
        missing = [k for k in ('sigma_range', 'r_range', 'delta_range', 'r_base') if base.get(k) is None]
        if missing:
            raise ValueError(f'DegradationSampler needs {missing} (no preset gives them).')
        self.sigma_range = _as_range(base['sigma_range'], 'sigma_range')
        self.r_range = _as_range(base['r_range'], 'r_range')
        self.delta_range = _as_range(base['delta_range'], 'delta_range')
        self.q_range = _as_range(base.get('q_range'), 'q_range') if jpeg else None
        self.r_base = float(base['r_base'])
        self.down, self.up = down, up
        _interp(down), _interp(up)  # fail early on a bad name
        if self.sigma_range[0] < 0 or self.delta_range[0] < 0 or self.r_range[0] <= 0 or self.r_base <= 0:
            raise ValueError('Degradation ranges out of bounds: need sigma >= 0, delta >= 0, r > 0, r_base > 0; got '
                             f'{self.sigma_range}, {self.delta_range}, {self.r_range}, r_base {self.r_base}.')
        if self.q_range is not None and not (0 <= self.q_range[0] and self.q_range[1] <= 100):
            raise ValueError(f'q_range must lie in [0, 100], got {list(self.q_range)}.')

    @classmethod
    def from_opt(cls, opt):
        """Build from a dataset options dict (keys: ``degradation_preset``, ``blur_sigma``, ``downsample_range``,
        ``noise_range``, ``jpeg_range``, ``r_base``, ``use_jpeg``, ``down_interpolation``, ``up_interpolation``)."""
        return cls(preset=opt.get('degradation_preset', 'panini_mfr'), sigma_range=opt.get('blur_sigma'),
                   r_range=opt.get('downsample_range'), delta_range=opt.get('noise_range'),
                   q_range=opt.get('jpeg_range'), r_base=opt.get('r_base'), jpeg=opt.get('use_jpeg', True),
                   down=opt.get('down_interpolation', 'area'), up=opt.get('up_interpolation', 'linear'))

    def sample(self, rng):
        """Draw one parameter set.

        Args:
            rng (numpy.random.Generator): Source of randomness.

        Returns:
            dict: ``sigma``, ``r``, ``delta`` (floats), ``q`` (int, or None when JPEG is off), ``r_base`` and
            ``scale`` (= r / r_base, the downsampling factor actually applied).
        """
        sigma = float(rng.uniform(*self.sigma_range))
        r = float(rng.uniform(*self.r_range))
        delta = float(rng.uniform(*self.delta_range))
        q = None if self.q_range is None else int(rng.integers(int(self.q_range[0]), int(self.q_range[1]) + 1))
        return dict(sigma=sigma, r=r, delta=delta, q=q, r_base=self.r_base, scale=r / self.r_base)

    def apply(self, img, params, rng=None):
        """:func:`degrade` ``img`` with ``params`` (as returned by :meth:`sample`); ``rng`` draws the noise."""
        return degrade(img, params['sigma'], params['r'], params['delta'], params['q'], r_base=self.r_base, rng=rng,
                       down=self.down, up=self.up)

    def __repr__(self):
        return (f'{type(self).__name__}(sigma={self.sigma_range}, r={self.r_range} (factor r/{self.r_base:g}), '
                f'delta={self.delta_range}, q={self.q_range}, down={self.down!r}, up={self.up!r})')


def make_lq(img_hq, size, params, sampler, rng=None):
    """HQ face -> LQ input: area-resize to ``size``, then eq. (10) with ``params``.

    Args:
        img_hq (ndarray): HQ image (H, W, 3), uint8 (0..255) or float32 in [0, 1].
        size (int): LQ side length (the network input size, e.g. 512).
        params (dict): From :meth:`DegradationSampler.sample`.
        sampler (DegradationSampler): Supplies r_base and the interpolations.
        rng (numpy.random.Generator | None): For the noise.

    Returns:
        ndarray: float32 (size, size, 3) in [0, 1].
    """
    img = resize(img_hq, size, 'area')
    img = img.astype(np.float32) * np.float32(1 / 255.) if img.dtype == np.uint8 else img
    return sampler.apply(np.ascontiguousarray(img, dtype=np.float32), params, rng)


def seeded_rng(seed, index):
    """A generator whose whole stream is a function of (seed, index) only (never the global RNG state).

    Args:
        seed (int): Non-negative base seed.
        index (int): Non-negative item index.

    Returns:
        numpy.random.Generator
    """
    if seed < 0 or index < 0:
        raise ValueError(f'seed and index must be >= 0, got seed={seed}, index={index}.')
    return np.random.default_rng([int(index), int(seed), 0x9A4141])


__all__ = ['PRESETS', 'TABLE4_FIXED', 'TABLE4_RATES', 'DegradationSampler', 'add_noise', 'degrade', 'down_up',
           'gaussian_blur', 'jpeg', 'make_lq', 'resize', 'seeded_rng']
