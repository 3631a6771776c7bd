"""Multi-degradation face restoration (MFR) pairs: HQ face and its eq.-(10) degradation, made on the fly."""
import torch
from basicsr.utils.registry import DATASET_REGISTRY

from panininet.data.data_util import (
    ComponentLocations,
    HQFaceDataset,
    color_jitter,
    params_for_batch,
    to_gray3,
    to_tensor,
)
from panininet.data.degradation_sampler import degradation_source, make_lq, sampler_from_opt


@DATASET_REGISTRY.register()
class PaniniMFRDataset(HQFaceDataset):
    """HQ faces -> (LQ, GT) pairs degraded with the paper's eq. (10), like GFP-GAN's ``FFHQDegradationDataset``.

    Per item: read the HQ image (resized to ``out_size`` if needed), optionally flip it (GT and LQ stay aligned),
    draw (sigma, r, delta, q), area-resize to ``in_size`` and degrade there (see
    :mod:`panininet.data.degradations` for what r means and why the chain runs at the input size), then the
    optional GFP-GAN colour jitter / grayscale on the LQ only.

    Options (YAML keys):
        dataroot_gt (str): HQ folder, or ``*.lmdb`` folder with ``io_backend.type: lmdb``.
        meta_info (str, optional): Text file listing images (paths relative to dataroot_gt), disk backend only.
        io_backend (dict): ``{type: disk}`` (default) or ``{type: lmdb}``.
        out_size (int): GT side. Default: 1024.
        in_size (int): LQ side. Default: 512.
        mean, std (float | list[float]): Normalisation (x - mean) / std applied to both; 0.5 / 0.5 gives [-1, 1].
            Default: None (tensors stay in [0, 1]).
        use_hflip (bool): Random horizontal flip of the pair (p = 0.5). Default: False.
        color_jitter_prob (float): Probability of GFP-GAN's per-channel shift of the LQ. Default: 0 (off).
        color_jitter_shift (float): Shift on the 0..255 scale. Default: 20.
        gray_prob (float): Probability of a grayscale LQ. Default: 0 (off).
        gt_gray (bool): Also make the GT gray when the LQ is. Default: True (as GFP-GAN's options).
        degradation_preset (str): 'panini_mfr' (default), 'gfpgan', 'mmrb' (MMRB-Net eq. 17) or 'realworld'
            (Real-ESRGAN's second-order model, :mod:`panininet.data.realworld_degradation`, with the options
            ``degradation_scale``, ``gt_usm`` and ``realworld``: a dict of its ranges to override); the options
            below override the first-order presets.
        blur_sigma, downsample_range, noise_range, jpeg_range ([low, high] or one fixed number), r_base (float),
            use_jpeg (bool), down_interpolation, up_interpolation (str), blur_kernel_size (int), motion_prob
            (float), motion_length_range ([low, high]), upsample_last (bool): see
            :class:`~panininet.data.degradation_sampler.DegradationSampler`.
        deterministic (bool): Degradation of item i is a function of (seed, i) only. Default: True unless
            ``phase == 'train'`` (BasicSR sets phase to 'train' / 'val').
        seed (int): Base seed of the deterministic mode. Default: 0.
        crop_components (bool): Also return GFP-GAN's facial component boxes (``loc_left_eye``, ``loc_right_eye``,
            ``loc_mouth``), so that GFP-GAN's ``GFPGANModel`` trains on these pairs with its component
            discriminators (``options/data_gfpgan_eq10.yml``), and MMRB-Net's local discriminators (eq. 12).
            Default: False.
        component_path (str | None): GFP-GAN's component-landmarks file (``FFHQ_eye_mouth_landmarks_512.pth``
            format: entry ``f'{i:08d}'`` for the i-th image of the sorted list; ``scripts/make_component_landmarks.py``
            writes one), read by :class:`~panininet.data.data_util.ComponentLocations`. None: the FFHQ template's
            fixed boxes for every image (:data:`panininet.data.face_components.TEMPLATE_COMPONENTS_512`; aligned
            data). Default: None.
        component_coord_size (int): Side the file's coordinates refer to. Default: 512 (GFP-GAN's file).
        eye_enlarge_ratio (float): Eye box enlargement, as GFP-GAN. Default: 1.
        degrade_in_model (bool): realworld only: return the chain's input (``lq_source``) instead of ``lq`` and let
            the model's ``feed_data`` degrade the batch on its device (as BasicSR's ``RealESRGANModel``), with the
            same drawn ``params``. Default: False (degraded here, in the data-loader workers).

    Returns (``__getitem__``):
        dict: ``lq`` (3, in_size, in_size) and ``gt`` (3, out_size, out_size) RGB float32 tensors (range [-1, 1]
        with mean = std = 0.5, else [0, 1]); ``lq_path``, ``gt_path`` (str, the HQ path / lmdb key);
        ``params`` dict: ``sigma``, ``r``, ``delta``, ``q`` (-1 = JPEG off), ``r_base``, ``scale``, ``hflip``,
        ``gray`` (and ``blur``, ``length``, ``angle`` when motion blur is on; the realworld preset's own keys
        instead, see :meth:`~panininet.data.realworld_degradation.SecondOrderDegradation.sample`); with
        ``degrade_in_model``: ``lq_source`` (3, in * s, in * s) RGB in [0, 1] instead of ``lq``, and ``lq_mean``,
        ``lq_std`` (3,) when mean and std are set; with ``crop_components`` also
        ``loc_left_eye``, ``loc_right_eye``, ``loc_mouth``: (4,) float32 boxes ``(x0, y0, x1, y1)`` on the GT
        (GFP-GAN's convention, :meth:`~panininet.data.data_util.ComponentLocations.locations`; mirrored and swapped
        when the pair is flipped).
    """

    def __init__(self, opt):
        self.sampler = sampler_from_opt(opt)  # bad degradation options fail before the folder is listed
        self.degrade_in_model = bool(opt.get('degrade_in_model', False))
        if self.degrade_in_model and (opt.get('degradation_preset') != 'realworld' or opt.get('color_jitter_prob')
                                      or opt.get('gray_prob')):
            raise ValueError('degrade_in_model needs degradation_preset: realworld and no color_jitter_prob / '
                             'gray_prob (those act on the finished LQ in the dataset).')
        super().__init__(opt)
        self.out_size = int(opt.get('out_size', 1024))
        self.in_size = int(opt.get('in_size', 512))
        self.color_jitter_prob = float(opt.get('color_jitter_prob') or 0)
        self.color_jitter_shift = float(opt.get('color_jitter_shift', 20)) / 255.
        self.gray_prob = float(opt.get('gray_prob') or 0)
        self.gt_gray = opt.get('gt_gray', True)
        self.components = None
        self.eye_enlarge_ratio = float(opt.get('eye_enlarge_ratio', 1))
        self.component_coord_size = int(opt.get('component_coord_size', 512))
        if opt.get('crop_components', False):
            self.components = (ComponentLocations.from_options(opt, len(self.paths)) if opt.get('component_path')
                               else ComponentLocations.template(len(self.paths), self.component_coord_size))

    def __getitem__(self, index):
        rng = self.item_rng(index)
        path = self.paths[index]
        img_gt, flipped = self.read_hq(path, self.out_size, rng)
        params = self.sampler.sample(rng)
        img_gt = self.sampler.prepare_gt(img_gt)
        if self.degrade_in_model:
            return self._undegraded_item(index, path, img_gt, flipped, params)
        img_lq = make_lq(img_gt, self.in_size, params, self.sampler, rng)
        if self.color_jitter_prob > 0 and rng.random() < self.color_jitter_prob:
            img_lq = color_jitter(img_lq, self.color_jitter_shift, rng)
        gray = self.gray_prob > 0 and bool(rng.random() < self.gray_prob)
        if gray:
            img_lq = to_gray3(img_lq)
            if self.gt_gray:
                img_gt = to_gray3(img_gt)
        item = {
            'lq': to_tensor(img_lq, self.mean, self.std),
            'gt': to_tensor(img_gt, self.mean, self.std),
            'lq_path': path,
            'gt_path': path,
            'params': params_for_batch(params, hflip=flipped, gray=gray),
        }
        if self.components is not None:
            item.update(self.components.locations(index, self.out_size, flipped, self.eye_enlarge_ratio,
                                                  self.component_coord_size))
        return item

    def _undegraded_item(self, index, path, img_gt, flipped, params):
        """The item of ``degrade_in_model``: the chain's input and its parameters, degraded by the model."""
        item = {'lq_source': to_tensor(degradation_source(img_gt, self.in_size, self.sampler)),
                'gt': to_tensor(img_gt, self.mean, self.std), 'lq_path': path, 'gt_path': path,
                'params': params_for_batch(params, hflip=flipped, gray=False)}
        if self.mean is not None and self.std is not None:
            item['lq_mean'] = torch.as_tensor(self.mean, dtype=torch.float32).expand(3).clone()
            item['lq_std'] = torch.as_tensor(self.std, dtype=torch.float32).expand(3).clone()
        if self.components is not None:
            item.update(self.components.locations(index, self.out_size, flipped, self.eye_enlarge_ratio,
                                                  self.component_coord_size))
        return item
