"""16x face super-resolution pairs: HQ 1024 and its bilinear 64 x 64 downsampling (the paper's SR setting)."""
import torch
from basicsr.utils.registry import DATASET_REGISTRY
from torch.nn import functional as F

from panininet.data.data_util import HQFaceDataset, params_for_batch, to_tensor
from panininet.data.degradation_sampler import make_lq, sampler_from_opt

_MODES = {
    # name: (F.interpolate mode, antialias)
    'bilinear': ('bilinear', True),  # as PIL's BILINEAR resize: reproduces the official SR examples
    'bicubic': ('bicubic', True),
    'area': ('area', False),
    'bilinear_noaa': ('bilinear', False),  # plain 2x2-tap bilinear sampling (cv2.INTER_LINEAR), aliased
}


def downsample(img_t, size, mode='bilinear'):
    """Downsample a (3, H, W) tensor to (3, size, size).

    Args:
        img_t (Tensor): (3, H, W) float32.
        size (int): Output side.
        mode (str): 'bilinear' (anti-aliased, as PIL), 'bicubic' (anti-aliased), 'area', 'bilinear_noaa'.
            Default: 'bilinear'.

    Returns:
        Tensor: (3, size, size) float32.
    """
    if mode not in _MODES:
        raise ValueError(f'Unknown lq_interpolation {mode!r}; choose one of {sorted(_MODES)}.')
    name, aa = _MODES[mode]
    kwargs = {} if name == 'area' else dict(align_corners=False, antialias=aa)
    return F.interpolate(img_t[None], size=(size, size), mode=name, **kwargs)[0]


@DATASET_REGISTRY.register()
class PaniniSRDataset(HQFaceDataset):
    """(LQ, GT) pairs for 16x face SR: GT at ``out_size``, LQ = its anti-aliased bilinear downsampling.

    The paper: "16x bilinear interpolation as a downsampling operation", LR 64 x 64, GT 1024 x 1024. The official
    examples (``panini_examples/SR``) are reproduced by PIL's bilinear resize of the GT (mean abs. difference < 0.1
    grey level), which is anti-aliased; ``lq_interpolation: bilinear`` does the same with ``F.interpolate``.
    Downsampling is done in [0, 1] before normalisation and rounded to 8 bits (as a saved LR image would be).

    Options (YAML keys):
        dataroot_gt, meta_info, io_backend: as :class:`PaniniMFRDataset`.
        out_size (int): GT side. Default: 1024.
        in_size (int): LQ side. Default: 64 (out_size / 16).
        lq_interpolation (str): 'bilinear' (default), 'bicubic', 'area', 'bilinear_noaa'.
        quantize (bool): Round the LQ to 8 bits. Default: True.
        mean, std: Normalisation (0.5 / 0.5 gives [-1, 1]). Default: None ([0, 1]).
        use_hflip (bool): Random horizontal flip of the pair. Default: False.
        deterministic (bool), seed (int): as :class:`PaniniMFRDataset` (only the flip is random).
        degradation_preset (str | None): None (default): the bilinear LQ above. A preset name ('realworld',
            'panini_mfr', ...; with its options, as :class:`PaniniMFRDataset`): the LQ is that degradation of the GT
            at ``in_size`` (the realworld chain at ``degradation_scale`` x ``in_size``, e.g. 4 as Real-ESRGAN's x4)
            instead, and ``params`` holds its drawn parameters.

    Returns (``__getitem__``):
        dict: ``lq`` (3, in_size, in_size), ``gt`` (3, out_size, out_size) RGB float32; ``lq_path``, ``gt_path``;
        ``params``: ``{'hflip': bool}``.
    """

    def __init__(self, opt):
        mode = opt.get('lq_interpolation', 'bilinear')
        if mode not in _MODES:  # before the HQ folder is listed
            raise ValueError(f'Unknown lq_interpolation {mode!r}; choose one of {sorted(_MODES)}.')
        self.sampler = sampler_from_opt(opt) if opt.get('degradation_preset') else None
        super().__init__(opt)
        self.out_size = int(opt.get('out_size', 1024))
        self.in_size = int(opt.get('in_size', 64))
        self.mode = mode
        self.quantize = opt.get('quantize', True)

    def __getitem__(self, index):
        rng = self.item_rng(index)
        path = self.paths[index]
        img_gt, flipped = self.read_hq(path, self.out_size, rng)
        if self.sampler is not None:
            return self._degraded_item(path, img_gt, flipped, rng)
        gt = to_tensor(img_gt)  # [0, 1]
        lq = downsample(gt, self.in_size, self.mode).clamp_(0, 1)
        if self.quantize:
            lq = torch.round(lq * 255.) / 255.
        if self.mean is not None and self.std is not None:
            mean = torch.as_tensor(self.mean, dtype=torch.float32).reshape(-1, 1, 1)
            std = torch.as_tensor(self.std, dtype=torch.float32).reshape(-1, 1, 1)
            gt, lq = (gt - mean) / std, (lq - mean) / std
        return {'lq': lq, 'gt': gt, 'lq_path': path, 'gt_path': path, 'params': {'hflip': flipped}}

    def _degraded_item(self, path, img_gt, flipped, rng):
        """The item of a ``degradation_preset``: the LQ is that degradation of the GT at ``in_size``."""
        params = self.sampler.sample(rng)
        img_gt = self.sampler.prepare_gt(img_gt)
        lq = make_lq(img_gt, self.in_size, params, self.sampler, rng)
        return {'lq': to_tensor(lq, self.mean, self.std), 'gt': to_tensor(img_gt, self.mean, self.std),
                'lq_path': path, 'gt_path': path, 'params': params_for_batch(params, hflip=flipped)}
