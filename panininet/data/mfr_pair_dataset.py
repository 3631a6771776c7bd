"""Multi-degradation face restoration (MFR) pairs: HQ face and its eq.-(10) degradation, made on the fly."""
import torch
from basicsr.utils.registry import DATASET_REGISTRY
from torch.utils import data

from panininet.data.data_util import (
    ImageReader,
    color_jitter,
    hq_paths,
    is_deterministic,
    make_rng,
    params_for_batch,
    prepare_hq,
    to_gray3,
    to_tensor,
)
from panininet.data.degradations import DegradationSampler, make_lq
from panininet.data.face_components import (
    COMPONENTS,
    component_boxes,
    index_key,
    load_component_landmarks,
    template_entry,
)


@DATASET_REGISTRY.register()
class PaniniMFRDataset(data.Dataset):
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
        degradation_preset (str): 'panini_mfr' (default), 'gfpgan' or 'mmrb' (MMRB-Net eq. 17); the options below
            override it.
        blur_sigma, downsample_range, noise_range, jpeg_range ([low, high] or one fixed number), r_base (float),
            use_jpeg (bool), down_interpolation, up_interpolation (str), blur_kernel_size (int), motion_prob
            (float), motion_length_range ([low, high]), upsample_last (bool): see
            :class:`~panininet.data.degradations.DegradationSampler`.
        deterministic (bool): Degradation of item i is a function of (seed, i) only. Default: True unless
            ``phase == 'train'`` (BasicSR sets phase to 'train' / 'val').
        seed (int): Base seed of the deterministic mode. Default: 0.
        crop_components (bool): Also return the left-eye, right-eye and mouth boxes of the GT (for local
            discriminators, MMRB-Net eq. 12 / GFP-GAN). Default: False.
        component_path (str, optional): GFP-GAN component-landmarks file (``FFHQ_eye_mouth_landmarks_512.pth`` or
            ``scripts/make_component_landmarks.py``'s output), keyed by the index of the image in this dataset's
            list. Default: None: the FFHQ template's fixed boxes (faces aligned as FFHQ).
        component_coord_size (int): Side the file's coordinates refer to. Default: 512.
        eye_enlarge_ratio (float): Factor on the eyes' half side (GFP-GAN's option). Default: 1.

    Returns (``__getitem__``):
        dict: ``lq`` (3, in_size, in_size) and ``gt`` (3, out_size, out_size) RGB float32 tensors (range [-1, 1]
        with mean = std = 0.5, else [0, 1]); ``lq_path``, ``gt_path`` (str, the HQ path / lmdb key);
        ``params`` dict: ``sigma``, ``r``, ``delta``, ``q`` (-1 = JPEG off), ``r_base``, ``scale``, ``hflip``,
        ``gray`` (and ``blur``, ``length``, ``angle`` when motion blur is on). With ``crop_components``:
        ``loc_left_eye``, ``loc_right_eye``, ``loc_mouth``, each a (4,) float32 tensor ``[x1, y1, x2, y2]`` in
        continuous pixel coordinates of the GT (``roi_align(aligned=True)`` boxes; see
        :mod:`panininet.data.face_components`), following the flip.
    """

    def __init__(self, opt):
        super().__init__()
        self.opt = opt
        self.out_size = int(opt.get('out_size', 1024))
        self.in_size = int(opt.get('in_size', 512))
        self.mean, self.std = opt.get('mean'), opt.get('std')
        self.use_hflip = opt.get('use_hflip', False)
        self.color_jitter_prob = float(opt.get('color_jitter_prob') or 0)
        self.color_jitter_shift = float(opt.get('color_jitter_shift', 20)) / 255.
        self.gray_prob = float(opt.get('gray_prob') or 0)
        self.gt_gray = opt.get('gt_gray', True)
        self.deterministic = is_deterministic(opt)
        self.seed = int(opt.get('seed', 0))
        self.sampler = DegradationSampler.from_opt(opt)
        self.paths = hq_paths(opt)
        self.reader = ImageReader(opt.get('io_backend', {'type': 'disk'}), opt['dataroot_gt'])
        self.components = self._load_components(opt) if opt.get('crop_components', False) else None

    def _load_components(self, opt):
        """index -> component entry: from ``component_path``, or the template for every image."""
        self.component_coord_size = int(opt.get('component_coord_size', 512))
        self.eye_enlarge_ratio = float(opt.get('eye_enlarge_ratio', 1))
        path = opt.get('component_path')
        if path is None:
            entry = template_entry(self.component_coord_size)
            return [entry] * len(self.paths)
        table = load_component_landmarks(str(path))
        missing = [i for i in range(len(self.paths)) if index_key(i) not in table]
        if missing:
            raise KeyError(f'component_path {path!r} has no entry for image index {index_key(missing[0])} '
                           f'({self.paths[missing[0]]!r}) and {len(missing) - 1} more: it lists {len(table)} faces, '
                           f'this dataset {len(self.paths)}. Recompute it for this folder with '
                           'scripts/make_component_landmarks.py.')
        return [table[index_key(i)] for i in range(len(self.paths))]

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, index):
        rng = make_rng(self.deterministic, self.seed, index)
        path = self.paths[index]
        img_gt, flipped = prepare_hq(self.reader.read(path), self.out_size, rng, self.use_hflip)
        params = self.sampler.sample(rng)
        img_lq = make_lq(img_gt, self.in_size, params, self.sampler, rng)
        if self.color_jitter_prob > 0 and rng.random() < self.color_jitter_prob:
            img_lq = color_jitter(img_lq, self.color_jitter_shift, rng)
        gray = self.gray_prob > 0 and bool(rng.random() < self.gray_prob)
        if gray:
            img_lq = to_gray3(img_lq)
            if self.gt_gray:
                img_gt = to_gray3(img_gt)
        out = {
            'lq': to_tensor(img_lq, self.mean, self.std),
            'gt': to_tensor(img_gt, self.mean, self.std),
            'lq_path': path,
            'gt_path': path,
            'params': params_for_batch(params, hflip=flipped, gray=gray),
        }
        if self.components is not None:
            boxes = component_boxes(self.components[index], self.out_size, self.component_coord_size, flipped,
                                    self.eye_enlarge_ratio)
            out.update({f'loc_{part}': torch.from_numpy(boxes[part]) for part in COMPONENTS})
        return out
