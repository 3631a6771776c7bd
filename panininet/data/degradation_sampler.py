"""The degradation parameters: the published presets, the sampler that draws them, and the LQ of a pair.

* :data:`PRESETS`: Panini-Net's MFR ranges (eq. 10), GFP-GAN's, and MMRB-Net's eq. (17) (Gaussian and motion blur,
  kernel 41); :data:`TABLE4_RATES` / :data:`TABLE4_FIXED`: the paper's Table 4 setting.
* ``'realworld'``: Real-ESRGAN's second-order model, :class:`~panininet.data.realworld_degradation.
  SecondOrderDegradation` (same interface); :func:`sampler_from_opt` builds either from dataset options.
* :class:`DegradationSampler` draws one parameter set per pair from an explicit ``numpy.random.Generator`` and
  applies it with :func:`panininet.data.degradations.degrade`; :func:`make_lq` is the LQ of an HQ face at the
  network's input size; :func:`seeded_rng` the RNG of item i in the reproducible mode.

The degradation functions themselves are :mod:`panininet.data.degradations` (eq. 10) and :mod:`panininet.data.blur`.
"""
import math

import numpy as np

from panininet.data.blur import odd_kernel_size
from panininet.data.degradations import degrade, interpolation_flag, resize

#: Parameter ranges (inclusive) of the published degradation settings. ``q_range=None`` turns JPEG off.
PRESETS = {
    # Panini-Net MFR (paper, "Experiments"): r in [10:200] (factor r/10), delta in [0:25], q in [5:50];
    # sigma "randomly selected": GFP-GAN's [0.2, 10].
    'panini_mfr': dict(sigma_range=(0.2, 10.0), r_range=(10.0, 200.0), delta_range=(0.0, 25.0), q_range=(5, 50),
                       r_base=10.0),
    # GFP-GAN (CVPR 2021, sec. 4.1): sigma {0.2:10}, r {1:8}, delta {0:15}, q {60:100}.
    'gfpgan': dict(sigma_range=(0.2, 10.0), r_range=(1.0, 8.0), delta_range=(0.0, 15.0), q_range=(60, 100),
                   r_base=1.0),
    # MMRB-Net eq. (17) (Hu et al., Sec. IV-A): kernel 41, s in [0.4:8] (plain factor), delta in [0:25],
    # q in [5:50], Gaussian and motion blur. Not given: sigma (GFP-GAN's [0.2, 10], the practice it follows), how the
    # two blurs are mixed (one of them per pair, p = 0.5 each, as GFP-GAN's kernel_prob) and the motion length
    # (any straight line that fits the 41 kernel: [1, 41] px). See the motion-blur block at the end.
    # Eq. 17 is read literally, as its cited practice (GFP-GAN, Real-ESRGAN) does it: noise and JPEG at the
    # downsampled size, then the resize back to 512 (upsample_last).
    'mmrb': dict(sigma_range=(0.2, 10.0), r_range=(0.4, 8.0), delta_range=(0.0, 25.0), q_range=(5, 50), r_base=1.0,
                 kernel_size=41, motion_prob=0.5, motion_length_range=(1.0, 41.0), upsample_last=True),
}

#: Every preset name a dataset's ``degradation_preset`` accepts.
PRESET_NAMES = (*PRESETS, 'realworld')

#: The paper's Table 4 rates (fixed sigma, delta, q; only r changes).
TABLE4_RATES = (16, 32, 64, 128)
#: The fixed sigma (input px), delta (0..255) and q we use for Table 4; the paper does not give its values.
#: sigma = 1 keeps r the dominant difference: a 2 px blur alone already smooths like a ~3x downsampling, so with
#: sigma = 2 the r = 16 and r = 32 inputs differ little (mean |LQ - HQ| 4.7 vs 5.4 grey levels; 3.0 vs 4.3 at 1).
TABLE4_FIXED = dict(sigma=1.0, delta=10.0, q=40)


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
        preset (str | None): Start from :data:`PRESETS` ('panini_mfr' (default), 'gfpgan' or 'mmrb'); None: no
            preset (then every range must be given).
        sigma_range (float | list[float] | None): [low, high] blur std in pixels, or one number for a fixed value.
        r_range (float | list[float] | None): [low, high] downsampling rate (paper units, factor r / r_base).
        delta_range (float | list[float] | None): [low, high] noise std on the 0..255 scale.
        q_range (int | list[int] | None): [low, high] JPEG quality, integers, both ends included.
            Overrides the preset; pass ``jpeg=False`` to turn JPEG off.
        r_base (float | None): r that means factor 1. Default: the preset's (10 for 'panini_mfr', 1 for 'gfpgan').
        jpeg (bool): False turns the JPEG step off (q is then None). Default: True.
        down (str): Downsampling interpolation. Default: 'area'.
        up (str): Upsampling interpolation. Default: 'linear'.
        kernel_size (int | None): Largest blur kernel side. Default: the preset's (41 for 'mmrb', else no limit).
        motion_prob (float | None): Probability of a motion blur instead of the Gaussian. Default: the preset's
            (0.5 for 'mmrb', else 0).
        motion_length_range (list[float] | None): [low, high] motion length in px. Default: the preset's
            ([1, 41] for 'mmrb').
        upsample_last (bool | None): Noise and JPEG at the downsampled size, resize back last (see :func:`degrade`).
            Default: the preset's (True for 'mmrb', else False).

    Every draw is uniform (the paper says "randomly chosen from" the ranges); q is a uniform integer.
    """

    #: The chain runs at the LQ size (the realworld preset may run at a multiple of it).
    degradation_scale = 1
    #: No GT sharpening (see :meth:`prepare_gt`).
    gt_usm = False

    def __init__(self, preset='panini_mfr', sigma_range=None, r_range=None, delta_range=None, q_range=None,
                 r_base=None, jpeg=True, down='area', up='linear', kernel_size=None, motion_prob=None,
                 motion_length_range=None, upsample_last=None):
        base = {}
        if preset is not None:
            if preset not in PRESETS:
                hint = " ('realworld' is built by sampler_from_opt)" if preset == 'realworld' else ''
                raise ValueError(f'Unknown degradation preset {preset!r}; choose one of {sorted(PRESETS)} or None'
                                 f'{hint}.')
            base = dict(PRESETS[preset])
        given = dict(sigma_range=sigma_range, r_range=r_range, delta_range=delta_range, q_range=q_range,
                     r_base=r_base, kernel_size=kernel_size, motion_prob=motion_prob,
                     motion_length_range=motion_length_range, upsample_last=upsample_last)
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
        interpolation_flag(down), interpolation_flag(up)  # fail early on a bad name
        if self.sigma_range[0] < 0 or self.delta_range[0] < 0 or self.r_range[0] <= 0 or self.r_base <= 0:
            raise ValueError('Degradation ranges out of bounds: need sigma >= 0, delta >= 0, r > 0, r_base > 0; got '
                             f'{self.sigma_range}, {self.delta_range}, {self.r_range}, r_base {self.r_base}.')
        if self.q_range is not None and not (0 <= self.q_range[0] and self.q_range[1] <= 100):
            raise ValueError(f'q_range must lie in [0, 100], got {list(self.q_range)}.')
        self.kernel_size, self.motion_prob, self.motion_length_range = _motion_settings(base)
        self.upsample_last = bool(base.get('upsample_last', False))

    @classmethod
    def from_opt(cls, opt):
        """Build from a dataset options dict (keys: ``degradation_preset``, ``blur_sigma``, ``downsample_range``,
        ``noise_range``, ``jpeg_range``, ``r_base``, ``use_jpeg``, ``down_interpolation``, ``up_interpolation``,
        ``blur_kernel_size``, ``motion_prob``, ``motion_length_range``, ``upsample_last``)."""
        return cls(preset=opt.get('degradation_preset', 'panini_mfr'), sigma_range=opt.get('blur_sigma'),
                   r_range=opt.get('downsample_range'), delta_range=opt.get('noise_range'),
                   q_range=opt.get('jpeg_range'), r_base=opt.get('r_base'), jpeg=opt.get('use_jpeg', True),
                   down=opt.get('down_interpolation', 'area'), up=opt.get('up_interpolation', 'linear'),
                   kernel_size=opt.get('blur_kernel_size'), motion_prob=opt.get('motion_prob'),
                   motion_length_range=opt.get('motion_length_range'), upsample_last=opt.get('upsample_last'))

    def sample(self, rng):
        """Draw one parameter set.

        Args:
            rng (numpy.random.Generator): Source of randomness.

        Returns:
            dict: ``sigma``, ``r``, ``delta`` (floats), ``q`` (int, or None when JPEG is off), ``r_base`` and
            ``scale`` (= r / r_base, the downsampling factor actually applied); with motion blur enabled also
            ``blur`` ('gaussian' or 'motion'; ``sigma`` is unused for 'motion'), ``length`` (px) and ``angle`` (rad).
        """
        sigma = float(rng.uniform(*self.sigma_range))
        r = float(rng.uniform(*self.r_range))
        delta = float(rng.uniform(*self.delta_range))
        q = None if self.q_range is None else int(rng.integers(int(self.q_range[0]), int(self.q_range[1]) + 1))
        params = dict(sigma=sigma, r=r, delta=delta, q=q, r_base=self.r_base, scale=r / self.r_base)
        params.update(_sample_motion(self.motion_prob, self.motion_length_range, rng))
        return params

    def prepare_gt(self, img):
        """The GT the chain starts from: ``img`` itself (the realworld preset may sharpen it)."""
        return img

    def reseed_noise(self, params, rng):
        """``params`` for a second image that shares the degradation (UDRL): unchanged, since the noise
        realisation here comes from the ``rng`` passed to :meth:`apply`, never from ``params``."""
        return params

    def apply(self, img, params, rng=None):
        """:func:`degrade` ``img`` with ``params`` (as returned by :meth:`sample`); ``rng`` draws the noise."""
        motion = (params['length'], params['angle']) if params.get('blur') == 'motion' else None
        return degrade(img, params['sigma'], params['r'], params['delta'], params['q'], r_base=self.r_base, rng=rng,
                       down=self.down, up=self.up, kernel_size=self.kernel_size, motion=motion,
                       upsample_last=self.upsample_last)

    def __repr__(self):
        return (f'{type(self).__name__}(sigma={self.sigma_range}, r={self.r_range} (factor r/{self.r_base:g}), '
                f'delta={self.delta_range}, q={self.q_range}, down={self.down!r}, up={self.up!r}'
                + (f', kernel_size={self.kernel_size}' if self.kernel_size else '')
                + (f', motion_prob={self.motion_prob}, motion_length={self.motion_length_range}'
                   if self.motion_prob else '') + (', upsample_last' if self.upsample_last else '') + ')')


def sampler_from_opt(opt):
    """The degradation of a dataset's options: :class:`DegradationSampler` or, for ``degradation_preset:
    realworld``, :class:`~panininet.data.realworld_degradation.SecondOrderDegradation`.

    Args:
        opt (dict): Dataset options (see :meth:`DegradationSampler.from_opt` and
            :meth:`SecondOrderDegradation.from_opt`).

    Returns:
        DegradationSampler | SecondOrderDegradation
    """
    if opt.get('degradation_preset') == 'realworld':
        from panininet.data.realworld_degradation import SecondOrderDegradation
        return SecondOrderDegradation.from_opt(opt)
    return DegradationSampler.from_opt(opt)


def degradation_source(img_hq, size, sampler):
    """The image the chain starts from: ``img_hq`` area-resized to ``size * sampler.degradation_scale``, float32.

    Args:
        img_hq (ndarray): HQ image (H, W, 3), uint8 (0..255) or float32 in [0, 1].
        size (int): LQ side.
        sampler (DegradationSampler | SecondOrderDegradation): Supplies ``degradation_scale``.

    Returns:
        ndarray: contiguous float32 (size * scale, size * scale, 3) in [0, 1].
    """
    img = resize(img_hq, size * int(sampler.degradation_scale), 'area')
    img = img.astype(np.float32) * np.float32(1 / 255.) if img.dtype == np.uint8 else img
    return np.ascontiguousarray(img, dtype=np.float32)


def make_lq(img_hq, size, params, sampler, rng=None):
    """HQ face -> LQ input: area-resize to ``size`` (times the sampler's ``degradation_scale``), then the
    sampler's chain (eq. (10), or the realworld preset's, which ends at ``size``) with ``params``.

    Args:
        img_hq (ndarray): HQ image (H, W, 3), uint8 (0..255) or float32 in [0, 1].
        size (int): LQ side length (the network input size, e.g. 512).
        params (dict): From the sampler's ``sample``.
        sampler (DegradationSampler | SecondOrderDegradation): The chain.
        rng (numpy.random.Generator | None): For the noise (eq. 10).

    Returns:
        ndarray: float32 (size, size, 3) in [0, 1].
    """
    return sampler.apply(degradation_source(img_hq, size, sampler), params, rng)


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


def _motion_settings(base):
    """(kernel_size, motion_prob, motion_length_range) of a :class:`DegradationSampler` from its merged options."""
    kernel_size = None if base.get('kernel_size') is None else odd_kernel_size(base['kernel_size'])
    motion_prob = float(base.get('motion_prob') or 0)
    if not 0 <= motion_prob <= 1:
        raise ValueError(f'motion_prob must lie in [0, 1], got {motion_prob}.')
    length_range = None
    if motion_prob > 0:
        if base.get('motion_length_range') is None:
            raise ValueError('motion_prob > 0 needs motion_length_range [low, high] (px).')
        length_range = _as_range(base['motion_length_range'], 'motion_length_range')
        if length_range[0] < 0:
            raise ValueError(f'motion_length_range must be >= 0, got {list(length_range)}.')
    return kernel_size, motion_prob, length_range


def _sample_motion(motion_prob, length_range, rng):
    """The blur kind, motion length and angle of one draw; nothing is drawn when motion blur is off, so the streams
    of the other presets are unchanged."""
    if motion_prob <= 0:
        return {}
    motion = bool(rng.random() < motion_prob)
    length = float(rng.uniform(*length_range))
    angle = float(rng.uniform(0, math.pi))
    return dict(blur='motion' if motion else 'gaussian', length=length, angle=angle)
