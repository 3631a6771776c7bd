"""The realworld preset (Real-ESRGAN's second-order degradation): each stage against the basicsr function it wraps,
the published order, reproducibility, the UDRL pair rule, every dataset, the GPU (feed_data) path on CPU tensors."""
import json
import os
import os.path as osp
import random

import cv2
import numpy as np
import pytest
import torch
from helpers import REPO_ROOT
from torch.utils.data import default_collate

import panininet  # noqa: F401  (compat first)
from panininet.data import realworld_degradation as RW
from panininet.data.degradation_sampler import make_lq, sampler_from_opt, seeded_rng
from panininet.data.realworld_degradation import REALWORLD, SecondOrderDegradation, degrade_batch

REPO = REPO_ROOT
SIZE = 48


def face(seed, size=SIZE):
    """A smooth image with edges and texture (not a constant: the Poisson noise counts grey levels)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    img = np.stack([0.5 + 0.3 * np.sin(6 * xx + seed), 0.5 + 0.3 * np.cos(5 * yy), 0.3 + 0.4 * (xx > 0.5)], 2)
    return np.clip(img + 0.05 * rng.standard_normal(img.shape), 0, 1).astype(np.float32)


@pytest.fixture
def faces_dir(tmp_path):
    folder = tmp_path / 'faces'
    folder.mkdir()
    for i in range(3):
        cv2.imwrite(str(folder / f'{i:03d}.png'), np.rint(face(i, 64) * 255).astype(np.uint8))
    return str(folder)


class GlobalStream:
    """The Generator methods our sampler calls, answered from the global RNGs in basicsr's own calls: Python's
    ``random.choice`` / ``random.choices`` and NumPy's ``np.random.uniform``."""

    def choice(self, a, p=None):
        if p is None:
            return random.choice(list(a))
        return random.choices(range(a), list(p))[0]

    def random(self):
        return np.random.uniform()

    def uniform(self, low, high):
        return np.random.uniform(low, high)

    def integers(self, low, high):
        return int(np.random.randint(low, high, dtype=np.int64))


def test_kernels_are_basicsrs_realesrgan_dataset_kernels(tmp_path):
    """Same global seed: our drawn kernel1, kernel2 and final sinc equal those of basicsr's own RealESRGANDataset
    (the published options), over seeds that reach every kernel type, sinc and the pulse."""
    from basicsr.data.realesrgan_dataset import RealESRGANDataset
    cv2.imwrite(str(tmp_path / 'a.png'), np.full((16, 16, 3), 128, np.uint8))
    (tmp_path / 'meta.txt').write_text('a.png\n')
    keys = ('kernel_list', 'kernel_prob', 'sinc_prob', 'blur_sigma', 'betag_range', 'betap_range')
    opt = dict(dataroot_gt=str(tmp_path), meta_info=str(tmp_path / 'meta.txt'), io_backend={'type': 'disk'},
               use_hflip=False, use_rot=False, blur_kernel_size=21, blur_kernel_size2=21,
               final_sinc_prob=REALWORLD['final_sinc_prob'],
               **{k: REALWORLD[k] for k in keys}, **{k + '2': REALWORLD[k + '2'] for k in keys})
    ref = RealESRGANDataset(opt)
    ours = SecondOrderDegradation()
    seen = set()
    for seed in range(40):
        random.seed(seed)
        np.random.seed(seed)
        item = ref[0]
        random.seed(seed)
        np.random.seed(seed)
        p = ours.sample(GlobalStream())
        np.testing.assert_allclose(RW.build_kernel(p, 'k1_'), item['kernel1'].numpy(), rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(RW.build_kernel(p, 'k2_'), item['kernel2'].numpy(), rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(RW.final_sinc_kernel(p), item['sinc_kernel'].numpy(), rtol=1e-5, atol=1e-7)
        seen |= {p['k1_type'], p['k2_type'], 'pulse' if not p['sinc_applied'] else 'final'}
    assert seen >= {'iso', 'aniso', 'generalized_iso', 'plateau_iso', 'sinc', 'pulse', 'final'}, seen


@pytest.mark.parametrize(('kind', 'gray'), [('gaussian', False), ('gaussian', True), ('poisson', False),
                                            ('poisson', True)])
def test_noise_stage_is_basicsrs_function_from_the_recorded_seed(kind, gray):
    img = face(1)
    params = {'n_kind': kind, 'n_level': 12.0 if kind == 'gaussian' else 1.5, 'n_gray': gray, 'n_seed': 1234}
    np_state, torch_state = np.random.get_state()[1].copy(), torch.get_rng_state().clone()
    out = RW.add_noise_np(img, params, 'n')
    assert np.array_equal(np.random.get_state()[1], np_state) and torch.equal(torch.get_rng_state(), torch_state)
    from basicsr.data import degradations as bd
    x = torch.from_numpy(img.transpose(2, 0, 1).copy())[None]
    if kind == 'gaussian':  # the torch function on the array in RGB order (the torch backend's noise, exactly)
        torch.manual_seed(1234)
        ref = bd.add_gaussian_noise_pt(x.flip(1), 12.0, gray_noise=float(gray), clip=True)
        ref = ref.flip(1)[0].numpy().transpose(1, 2, 0)
    else:
        np.random.seed(1234)
        ref = bd.add_poisson_noise(img, scale=1.5, clip=True, rounds=False, gray_noise=gray)
    np.testing.assert_array_equal(out, ref.astype(np.float32))
    assert np.abs(out - img).mean() > 1e-3  # it is noisy
    # torch twin: add_*_noise_pt from torch.manual_seed(seed)
    out_pt = RW._noise_pt(x, params, 'n')
    torch.manual_seed(1234)
    fn = bd.add_gaussian_noise_pt if kind == 'gaussian' else bd.add_poisson_noise_pt
    ref_pt = fn(x, params['n_level'], gray_noise=float(gray), clip=True, rounds=False)
    assert torch.equal(out_pt, ref_pt)


def test_blur_and_jpeg_stages_are_basicsrs():
    from basicsr.data import degradations as bd
    from basicsr.utils.img_process_util import filter2D
    img = face(2)
    p = SecondOrderDegradation().sample(seeded_rng(0, 3))
    k = RW.build_kernel(p, 'k1_')
    ref = filter2D(torch.from_numpy(img.transpose(2, 0, 1).copy())[None], torch.from_numpy(k)[None])
    np.testing.assert_allclose(RW.filter2d_np(img, k), ref[0].numpy().transpose(1, 2, 0), atol=2e-6)
    # the CPU path's unpadded kernel (the padding's zero taps change nothing)
    np.testing.assert_allclose(RW.filter2d_np(img, RW.build_kernel(p, 'k1_', 0)), ref[0].numpy().transpose(1, 2, 0),
                               atol=2e-6)
    # the JPEG stage calls basicsr's add_jpg_compression (ours installed there: float quality rounded)
    assert np.array_equal(bd.add_jpg_compression(img, 47.6), bd.add_jpg_compression(img, 48))


def _forced(**changes):
    p = SecondOrderDegradation().sample(seeded_rng(5, 0))
    p.update(changes)
    return p


@pytest.mark.parametrize('order', RW.FINAL_ORDERS)
@pytest.mark.parametrize('blur2', [True, False])
def test_second_order_and_final_sinc_in_published_order(monkeypatch, order, blur2):
    """Blur, resize, noise, JPEG; (blur2), resize2, noise2; then [resize back + sinc] and JPEG in the drawn order."""
    calls = []
    bd = RW._basicsr()
    sizes = {}
    for name in ('filter2d_np', 'resize_np', 'add_noise_np'):
        fn = getattr(RW, name)

        def wrapped(*a, _fn=fn, _name=name):
            out = _fn(*a)
            if _name == 'filter2d_np':
                k = a[1]
                tag = ('k1' if np.array_equal(k, RW.build_kernel(p, 'k1_', 0)) else
                       'k2' if np.array_equal(k, RW.build_kernel(p, 'k2_', 0)) else
                       'sinc' if np.array_equal(k, RW.build_kernel(p, 'sinc_', 0)) else 'unknown')
            elif _name == 'add_noise_np':
                tag = a[2]
            else:
                tag = 'resize'
                sizes[len(calls)] = out.shape[:2]
            calls.append(tag)
            return out
        monkeypatch.setattr(RW, name, wrapped)
    jpeg = bd.add_jpg_compression

    def jpeg_logged(img, q):
        calls.append(f'jpeg{q}')
        return jpeg(img, q)
    monkeypatch.setattr(bd, 'add_jpg_compression', jpeg_logged)
    p = _forced(final_order=order, blur2_applied=blur2, sinc_applied=True, sinc_size=9, sinc_omega_c=1.0,
                k1_type='iso', k1_sigma_x=2.0, k1_sigma_y=2.0, k2_type='iso', k2_sigma_x=1.0, k2_sigma_y=1.0,
                resize1_scale=0.5, resize2_scale=0.75, jpeg1_q=40.0, jpeg2_q=70.0)
    out = SecondOrderDegradation().apply(face(3, 64), p)
    first = ['k1', 'resize', 'noise1', 'jpeg40.0'] + (['k2'] if blur2 else []) + ['resize', 'noise2']
    last = (['resize', 'sinc', 'jpeg70.0'] if order == 'resize_sinc_jpeg' else ['jpeg70.0', 'resize', 'sinc'])
    assert calls == first + last
    assert sorted(sizes.values()) == [(32, 32), (48, 48), (64, 64)]  # 64 * 0.5, 64 * 0.75, back to 64
    assert out.shape == (64, 64, 3) and np.array_equal(out, np.round(out * 255) / 255)


def test_same_seed_same_pair_and_global_rngs_untouched():
    d = SecondOrderDegradation()
    img = face(4)
    np_state, torch_state = np.random.get_state()[1].copy(), torch.get_rng_state().clone()
    a = d.apply(img, d.sample(seeded_rng(7, 2)))
    b = d.apply(img, d.sample(seeded_rng(7, 2)))
    c = d.apply(img, d.sample(seeded_rng(8, 2)))
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert np.array_equal(np.random.get_state()[1], np_state) and torch.equal(torch.get_rng_state(), torch_state)


def test_options_override_and_bad_options_fail():
    d = sampler_from_opt({'degradation_preset': 'realworld', 'degradation_scale': 2,
                          'realworld': {'second_blur_prob': 0.0, 'final_sinc_prob': 1.0}})
    draws = [d.sample(seeded_rng(0, i)) for i in range(20)]
    assert not any(p['blur2_applied'] for p in draws) and all(p['sinc_applied'] for p in draws)
    assert d.apply(face(0, 64), draws[0]).shape == (32, 32, 3)
    with pytest.raises(ValueError, match='Unknown realworld degradation option'):
        sampler_from_opt({'degradation_preset': 'realworld', 'realworld': {'noise_rang': [1, 2]}})
    with pytest.raises(ValueError, match='kernel_list'):
        SecondOrderDegradation(kernel_list=['iso', 'box'], kernel_prob=[0.5, 0.5])
    with pytest.raises(ValueError, match='degradation_scale'):
        SecondOrderDegradation(degradation_scale=0)


def _no_noise(p):
    """Gaussian noise only (the same realisation on both backends); Poisson's differs (NumPy vs torch RNG)."""
    return dict(p, noise1_kind='gaussian', noise2_kind='gaussian')


@pytest.mark.parametrize(('mode', 'hw'), [('bilinear', (37, 80)), ('bicubic', (37, 80)), ('area', (80, 90)),
                                         ('area', (37, 21))])
def test_resize_is_f_interpolate(mode, hw):
    """The CPU resize gives F.interpolate's values (RealESRNetModel's resize): exactly, except OpenCV's area
    average when shrinking (torch averages whole-pixel bins there)."""
    from torch.nn import functional as F
    img = cv2.GaussianBlur(face(6, 64), (0, 0), 1.0)  # a photo's smoothness (the grain of face() aliases)
    ref = F.interpolate(torch.from_numpy(img).permute(2, 0, 1)[None], size=hw, mode=mode)[0].permute(1, 2, 0)
    out = RW.resize_np(img, hw, mode)
    assert out.shape == (*hw, 3)
    if mode == 'area' and hw[0] < 64:
        assert np.abs(out - ref.numpy()).mean() < 1.5 / 255  # about 1 grey level on real faces too
    else:
        np.testing.assert_allclose(out, ref.numpy(), atol=1e-5)


def test_torch_backend_matches_cpu_backend(monkeypatch):
    """degrade_batch (feed_data's torch path; here on CPU tensors) and the dataset's NumPy path give the same image
    for the same parameters: exactly without the JPEG steps (libjpeg vs DiffJPEG, which differ in their chroma
    resampling), closely with them. Gaussian noise only: both draw it with add_gaussian_noise_pt from the recorded
    seed (Poisson's realisations differ: NumPy vs torch RNG)."""
    d = SecondOrderDegradation()
    imgs = [face(i, 64) for i in range(3)]
    params = [_no_noise(d.sample(seeded_rng(3, i))) for i in range(3)]
    for p in params:
        p.update(resize1_mode='bilinear', resize2_mode='bilinear', resize3_mode='bilinear')
    x = torch.from_numpy(np.stack(imgs)[..., ::-1].transpose(0, 3, 1, 2).copy())
    collated = default_collate(params)  # as a DataLoader batches the dataset's params

    def both():
        ref = np.stack([d.apply(img, p) for img, p in zip(imgs, params)])
        out = degrade_batch(x, collated)
        assert out.shape == (3, 3, 64, 64)
        assert torch.equal(degrade_batch(x, params), out)  # a list of dicts is the same as the collated batch
        return out.numpy().transpose(0, 2, 3, 1)[..., ::-1], ref

    got, ref = both()
    assert np.abs(got - ref).mean() < 6 / 255, np.abs(got - ref).mean() * 255
    with monkeypatch.context() as m:
        m.setattr(RW, '_jpeg_pt', lambda jpeger, img, q: img)
        m.setattr(RW._basicsr(), 'add_jpg_compression', lambda img, q: img)
        got, ref = both()
    diff = np.abs(got - ref)  # equal but for a float ulp at a rounding boundary of the final 8-bit levels
    assert diff.max() <= 1 / 255 + 1e-6 and (diff > 1e-6).mean() < 1e-3, ((diff > 1e-6).mean(), diff.max())
    assert np.abs(ref - np.stack(imgs)).mean() > 5 / 255  # and it did degrade


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
def test_gpu_batch_matches_cpu_batch():
    d = SecondOrderDegradation()
    imgs = torch.from_numpy(np.stack([face(i, 64) for i in range(4)]).transpose(0, 3, 1, 2).copy())
    params = [_no_noise(d.sample(seeded_rng(11, i))) for i in range(4)]
    cpu = degrade_batch(imgs, params)
    gpu = degrade_batch(imgs.cuda(), params)
    assert gpu.is_cuda and (gpu.cpu() - cpu).abs().mean() < 1 / 255


# ---------------------------------------------------------------------------------------------------------------------
# datasets
# ---------------------------------------------------------------------------------------------------------------------
def _dataset(kind, root, **extra):
    from basicsr.utils.registry import DATASET_REGISTRY
    opt = dict(dataroot_gt=root, phase='val', seed=3, degradation_preset='realworld')
    if kind == 'PaniniMFRDataset':
        opt.update(out_size=64, in_size=32, mean=0.5, std=0.5)
    elif kind == 'GFPGAN-eq10':  # options/data_gfpgan_eq10.yml's dataset: MFR pairs with the component boxes
        kind = 'PaniniMFRDataset'
        opt.update(out_size=64, in_size=64, crop_components=True, component_coord_size=64, use_hflip=True)
    elif kind == 'PaniniSRDataset':
        opt.update(out_size=64, in_size=16, degradation_scale=4)
    else:
        opt.update(degrade_size=32, out_size=16)
    opt.update(extra)
    return DATASET_REGISTRY.get(kind)(opt)


@pytest.mark.parametrize('kind', ['PaniniMFRDataset', 'GFPGAN-eq10', 'PaniniSRDataset', 'UDRLPairDataset'])
def test_every_dataset_accepts_the_preset(faces_dir, kind):
    ds = _dataset(kind, faces_dir)
    item = ds[1]
    again = _dataset(kind, faces_dir)[1]
    assert item['params']['preset'] == 'realworld'
    out_key = 'query' if kind == 'UDRLPairDataset' else 'lq'
    assert torch.equal(item[out_key], again[out_key])  # deterministic mode: a function of (seed, index)
    shape = {'PaniniMFRDataset': 32, 'GFPGAN-eq10': 64, 'PaniniSRDataset': 16, 'UDRLPairDataset': 16}[kind]
    assert item[out_key].shape == (3, shape, shape)
    if kind == 'GFPGAN-eq10':
        assert item['loc_left_eye'].shape == (4,)
    if kind == 'PaniniSRDataset':  # the preset, not the bilinear downsampling
        from panininet.data.sr_pair_dataset import downsample
        bilinear = downsample(item['gt'], 16).clamp(0, 1)
        assert (item['lq'] - bilinear).abs().mean() > 1 / 255


def test_udrl_pairs_share_every_drawn_parameter(faces_dir):
    """Query and key: different faces, the same drawn realworld parameters (only the noise seeds are the key's own),
    and each is exactly that degradation of its face."""
    from panininet.data.data_util import to_tensor
    from panininet.data.degradations import resize
    ds = _dataset('UDRLPairDataset', faces_dir)
    item = ds[0]
    params = {k: v for k, v in item['params'].items() if not k.startswith('key_')}
    assert item['query_path'] != item['key_path']
    key_params = dict(params, noise1_seed=item['params']['key_noise1_seed'],
                      noise2_seed=item['params']['key_noise2_seed'])
    assert key_params['noise1_seed'] != params['noise1_seed']
    for img_key, path, p in (('query', item['query_path'], params), ('key', item['key_path'], key_params)):
        hq = resize(cv2.imread(path), 32, 'area')
        lq = make_lq(hq, 32, p, ds.sampler)
        assert torch.allclose(item[img_key], to_tensor(resize(lq, 16, 'area')), atol=1e-6), img_key


def test_degrade_in_model_gives_the_dataset_pairs_parameters(faces_dir):
    """degrade_in_model: the dataset hands the chain's input and the drawn parameters to the model, whose
    lq_on_device makes the LQ with degrade_batch (normalised as the dataset would)."""
    from panininet.models.base_model import PaniniBaseModel
    ds = _dataset('PaniniMFRDataset', faces_dir, degrade_in_model=True)
    batch = default_collate([ds[0], ds[2]])
    assert 'lq' not in batch and batch['lq_source'].shape == (2, 3, 32, 32)
    host = PaniniBaseModel.__new__(PaniniBaseModel)
    host.device = torch.device('cpu')
    out = PaniniBaseModel.lq_on_device(host, batch)
    ref = degrade_batch(batch['lq_source'], batch['params']) * 2 - 1
    assert torch.allclose(out['lq'], ref, atol=1e-6) and out['gt'] is batch['gt']
    cpu = _dataset('PaniniMFRDataset', faces_dir)  # same seed, degraded in the worker
    assert (out['lq'][0] - cpu[0]['lq']).abs().mean() < 0.1  # same parameters, other noise/JPEG implementation
    with pytest.raises(ValueError, match='degrade_in_model'):
        _dataset('PaniniMFRDataset', faces_dir, degrade_in_model=True, gray_prob=0.1)


def test_make_degraded_set_records_every_drawn_parameter(faces_dir, tmp_path):
    import importlib.util
    spec = importlib.util.spec_from_file_location('mds', osp.join(REPO, 'scripts', 'make_degraded_set.py'))
    mds = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mds)
    out = str(tmp_path / 'out')
    assert mds.main(['-i', faces_dir, '-o', out, '--preset', 'realworld', '--size', '32', '--hq-size', '64']) == 0
    meta = json.load(open(osp.join(out, 'params.json')))
    sampler = SecondOrderDegradation()
    drawn = set(sampler.sample(seeded_rng(0, 0)))
    assert len(meta['items']) == 3
    for row in meta['items']:
        assert drawn <= set(row), drawn - set(row)
        hq = mds.read_hq(row['source'], 64)
        lq = make_lq(hq, 32, {k: row[k] for k in drawn}, sampler)
        png = cv2.imread(osp.join(out, row['file'])).astype(np.float32) / 255
        assert np.abs(png - lq).max() <= 0.5 / 255 + 1e-6  # the recorded parameters reproduce the image
    assert os.path.isfile(osp.join(out, 'params.csv'))


@pytest.mark.parametrize(('name', 'base'), [('train_panini_mfr_realworld.yml', 'train_panini_mfr.yml'),
                                            ('train_mmrb_realworld.yml', 'train_mmrb.yml')])
def test_realworld_options_files(faces_dir, name, base):
    """The realworld options files are their base files with the realworld preset in both dataset blocks (nothing
    else differs but the name), and those blocks build at a tiny size."""
    import yaml
    from basicsr.utils.registry import DATASET_REGISTRY
    with open(osp.join(REPO, 'options', name)) as f:
        opt = yaml.safe_load(f)
    with open(osp.join(REPO, 'options', base)) as f:
        ref = yaml.safe_load(f)
    first_order = ('degradation_preset', 'blur_sigma', 'downsample_range', 'r_base', 'noise_range', 'jpeg_range',
                   'blur_kernel_size', 'motion_prob', 'motion_length_range', 'upsample_last')
    ours = ('degradation_preset', 'degradation_scale', 'gt_usm', 'degrade_in_model')
    for phase in ('train', 'val'):
        assert opt['datasets'][phase]['degradation_preset'] == 'realworld'
        assert ({k: v for k, v in opt['datasets'][phase].items() if k not in ours}
                == {k: v for k, v in ref['datasets'][phase].items() if k not in first_order})
    assert {k: v for k, v in opt.items() if k not in ('name', 'datasets')} == \
        {k: v for k, v in ref.items() if k not in ('name', 'datasets')}
    for phase in ('train', 'val'):
        ds_opt = dict(opt['datasets'][phase], dataroot_gt=faces_dir, out_size=64, in_size=32, phase=phase,
                      component_path=None)
        item = DATASET_REGISTRY.get(ds_opt['type'])(ds_opt)[0]
        assert item['lq'].shape == (3, 32, 32) and item['params']['preset'] == 'realworld'


def test_gt_usm_is_basicsrs_usm_sharp(faces_dir):
    """gt_usm: the GT (and the chain's input) is basicsr's usm_sharp of the HQ face, as Real-ESRNet's gt_usm."""
    from basicsr.utils.img_process_util import usm_sharp

    from panininet.data.data_util import to_tensor
    img = np.rint(face(7, 64) * 255).astype(np.uint8)
    sharp = SecondOrderDegradation(gt_usm=True).prepare_gt(img)
    np.testing.assert_allclose(sharp, usm_sharp(img.astype(np.float32) / 255), atol=1e-6)
    assert np.abs(sharp - img / 255).max() > 0.01  # it did sharpen
    assert SecondOrderDegradation().prepare_gt(img) is img
    ds = _dataset('PaniniMFRDataset', faces_dir, gt_usm=True, mean=None, std=None, out_size=64)
    gt = cv2.imread(ds.paths[0])
    assert torch.allclose(ds[0]['gt'], to_tensor(usm_sharp(gt.astype(np.float32) / 255).astype(np.float32)),
                          atol=1e-6)
