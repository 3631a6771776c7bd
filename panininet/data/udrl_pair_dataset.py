"""UDRL (MoCo) pairs: two different HQ faces degraded with the same sampled eq.-(10) parameters (paper Fig. 2)."""
from basicsr.utils.registry import DATASET_REGISTRY

from panininet.data.data_util import HQFaceDataset, params_for_batch, to_tensor
from panininet.data.degradation_sampler import make_lq, sampler_from_opt
from panininet.data.degradations import resize


@DATASET_REGISTRY.register()
class UDRLPairDataset(HQFaceDataset):
    """Positive pairs for unsupervised degradation representation learning (query, key).

    Item i pairs HQ image i (query) with another HQ image j != i (key, random; in the deterministic mode a
    function of (seed, i)). One parameter set (sigma, r, delta, q; or the realworld preset's whole second-order
    set) is drawn and applied to both (the noise realisations are independent; the noise level is shared). Both
    are degraded at ``degrade_size`` (the Panini input size, 512, so the parameters mean what they mean for
    :class:`PaniniMFRDataset`) and then area-resized to ``out_size`` (the DRE input, 256): for 512 -> 256 that is
    the exact 2x2 average Panini-Net applies before its DRE (the official MFR code's ``AdaptiveAvgPool2d((256, 256))``).

    Options (YAML keys):
        dataroot_gt, meta_info, io_backend: as :class:`PaniniMFRDataset` (at least two images).
        degrade_size (int): Size at which eq. (10) runs. Default: 512.
        out_size (int): Side of the returned images (DRE input). Default: 256.
        mean, std: Normalisation (0.5 / 0.5 gives [-1, 1], as the official MoCo). Default: None ([0, 1]).
        use_hflip (bool): Flip each image independently (p = 0.5). Default: False.
        degradation_preset, blur_sigma, downsample_range, noise_range, jpeg_range, r_base, use_jpeg,
            down_interpolation, up_interpolation, degradation_scale, gt_usm, realworld: as
            :class:`PaniniMFRDataset`.
        deterministic (bool), seed (int): as :class:`PaniniMFRDataset`.

    Returns (``__getitem__``):
        dict: ``query``, ``key`` (3, out_size, out_size) RGB float32 tensors; ``query_path``, ``key_path`` (str);
        ``lq_path`` (= query_path, for BasicSR's logging); ``params`` (shared by both, as in
        :class:`PaniniMFRDataset`, plus ``key_index``; with the realworld preset also ``key_noise1_seed``,
        ``key_noise2_seed``, the key's noise seeds).
    """

    def __init__(self, opt):
        self.sampler = sampler_from_opt(opt)  # bad degradation options fail before the folder is listed
        super().__init__(opt)
        self.degrade_size = int(opt.get('degrade_size', 512))
        self.out_size = int(opt.get('out_size', 256))
        if len(self.paths) < 2:
            raise RuntimeError(f'UDRL pairs need at least two different HQ images; {opt["dataroot_gt"]!r} has '
                               f'{len(self.paths)}.')

    def _degraded(self, path, params, rng):
        img, _ = self.read_hq(path, self.degrade_size * self.sampler.degradation_scale, rng)
        img = make_lq(self.sampler.prepare_gt(img), self.degrade_size, params, self.sampler, rng)
        return to_tensor(resize(img, self.out_size, 'area'), self.mean, self.std)

    def __getitem__(self, index):
        rng = self.item_rng(index)
        key_index = (index + 1 + int(rng.integers(len(self.paths) - 1))) % len(self.paths)
        params = self.sampler.sample(rng)
        key_params = self.sampler.reseed_noise(params, rng)
        extra = {f'key_{k}': v for k, v in key_params.items() if k.endswith('_seed') and v != params[k]}
        q_path, k_path = self.paths[index], self.paths[key_index]
        return {
            'query': self._degraded(q_path, params, rng),
            'key': self._degraded(k_path, key_params, rng),
            'query_path': q_path,
            'key_path': k_path,
            'lq_path': q_path,
            'params': params_for_batch(params, key_index=key_index, **extra),
        }
