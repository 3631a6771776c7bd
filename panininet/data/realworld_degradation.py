"""Real-ESRGAN's second-order degradation (Wang et al., ICCVW 2021, Sec. 3 and Fig. 2), preset ``'realworld'``.

    x = [ ( [ ((y (*) k1) resize1 + n1)_JPEG1 ] (*) k2 ) resize2 + n2 ]  then, in random order,
        (resize back (*) sinc)  and  JPEG2                                                           (paper eq. 2-3)

Each stage is one of basicsr's own functions, driven by parameters drawn here:

* blur kernels: ``bivariate_Gaussian``, ``bivariate_generalized_Gaussian``, ``bivariate_plateau`` (the kernels of
  basicsr's ``random_mixed_kernels``) and ``circular_lowpass_kernel`` (sinc), padded to 21 x 21 as
  ``RealESRGANDataset`` does;
* noise: ``add_gaussian_noise_pt`` (both backends) and ``add_poisson_noise`` (CPU) / ``add_poisson_noise_pt``
  (torch), colour or gray;
* JPEG: ``add_jpg_compression`` (OpenCV, CPU; the int-quality fix of :mod:`panininet.platform.compat_basicsr`)
  and ``DiffJPEG`` (torch, as ``RealESRNetModel``);
* the convolution: ``cv2.filter2D`` (CPU; the numpy twin of basicsr's ``filter2D``, reflected borders, same taps)
  and ``basicsr.utils.img_process_util.filter2D`` (torch); GT sharpening: ``usm_sharp`` / ``USMSharp``.

The numbers (:data:`REALWORLD`) are Real-ESRGAN's ``options/train_realesrnet_x4plus.yml``; the order and the draws
follow its ``RealESRGANDataset.__getitem__`` (kernels) and ``RealESRNetModel.feed_data`` (everything else).
Where basicsr draws from the global RNGs (Python ``random``, NumPy, torch), we draw the same quantities, in the same
order and from the same distributions, from an explicit ``numpy.random.Generator`` and record them (:meth:`sample`);
the noise realisation comes from a recorded seed, installed into the global NumPy / torch state only for the call
and restored after it. So the same seed gives the same pair, and every drawn value is in the parameter dict.

Sizes. ``degradation_scale`` is Real-ESRGAN's ``scale``: the chain runs on an image of that many times the LQ size
and ends at the LQ size (second resize to ``size / scale * s2``, then back to ``size / scale``). Real-ESRGAN's x4
model uses 4; the face presets run at the network's input size (1, as ``panini_mfr``, ``gfpgan`` and ``mmrb``).

Two backends, one parameter set: :meth:`SecondOrderDegradation.apply` (NumPy/OpenCV, BGR HWC, in the dataset
workers: the default) and :func:`degrade_batch` (torch, RGB (b, 3, h, w), any device: the model's ``feed_data``
on the GPU). They agree up to their resize and JPEG implementations and the noise realisation (tests).
"""
import contextlib
import math

import cv2
import numpy as np
import torch
from torch.nn import functional as F

#: Real-ESRGAN ``options/train_realesrnet_x4plus.yml`` (xinntao/Real-ESRGAN) and its ``RealESRGANDataset``.
REALWORLD = dict(
    # first degradation: blur (dataset options blur_kernel_size, kernel_list, kernel_prob, sinc_prob, blur_sigma,
    # betag_range, betap_range; kernel sizes 7..21, odd, as RealESRGANDataset's kernel_range)
    kernel_list=('iso', 'aniso', 'generalized_iso', 'generalized_aniso', 'plateau_iso', 'plateau_aniso'),
    kernel_prob=(0.45, 0.25, 0.12, 0.03, 0.12, 0.03),
    sinc_prob=0.1, blur_sigma=(0.2, 3.0), betag_range=(0.5, 4.0), betap_range=(1.0, 2.0),
    # resize (up, down, keep), noise, JPEG (model options resize_prob ... jpeg_range)
    resize_prob=(0.2, 0.7, 0.1), resize_range=(0.15, 1.5), gaussian_noise_prob=0.5, noise_range=(1.0, 30.0),
    poisson_scale_range=(0.05, 3.0), gray_noise_prob=0.4, jpeg_range=(30.0, 95.0),
    # second degradation
    second_blur_prob=0.8, kernel_list2=('iso', 'aniso', 'generalized_iso', 'generalized_aniso', 'plateau_iso',
                                        'plateau_aniso'),
    kernel_prob2=(0.45, 0.25, 0.12, 0.03, 0.12, 0.03), sinc_prob2=0.1, blur_sigma2=(0.2, 1.5),
    betag_range2=(0.5, 4.0), betap_range2=(1.0, 2.0),
    resize_prob2=(0.3, 0.4, 0.3), resize_range2=(0.3, 1.2), gaussian_noise_prob2=0.5, noise_range2=(1.0, 25.0),
    poisson_scale_range2=(0.05, 2.5), gray_noise_prob2=0.4, jpeg_range2=(30.0, 95.0),
    # the final sinc filter (dataset option final_sinc_prob)
    final_sinc_prob=0.8,
    # ours: LQ/chain size ratio (Real-ESRGAN x4: 4) and GT sharpening (Real-ESRNet x4plus: gt_usm True)
    degradation_scale=1, gt_usm=False,
)

KERNEL_SIZES = tuple(range(7, 22, 2))  # RealESRGANDataset.kernel_range: 7..21
PAD_TO = 21
RESIZE_KINDS = ('up', 'down', 'keep')
RESIZE_MODES = ('area', 'bilinear', 'bicubic')  # RealESRNetModel: random.choice(['area', 'bilinear', 'bicubic'])
FINAL_ORDERS = ('resize_sinc_jpeg', 'jpeg_resize_sinc')  # RealESRNetModel: np.random.uniform() < 0.5 -> the first
_CV2_MODES = {'area': cv2.INTER_AREA, 'bilinear': cv2.INTER_LINEAR, 'bicubic': cv2.INTER_CUBIC}


def _basicsr():
    from basicsr.data import degradations  # after panininet.platform.compat_basicsr (functional_tensor alias)
    return degradations


# ---------------------------------------------------------------------------------------------------------------------
# Kernels: drawn here, built by basicsr
# ---------------------------------------------------------------------------------------------------------------------
def sample_kernel(rng, kernel_list, kernel_prob, sigma_range, betag_range, betap_range, sinc_prob, prefix):
    """One blur kernel's parameters, drawn as ``RealESRGANDataset`` (size, sinc or not) and ``random_mixed_kernels``.

    Args:
        rng (numpy.random.Generator): Source of randomness.
        kernel_list, kernel_prob (sequence): Kernel types and their probabilities.
        sigma_range, betag_range, betap_range (sequence[float]): [low, high].
        sinc_prob (float): Probability of a sinc kernel instead.
        prefix (str): Key prefix ('k1_' or 'k2_').

    Returns:
        dict: ``{prefix}type`` (a kernel type or 'sinc'), ``size`` (7..21), ``sigma_x``, ``sigma_y``, ``theta``,
        ``beta``, ``omega_c`` (unused ones 0).
    """
    size = int(rng.choice(KERNEL_SIZES))
    p = dict(type='sinc', size=size, sigma_x=0.0, sigma_y=0.0, theta=0.0, beta=0.0, omega_c=0.0)
    if rng.random() < sinc_prob:
        p['omega_c'] = float(rng.uniform(math.pi / 3 if size < 13 else math.pi / 5, math.pi))
    else:
        prob = np.asarray(kernel_prob, np.float64)
        kind = str(kernel_list[int(rng.choice(len(kernel_list), p=prob / prob.sum()))])
        p['type'] = kind
        p['sigma_x'] = float(rng.uniform(*sigma_range))
        if kind.endswith('_aniso') or kind == 'aniso':
            p['sigma_y'] = float(rng.uniform(*sigma_range))
            p['theta'] = float(rng.uniform(-math.pi, math.pi))
        else:
            p['sigma_y'] = p['sigma_x']
        if kind.startswith(('generalized', 'plateau')):
            beta_range = betag_range if kind.startswith('generalized') else betap_range
            p['beta'] = float(rng.uniform(beta_range[0], 1) if rng.random() < 0.5 else rng.uniform(1, beta_range[1]))
    return {prefix + k: v for k, v in p.items()}


def build_kernel(params, prefix, pad_to=PAD_TO):
    """The kernel of :func:`sample_kernel`'s parameters by basicsr's builders, normalised, padded to ``pad_to``.

    Args:
        params (dict): Holds the ``prefix``-ed keys.
        prefix (str): 'k1_', 'k2_' or 'sinc_'.
        pad_to (int): Output side (odd), or 0 for the kernel's own size (the CPU path: the zero taps of the padding
            change nothing but the cost). Default: 21 (a batch of kernels has one size).

    Returns:
        ndarray: (pad_to, pad_to) (or (size, size)) float32, sums to 1.
    """
    bd = _basicsr()
    kind, size = params[prefix + 'type'], int(params[prefix + 'size'])
    sx, sy, theta, beta = (float(params[prefix + k]) for k in ('sigma_x', 'sigma_y', 'theta', 'beta'))
    iso = not kind.endswith('aniso')
    if kind == 'sinc':
        kernel = bd.circular_lowpass_kernel(float(params[prefix + 'omega_c']), size, pad_to=0)
    elif kind in ('iso', 'aniso'):
        kernel = bd.bivariate_Gaussian(size, sx, sy, theta, isotropic=iso)
    elif kind.startswith('generalized'):
        kernel = bd.bivariate_generalized_Gaussian(size, sx, sy, theta, beta, isotropic=iso)
    elif kind.startswith('plateau'):
        kernel = bd.bivariate_plateau(size, sx, sy, theta, beta, isotropic=iso)
    else:
        raise ValueError(f'Unknown blur kernel type {kind!r}.')
    kernel = kernel / np.sum(kernel)  # as basicsr's random_bivariate_* (the builders leave plateau unnormalised)
    pad = max(0, (pad_to - size) // 2)
    return np.pad(kernel, ((pad, pad), (pad, pad))).astype(np.float32)


def final_sinc_kernel(params, pad_to=PAD_TO):
    """The final sinc kernel (``circular_lowpass_kernel``), or the 21 x 21 pulse when it is off."""
    if not params['sinc_applied']:
        pulse = np.zeros((pad_to, pad_to), np.float32)
        pulse[pad_to // 2, pad_to // 2] = 1
        return pulse
    return build_kernel(params, 'sinc_', pad_to)


# ---------------------------------------------------------------------------------------------------------------------
# The other draws
# ---------------------------------------------------------------------------------------------------------------------
def _sample_resize(rng, prob, scale_range, key):
    """RealESRNetModel's up / down / keep resize: kind, factor and interpolation."""
    prob = np.asarray(prob, np.float64)
    kind = RESIZE_KINDS[int(rng.choice(3, p=prob / prob.sum()))]
    factor = {'up': lambda: rng.uniform(1, scale_range[1]), 'down': lambda: rng.uniform(scale_range[0], 1),
              'keep': lambda: 1.0}[kind]()
    return {f'{key}_kind': kind, f'{key}_scale': float(factor), f'{key}_mode': str(rng.choice(RESIZE_MODES))}


def _sample_noise(rng, gaussian_prob, sigma_range, poisson_range, gray_prob, key):
    """Gaussian (sigma on 0..255) with ``gaussian_prob``, else Poisson (scale); gray with ``gray_prob``; a seed."""
    gaussian = bool(rng.random() < gaussian_prob)
    level = float(rng.uniform(*(sigma_range if gaussian else poisson_range)))
    gray = bool(rng.random() < gray_prob)
    return {f'{key}_kind': 'gaussian' if gaussian else 'poisson', f'{key}_level': level, f'{key}_gray': gray,
            f'{key}_seed': int(rng.integers(0, 2**32))}


@contextlib.contextmanager
def seeded_global_rngs(seed):
    """Run basicsr's noise functions (they draw from the global NumPy / torch RNGs) from ``seed``, restoring both
    global states afterwards (CPU torch; every CUDA device too once CUDA is initialised: ``torch.manual_seed``
    seeds them all)."""
    state = np.random.get_state()
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_initialized() else []
    try:
        with torch.random.fork_rng(devices=devices):
            np.random.seed(int(seed) % 2**32)
            torch.manual_seed(int(seed))
            yield
    finally:
        np.random.set_state(state)


class SecondOrderDegradation:
    """Preset ``'realworld'``: draws Real-ESRGAN's second-order parameters and applies them (CPU).

    Args:
        degradation_scale (int): Chain size / LQ size, Real-ESRGAN's ``scale`` (see the module docstring).
            Default: :data:`REALWORLD` (1).
        gt_usm (bool): USM-sharpen the GT (basicsr's ``usm_sharp``) and degrade the sharpened one, as Real-ESRNet's
            ``gt_usm``. Default: False.
        **ranges: Any key of :data:`REALWORLD` to override (same names as Real-ESRGAN's options).

    The interface is :class:`~panininet.data.degradation_sampler.DegradationSampler`'s: :meth:`sample` then
    :meth:`apply`, so every dataset that takes a preset takes this one.
    """

    preset = 'realworld'

    def __init__(self, degradation_scale=None, gt_usm=None, **ranges):
        unknown = sorted(set(ranges) - set(REALWORLD))
        if unknown:
            raise ValueError(f'Unknown realworld degradation option(s) {unknown}; known: {sorted(REALWORLD)}.')
        cfg = dict(REALWORLD)
        cfg.update({k: v for k, v in ranges.items() if v is not None})
        cfg.update({k: v for k, v in dict(degradation_scale=degradation_scale, gt_usm=gt_usm).items()
                    if v is not None})
        for key in ('kernel_list', 'kernel_list2'):
            bad = sorted(set(cfg[key]) - {'iso', 'aniso', 'generalized_iso', 'generalized_aniso', 'plateau_iso',
                                          'plateau_aniso'})
            if bad or len(cfg[key]) != len(cfg[key.replace('list', 'prob')]):
                raise ValueError(f'{key} {list(cfg[key])}: unknown kernel types {bad} or not one probability each.')
        for key, value in cfg.items():
            if key.endswith('_prob') and not isinstance(value, (list, tuple)) and not 0 <= float(value) <= 1:
                raise ValueError(f'{key} must lie in [0, 1], got {value}.')
        if int(cfg['degradation_scale']) < 1 or int(cfg['degradation_scale']) != cfg['degradation_scale']:
            raise ValueError(f'degradation_scale must be an integer >= 1, got {cfg["degradation_scale"]}.')
        self.cfg = cfg
        self.degradation_scale = int(cfg['degradation_scale'])
        self.gt_usm = bool(cfg['gt_usm'])

    @classmethod
    def from_opt(cls, opt):
        """Build from dataset options: ``degradation_scale``, ``gt_usm`` and ``realworld`` (a dict of
        :data:`REALWORLD` overrides)."""
        return cls(degradation_scale=opt.get('degradation_scale'), gt_usm=opt.get('gt_usm'),
                   **dict(opt.get('realworld') or {}))

    def sample(self, rng):
        """Draw one parameter set, in Real-ESRGAN's order.

        Args:
            rng (numpy.random.Generator): Source of randomness.

        Returns:
            dict: flat, collatable: ``k1_*`` (first kernel), ``resize1_*``, ``noise1_*``, ``jpeg1_q``,
            ``blur2_applied``, ``k2_*``, ``resize2_*``, ``noise2_*``, ``final_order``, ``resize3_mode``,
            ``jpeg2_q``, ``sinc_applied``, ``sinc_*``, ``preset``, ``degradation_scale``.
        """
        c = self.cfg
        p = dict(preset=self.preset, degradation_scale=self.degradation_scale)
        # RealESRGANDataset: kernel1, kernel2, final sinc
        p.update(sample_kernel(rng, c['kernel_list'], c['kernel_prob'], c['blur_sigma'], c['betag_range'],
                               c['betap_range'], c['sinc_prob'], 'k1_'))
        p.update(sample_kernel(rng, c['kernel_list2'], c['kernel_prob2'], c['blur_sigma2'], c['betag_range2'],
                               c['betap_range2'], c['sinc_prob2'], 'k2_'))
        p['sinc_applied'] = bool(rng.random() < c['final_sinc_prob'])
        size = int(rng.choice(KERNEL_SIZES)) if p['sinc_applied'] else PAD_TO
        omega = float(rng.uniform(math.pi / 3, math.pi)) if p['sinc_applied'] else 0.0
        p.update(sinc_type='sinc', sinc_size=size, sinc_sigma_x=0.0, sinc_sigma_y=0.0, sinc_theta=0.0, sinc_beta=0.0,
                 sinc_omega_c=omega)
        # RealESRNetModel.feed_data: first order
        p.update(_sample_resize(rng, c['resize_prob'], c['resize_range'], 'resize1'))
        p.update(_sample_noise(rng, c['gaussian_noise_prob'], c['noise_range'], c['poisson_scale_range'],
                               c['gray_noise_prob'], 'noise1'))
        p['jpeg1_q'] = float(rng.uniform(*c['jpeg_range']))
        # second order
        p['blur2_applied'] = bool(rng.random() < c['second_blur_prob'])
        p.update(_sample_resize(rng, c['resize_prob2'], c['resize_range2'], 'resize2'))
        p.update(_sample_noise(rng, c['gaussian_noise_prob2'], c['noise_range2'], c['poisson_scale_range2'],
                               c['gray_noise_prob2'], 'noise2'))
        # the final [resize back + sinc] and JPEG, in one of two orders
        p['final_order'] = FINAL_ORDERS[0] if rng.random() < 0.5 else FINAL_ORDERS[1]
        p['resize3_mode'] = str(rng.choice(RESIZE_MODES))
        p['jpeg2_q'] = float(rng.uniform(*c['jpeg_range2']))
        return p

    def prepare_gt(self, img):
        """The GT the chain starts from: basicsr's ``usm_sharp(img)`` with ``gt_usm`` (float32 BGR [0, 1]; uint8
        input is scaled), else ``img`` unchanged."""
        if not self.gt_usm:
            return img
        from basicsr.utils.img_process_util import usm_sharp
        img = img.astype(np.float32) * np.float32(1 / 255.) if img.dtype == np.uint8 else img
        return usm_sharp(img).astype(np.float32)

    def reseed_noise(self, params, rng):
        """``params`` with fresh noise seeds, for a second image of the same degradation (UDRL's key): every drawn
        parameter is shared, the noise realisation is not (as eq. 10's UDRL pairs)."""
        return dict(params, noise1_seed=int(rng.integers(0, 2**32)), noise2_seed=int(rng.integers(0, 2**32)))

    def apply(self, img, params, rng=None):
        """Degrade with ``params`` on the CPU (NumPy / OpenCV, basicsr's numpy functions).

        Args:
            img (ndarray): float32 BGR (h, w, 3) in [0, 1], at ``degradation_scale`` x the LQ size.
            params (dict): From :meth:`sample`.
            rng: Unused (the noise comes from the recorded seeds); accepted for the sampler interface.

        Returns:
            ndarray: float32 (h // degradation_scale, w // degradation_scale, 3), 8-bit levels in [0, 1].
        """
        bd = _basicsr()
        h, w = img.shape[:2]
        s = int(params['degradation_scale'])
        out = filter2d_np(img, build_kernel(params, 'k1_', pad_to=0))
        out = resize_np(out, _scaled(out.shape[:2], params['resize1_scale']), params['resize1_mode'])
        out = add_noise_np(out, params, 'noise1')
        out = bd.add_jpg_compression(out, params['jpeg1_q'])  # clips to [0, 1] first
        if params['blur2_applied']:
            out = filter2d_np(out, build_kernel(params, 'k2_', pad_to=0))
        size2 = (int(h / s * params['resize2_scale']), int(w / s * params['resize2_scale']))
        out = resize_np(out, size2, params['resize2_mode'])
        out = add_noise_np(out, params, 'noise2')
        # the final sinc, or nothing (Real-ESRGAN convolves with a 21 x 21 pulse then, the identity)
        sinc = build_kernel(params, 'sinc_', pad_to=0) if params['sinc_applied'] else None

        def back_and_sinc(x):
            x = resize_np(x, (h // s, w // s), params['resize3_mode'])
            return x if sinc is None else filter2d_np(x, sinc)

        if params['final_order'] == FINAL_ORDERS[0]:
            out = bd.add_jpg_compression(back_and_sinc(out), params['jpeg2_q'])
        else:
            out = back_and_sinc(bd.add_jpg_compression(out, params['jpeg2_q']))
        return (np.clip((out * 255.).round(), 0, 255) / 255.).astype(np.float32)

    def __repr__(self):
        return f'{type(self).__name__}(' + ', '.join(
            f'{k}={list(v) if isinstance(v, tuple) else v}' for k, v in self.cfg.items()) + ')'


def _scaled(hw, factor):
    """F.interpolate's output size for ``scale_factor`` (floor), at least 1."""
    return max(1, int(math.floor(hw[0] * factor))), max(1, int(math.floor(hw[1] * factor)))


def filter2d_np(img, kernel):
    """``cv2.filter2D`` with reflected borders: basicsr's ``filter2D`` (reflect pad + correlation) on HWC arrays."""
    return cv2.filter2D(img, -1, kernel, borderType=cv2.BORDER_REFLECT_101).reshape(img.shape)


def resize_np(img, size, mode):
    """Resize an HWC array to ``size`` (h, w) as ``F.interpolate(mode=...)`` does; unchanged when the size matches.

    'bilinear' and 'bicubic' are OpenCV's (the same values as ``F.interpolate``'s, tested, and 5-10x faster);
    'area' is OpenCV's exact area average when shrinking, and ``F.interpolate``'s own when enlarging (there torch
    repeats pixels, where OpenCV would interpolate bilinearly).
    """
    h, w = int(size[0]), int(size[1])
    if img.shape[:2] == (h, w):
        return img
    if mode == 'area' and (h > img.shape[0] or w > img.shape[1]):
        x = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)[None]
        return np.ascontiguousarray(F.interpolate(x, size=(h, w), mode='area')[0].permute(1, 2, 0).numpy())
    return cv2.resize(img, (w, h), interpolation=_CV2_MODES[mode]).reshape(h, w, -1)


def add_noise_np(img, params, key):
    """basicsr's noise (clip, no rounding) on an HWC array from the recorded seed.

    Gaussian: ``generate_gaussian_noise_pt`` (the noise ``add_gaussian_noise_pt`` adds, so the same noise as the
    torch backend draws, in RGB channel order, and 2.5x faster than the NumPy twin), added and clipped as
    ``add_gaussian_noise_pt(clip=True)`` does. Poisson: ``add_poisson_noise`` (3x faster than its torch twin).
    """
    bd = _basicsr()
    level, gray = params[f'{key}_level'], bool(params[f'{key}_gray'])
    img = np.ascontiguousarray(img, dtype=np.float32)
    if params[f'{key}_kind'] == 'gaussian':
        x = torch.from_numpy(img).permute(2, 0, 1)[None]  # only its shape, dtype and device are read
        with seeded_global_rngs(params[f'{key}_seed']):
            noise = bd.generate_gaussian_noise_pt(x, sigma=float(level), gray_noise=1.0 if gray else 0.0)
        noise_bgr = noise[0].permute(1, 2, 0).numpy()[:, :, ::-1]  # RGB -> BGR, a view
        return np.clip(img + noise_bgr, 0, 1)
    with seeded_global_rngs(params[f'{key}_seed']):
        out = bd.add_poisson_noise(img, scale=level, clip=True, rounds=False, gray_noise=gray)
    return out.astype(np.float32, copy=False)


# ---------------------------------------------------------------------------------------------------------------------
# The torch backend (RealESRNetModel.feed_data's functions), per image of a batch with its own parameters
# ---------------------------------------------------------------------------------------------------------------------
def _item(params, i):
    """Parameters of item i of a collated batch (tensors / lists per key) as plain Python values."""
    out = {}
    for k, v in params.items():
        v = v[i] if isinstance(v, (list, tuple, torch.Tensor)) else v
        out[k] = v.item() if isinstance(v, torch.Tensor) else v
    return out


def _noise_pt(img, p, key):
    from basicsr.data.degradations import add_gaussian_noise_pt, add_poisson_noise_pt
    gray = 1.0 if p[f'{key}_gray'] else 0.0
    with seeded_global_rngs(p[f'{key}_seed']):
        if p[f'{key}_kind'] == 'gaussian':
            return add_gaussian_noise_pt(img, sigma=float(p[f'{key}_level']), gray_noise=gray, clip=True, rounds=False)
        return add_poisson_noise_pt(img, scale=float(p[f'{key}_level']), gray_noise=gray, clip=True, rounds=False)


def _jpeg_pt(jpeger, img, q):
    return jpeger(torch.clamp(img, 0, 1), quality=img.new_tensor([float(q)]))


@torch.no_grad()
def degrade_batch(gt, params, jpeger=None):
    """The second-order chain in torch (filter2D, F.interpolate, ``*_noise_pt``, DiffJPEG), for ``feed_data``.

    Args:
        gt (Tensor): (b, 3, h, w) RGB in [0, 1], at ``degradation_scale`` x the LQ size, on any device.
        params (dict | list[dict]): A collated batch of :meth:`SecondOrderDegradation.sample` dicts (the dataset's
            ``params``) or one dict per image.
        jpeger (DiffJPEG | None): basicsr's ``DiffJPEG(differentiable=False)`` on ``gt``'s device; None builds one.

    Returns:
        Tensor: (b, 3, h // scale, w // scale) in [0, 1], 8-bit levels, on ``gt``'s device.
    """
    from basicsr.utils import DiffJPEG
    from basicsr.utils.img_process_util import filter2D
    if jpeger is None:
        jpeger = DiffJPEG(differentiable=False).to(gt.device)
    items = list(params) if isinstance(params, (list, tuple)) else [_item(params, i) for i in range(gt.size(0))]
    if len(items) != gt.size(0):
        raise ValueError(f'degrade_batch: {len(items)} parameter sets for a batch of {gt.size(0)}.')
    outs = []
    for i, p in enumerate(items):
        h, w = gt.shape[-2:]
        s = int(p['degradation_scale'])

        def kernel(arr):
            return torch.from_numpy(arr)[None].to(gt.device, gt.dtype)

        out = filter2D(gt[i:i + 1], kernel(build_kernel(p, 'k1_')))
        out = F.interpolate(out, size=_scaled(out.shape[-2:], p['resize1_scale']), mode=p['resize1_mode'])
        out = _jpeg_pt(jpeger, _noise_pt(out, p, 'noise1'), p['jpeg1_q'])
        if p['blur2_applied']:
            out = filter2D(out, kernel(build_kernel(p, 'k2_')))
        out = F.interpolate(out, size=(int(h / s * p['resize2_scale']), int(w / s * p['resize2_scale'])),
                            mode=p['resize2_mode'])
        out = _noise_pt(out, p, 'noise2')
        sinc = kernel(final_sinc_kernel(p))
        if p['final_order'] == FINAL_ORDERS[0]:
            out = filter2D(F.interpolate(out, size=(h // s, w // s), mode=p['resize3_mode']), sinc)
            out = _jpeg_pt(jpeger, out, p['jpeg2_q'])
        else:
            out = _jpeg_pt(jpeger, out, p['jpeg2_q'])
            out = filter2D(F.interpolate(out, size=(h // s, w // s), mode=p['resize3_mode']), sinc)
        outs.append(torch.clamp((out * 255.).round(), 0, 255) / 255.)
    return torch.cat(outs)
