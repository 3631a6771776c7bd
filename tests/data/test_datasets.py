"""MFR / UDRL / SR pair datasets: sizes, ranges, reproducibility, alignment, backends and error messages."""
import os
import os.path as osp

import cv2
import numpy as np
import pytest
import torch
import yaml
from basicsr.data import build_dataset
from torch.utils.data import DataLoader

from panininet.data.mfr_pair_dataset import PaniniMFRDataset
from panininet.data.sr_pair_dataset import PaniniSRDataset
from panininet.data.udrl_pair_dataset import UDRLPairDataset

HQ = 64  # HQ side of the synthetic faces; LQ sides below are 32 (MFR) and 16 / 32 (UDRL, SR)


def _make_image(i, size=HQ):
    """A distinct, asymmetric image per i (so flips and swaps are detectable), uint8 BGR."""
    rng = np.random.default_rng(100 + i)
    yy, xx = np.mgrid[0:size, 0:size] / size
    img = np.stack([128 + 100 * np.sin((3 + i) * xx + 2 * yy), 128 + 90 * np.cos((2 + i) * yy),
                    64 + 160 * xx], axis=2)
    img += rng.normal(0, 6, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


@pytest.fixture(scope='module')
def hq_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp('hq')
    for i in range(5):
        cv2.imwrite(str(d / f'{i:05d}.png'), _make_image(i))
    return str(d)


def _mfr_opt(root, **kw):
    opt = dict(dataroot_gt=root, io_backend={'type': 'disk'}, out_size=HQ, in_size=32, mean=0.5, std=0.5,
               phase='val', seed=0)
    opt.update(kw)
    return opt


def _no_degradation(**kw):
    return dict(blur_sigma=0, downsample_range=10, noise_range=0, use_jpeg=False, **kw)


def test_mfr_sizes_range_and_params(hq_dir):
    ds = PaniniMFRDataset(_mfr_opt(hq_dir))
    assert len(ds) == 5
    item = ds[2]
    assert item['lq'].shape == (3, 32, 32) and item['gt'].shape == (3, HQ, HQ)
    assert item['lq'].dtype == torch.float32 and item['gt'].dtype == torch.float32
    for key in ('lq', 'gt'):
        assert item[key].min() >= -1 and item[key].max() <= 1
    assert item['gt'].min() < -0.3 and item['gt'].max() > 0.3  # really [-1, 1], not [0, 1]
    assert item['gt_path'].endswith('00002.png') and item['lq_path'] == item['gt_path']
    p = item['params']
    assert 0.2 <= p['sigma'] <= 10 and 10 <= p['r'] <= 200 and 0 <= p['delta'] <= 25 and 5 <= p['q'] <= 50
    # GT is the HQ image in RGB order, (x - 0.5) / 0.5
    ref = cv2.imread(osp.join(hq_dir, '00002.png'))[:, :, ::-1].astype(np.float32) / 255.
    assert torch.allclose(item['gt'], torch.from_numpy(ref.transpose(2, 0, 1).copy()) * 2 - 1, atol=1e-6)


def test_mfr_no_normalisation_gives_0_1(hq_dir):
    item = PaniniMFRDataset(_mfr_opt(hq_dir, mean=None, std=None))[0]
    assert item['gt'].min() >= 0 and item['gt'].max() <= 1 and item['gt'].max() > 0.5


def test_mfr_deterministic_mode_depends_on_seed_and_index_only(hq_dir):
    a = PaniniMFRDataset(_mfr_opt(hq_dir))
    b = PaniniMFRDataset(_mfr_opt(hq_dir))
    np.random.seed(123)
    state = np.random.get_state()
    first = a[3]
    assert np.array_equal(np.random.get_state()[1], state[1])  # global RNG untouched
    np.random.seed(999)
    torch.manual_seed(999)
    _ = b[1]  # other items in between do not matter
    second = b[3]
    assert torch.equal(first['lq'], second['lq']) and first['params'] == second['params']
    assert a[3]['params'] != a[4]['params']
    other_seed = PaniniMFRDataset(_mfr_opt(hq_dir, seed=1))[3]
    assert other_seed['params'] != first['params']


def test_mfr_training_mode_is_random(hq_dir):
    ds = PaniniMFRDataset(_mfr_opt(hq_dir, phase='train'))
    assert not ds.deterministic
    assert ds[0]['params'] != ds[0]['params']
    assert PaniniMFRDataset(_mfr_opt(hq_dir, phase='train', deterministic=True)).deterministic


def test_mfr_hflip_keeps_pairs_aligned(hq_dir):
    ds = PaniniMFRDataset(_mfr_opt(hq_dir, in_size=HQ, use_hflip=True, phase='train', **_no_degradation()))
    flips = set()
    for _ in range(12):
        item = ds[1]
        assert torch.equal(item['lq'], item['gt'])  # no degradation: LQ must be GT exactly, flipped or not
        ref = cv2.imread(osp.join(hq_dir, '00001.png'))[:, :, ::-1].astype(np.float32) / 255. * 2 - 1
        ref = torch.from_numpy(ref.transpose(2, 0, 1).copy())
        flipped = item['params']['hflip']
        assert torch.allclose(item['gt'], ref.flip(-1) if flipped else ref, atol=1e-6)
        flips.add(flipped)
    assert flips == {True, False}


def test_mfr_colour_options(hq_dir):
    gray = PaniniMFRDataset(_mfr_opt(hq_dir, gray_prob=1.0))[0]
    assert gray['params']['gray']
    assert torch.allclose(gray['lq'][0], gray['lq'][1]) and torch.allclose(gray['gt'][0], gray['gt'][2])
    base = _mfr_opt(hq_dir, **_no_degradation())
    plain = PaniniMFRDataset(base)[0]
    jit = PaniniMFRDataset(dict(base, color_jitter_prob=1.0, color_jitter_shift=20))[0]
    shift = (jit['lq'] - plain['lq']).flatten(1).median(dim=1).values * 255 / 2  # per channel, 0..255 scale
    assert (shift.abs() <= 20.01).all() and shift.abs().max() > 0.5
    assert torch.equal(jit['gt'], plain['gt'])  # jitter acts on the LQ only (as GFP-GAN)


def test_mfr_collates_with_dataloader(hq_dir):
    loader = DataLoader(PaniniMFRDataset(_mfr_opt(hq_dir)), batch_size=2, num_workers=0)
    batch = next(iter(loader))
    assert batch['lq'].shape == (2, 3, 32, 32) and batch['params']['r'].shape == (2,)


def test_udrl_pairs_share_params_and_differ_in_content(hq_dir):
    opt = dict(dataroot_gt=hq_dir, degrade_size=32, out_size=16, mean=0.5, std=0.5, phase='val', seed=0)
    ds = UDRLPairDataset(opt)
    for i in range(len(ds)):
        item = ds[i]
        assert item['query'].shape == (3, 16, 16) and item['key'].shape == (3, 16, 16)
        assert item['query_path'] != item['key_path']
        assert item['params']['key_index'] != i
        assert item['query_path'].endswith(f'{i:05d}.png')
        assert (item['query'] - item['key']).abs().mean() > 0.05
        assert item['query'].min() >= -1 and item['query'].max() <= 1
    a, b = ds[0], ds[0]  # deterministic mode: the pair (key choice, params, noise) depends on (seed, i) only
    assert torch.equal(a['query'], b['query']) and torch.equal(a['key'], b['key'])


def test_udrl_same_params_give_same_degradation(tmp_path):
    """Two copies of one image with the noise off: a pair sharing parameters must come out identical."""
    for name in ('a.png', 'b.png'):
        cv2.imwrite(str(tmp_path / name), _make_image(0))
    ds = UDRLPairDataset(dict(dataroot_gt=str(tmp_path), degrade_size=32, out_size=16, noise_range=0,
                              phase='train'))
    for _ in range(5):
        item = ds[0]
        assert item['params']['delta'] == 0
        assert torch.equal(item['query'], item['key'])


def test_udrl_needs_two_images(tmp_path):
    cv2.imwrite(str(tmp_path / 'a.png'), _make_image(0))
    with pytest.raises(RuntimeError, match='at least two'):
        UDRLPairDataset(dict(dataroot_gt=str(tmp_path)))


def test_sr_pairs(hq_dir):
    ds = PaniniSRDataset(dict(dataroot_gt=hq_dir, out_size=HQ, in_size=16, mean=0.5, std=0.5, phase='val'))
    item = ds[0]
    assert item['lq'].shape == (3, 16, 16) and item['gt'].shape == (3, HQ, HQ)
    assert item['lq'].min() >= -1 and item['lq'].max() <= 1
    # 8-bit values, and the LQ is the 4x4 smoothed GT
    lq01 = (item['lq'] + 1) / 2 * 255
    assert torch.allclose(lq01, lq01.round(), atol=1e-3)
    pooled = torch.nn.functional.avg_pool2d(item['gt'][None], 4)[0]
    assert (item['lq'] - pooled).abs().mean() < 0.03
    with pytest.raises(ValueError, match='lq_interpolation'):
        PaniniSRDataset(dict(dataroot_gt=hq_dir, lq_interpolation='magic'))


def test_sr_reproduces_official_examples(shared_dir):
    """The official 64 x 64 SR inputs are the anti-aliased bilinear downsampling of the 1024 GT."""
    root = osp.join(shared_dir, 'testdata', 'panini_examples')
    ds = PaniniSRDataset(dict(dataroot_gt=osp.join(root, 'GT'), out_size=1024, in_size=64, phase='val'))
    names = [osp.basename(p) for p in ds.paths]
    for stem in ('00002', '00005'):
        item = ds[names.index(stem + '.jpg')]
        official = cv2.imread(osp.join(root, 'SR', stem + '.png'))[:, :, ::-1].astype(np.float32)
        ours = item['lq'].numpy().transpose(1, 2, 0) * 255
        assert np.abs(ours - official).mean() < 1.0, stem  # cv2.INTER_LINEAR (aliased) is ~5-6 grey levels off


@pytest.mark.parametrize('name', ['data_mfr', 'data_udrl', 'data_sr'])
def test_options_files_build(name, repo_root, hq_dir):
    with open(osp.join(repo_root, 'options', f'{name}.yml')) as f:
        opt = yaml.safe_load(f)
    for phase, dopt in opt['datasets'].items():
        dopt = dict(dopt, dataroot_gt=hq_dir, phase=phase)
        for key, small in (('out_size', 32 if name == 'data_udrl' else HQ), ('in_size', 16), ('degrade_size', 32)):
            if key in dopt:
                dopt[key] = small
        ds = build_dataset(dopt)
        item = ds[0]
        big = item['gt'] if 'gt' in item else item['query']
        assert big.dtype == torch.float32 and big.min() >= -1 and big.max() <= 1


# --- backends and errors ---------------------------------------------------------------------------------------

def test_lmdb_backend(hq_dir, tmp_path):
    from basicsr.utils.lmdb_util import make_lmdb_from_imgs
    names = sorted(os.listdir(hq_dir))
    lmdb_path = str(tmp_path / 'hq.lmdb')
    make_lmdb_from_imgs(hq_dir, lmdb_path, names, [osp.splitext(n)[0] for n in names])
    disk = PaniniMFRDataset(_mfr_opt(hq_dir))
    lmdb = PaniniMFRDataset(_mfr_opt(lmdb_path, io_backend={'type': 'lmdb'}))
    assert len(lmdb) == len(disk) and lmdb.paths[0] == '00000'
    assert torch.equal(lmdb[1]['gt'], disk[1]['gt']) and torch.equal(lmdb[1]['lq'], disk[1]['lq'])
    with pytest.raises(FileNotFoundError, match='nowhere.lmdb'):
        PaniniMFRDataset(_mfr_opt(str(tmp_path / 'nowhere.lmdb'), io_backend={'type': 'lmdb'}))
    with pytest.raises(ValueError, match='.lmdb'):
        PaniniMFRDataset(_mfr_opt(hq_dir, io_backend={'type': 'lmdb'}))
    broken = PaniniMFRDataset(_mfr_opt(lmdb_path, io_backend={'type': 'lmdb'}))
    broken.paths = ['missing_key']
    with pytest.raises(KeyError, match='missing_key'):
        broken[0]


def test_meta_info_list(hq_dir, tmp_path):
    meta = tmp_path / 'meta.txt'
    meta.write_text('00003.png (64,64,3) 1\n00001.png\n')
    ds = PaniniMFRDataset(_mfr_opt(hq_dir, meta_info=str(meta)))
    assert [osp.basename(p) for p in ds.paths] == ['00003.png', '00001.png']
    with pytest.raises(FileNotFoundError, match='no_meta.txt'):
        PaniniMFRDataset(_mfr_opt(hq_dir, meta_info=str(tmp_path / 'no_meta.txt')))


@pytest.mark.parametrize('cls', [PaniniMFRDataset, UDRLPairDataset, PaniniSRDataset])
def test_missing_and_empty_dataroot(cls, tmp_path):
    missing = str(tmp_path / 'does_not_exist')
    with pytest.raises(FileNotFoundError, match='does_not_exist'):
        cls(dict(dataroot_gt=missing))
    empty = tmp_path / 'empty_folder'
    empty.mkdir()
    (empty / 'notes.txt').write_text('not an image')
    with pytest.raises(RuntimeError, match='empty_folder'):
        cls(dict(dataroot_gt=str(empty)))
    with pytest.raises(ValueError, match='dataroot_gt'):
        cls({})


def test_unreadable_image_names_the_file(tmp_path):
    cv2.imwrite(str(tmp_path / 'good.png'), _make_image(0))
    (tmp_path / 'broken.png').write_bytes(b'this is not a png')
    ds = PaniniMFRDataset(_mfr_opt(str(tmp_path)))
    names = [osp.basename(p) for p in ds.paths]
    with pytest.raises(OSError, match='broken.png'):
        ds[names.index('broken.png')]
    ds.paths = [str(tmp_path / 'vanished.png')]
    with pytest.raises(FileNotFoundError, match='vanished.png'):
        ds[0]
