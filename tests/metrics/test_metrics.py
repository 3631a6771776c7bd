"""Metrics on known cases, with networks the tests make (nothing is downloaded)."""
import json
import math
import os.path as osp

import cv2
import lpips
import numpy as np
import pytest
import torch
from torch import nn
from torchvision import models as tv

from panininet import metrics as M

GOLDEN_HEADER = ('| method | n | PSNR↑ | SSIM↑ | LPIPS↓ | FID↓ | NIQE↓ | Deg.↓ |\n'
                 '|---|---|---|---|---|---|---|---|')


def smooth_image(seed, size=64):
    rng = np.random.default_rng(seed)
    img = rng.uniform(0, 255, (size, size, 3)).astype(np.float32)
    img = cv2.GaussianBlur(img, (0, 0), 3)
    img = (img - img.min()) / (img.max() - img.min()) * 200 + 28
    return img.round().astype(np.uint8)


class TinyFeatures(nn.Module):
    """(b, 3, h, w) -> (b, 8) features (a random conv and global average pooling)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, 2, 1)

    def forward(self, x):
        return torch.tanh(self.conv(x)).mean(dim=(2, 3))


class ChannelMeans(nn.Module):
    """Embedding = mean of each RGB channel + 1 (so pure red and pure green faces are orthogonal)."""

    def forward(self, x):
        return x.mean(dim=(2, 3)) + 1


def test_psnr_identical_is_inf_and_known_noise():
    gt = np.full((32, 32, 3), 128, np.uint8)
    assert M.psnr(gt, gt) == math.inf
    noisy = gt.astype(np.int16)
    noisy[::2] += 5
    noisy[1::2] -= 5  # |error| = 5 everywhere: MSE = 25
    assert M.psnr(noisy.astype(np.uint8), gt) == pytest.approx(10 * math.log10(255**2 / 25), abs=1e-9)


def test_ssim_identical_is_one_and_drops_with_noise():
    gt = smooth_image(0)
    assert M.ssim(gt, gt) == pytest.approx(1.0, abs=1e-9)
    rng = np.random.default_rng(1)
    noisy = np.clip(gt + rng.normal(0, 20, gt.shape), 0, 255).astype(np.uint8)
    assert M.ssim(noisy, gt) < 0.9


def test_niqe_prefers_the_clean_image():
    clean = cv2.resize(smooth_image(2, 96), (192, 192), interpolation=cv2.INTER_CUBIC)
    rng = np.random.default_rng(3)
    noisy = np.clip(clean + rng.normal(0, 25, clean.shape), 0, 255).astype(np.uint8)
    assert math.isfinite(M.niqe(clean))
    assert M.niqe(noisy) > M.niqe(clean)


@pytest.fixture(scope='module')
def tiny_lpips():
    # linear layers from the lpips wheel, random AlexNet trunk (pnet_rand=True: nothing downloaded)
    return M.LPIPSMetric(model=lpips.LPIPS(net='alex', pnet_rand=True, verbose=False))


def test_lpips_zero_on_identical_and_grows_with_noise(tiny_lpips):
    gt = smooth_image(4)
    rng = np.random.default_rng(5)
    noise = rng.normal(0, 1, gt.shape)
    mild = np.clip(gt + 5 * noise, 0, 255).astype(np.uint8)
    strong = np.clip(gt + 40 * noise, 0, 255).astype(np.uint8)
    assert tiny_lpips(gt, gt) == pytest.approx(0.0, abs=1e-7)
    assert 0 < tiny_lpips(mild, gt) < tiny_lpips(strong, gt)


def test_lpips_trunk_loads_from_a_local_torchvision_checkpoint(tmp_path):
    ref = tv.alexnet()
    path = str(tmp_path / 'alexnet.pth')
    torch.save(ref.state_dict(), path)
    model = lpips.LPIPS(net='alex', pnet_rand=True, verbose=False)
    M.load_lpips_trunk(model, path)
    assert torch.equal(getattr(model.net.slice1, '0').weight, ref.features[0].weight)
    assert torch.equal(getattr(model.net.slice5, '10').bias, ref.features[10].bias)
    torch.save({'other': torch.zeros(1)}, path)
    with pytest.raises(ValueError, match='not a torchvision alex checkpoint'):
        M.load_lpips_trunk(model, path)


def test_weights_missing_offline_give_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv('TORCH_HOME', str(tmp_path))
    with pytest.raises(FileNotFoundError, match='--inception PATH'):
        M.FIDMetric(download=False)
    with pytest.raises(FileNotFoundError, match='recognition_arcface_ir_se50.pth'):
        M.IdentityMetric(download=False)
    with pytest.raises(FileNotFoundError, match='vgg16-397923af.pth'):
        M.LPIPSMetric(download=False)
    with pytest.raises(FileNotFoundError, match='given by --arcface'):
        M.IdentityMetric(weights_path=str(tmp_path / 'nope.pth'))
    cached = tmp_path / 'hub' / 'checkpoints' / 'recognition_arcface_ir_se50.pth'
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b'x')
    assert M.resolve_weights(None, M.ARCFACE_URL, 'ArcFace', '--arcface', download=False) == str(cached)


def test_fid_of_a_set_with_itself_is_zero_and_a_shift_gives_its_square_norm():
    fid = M.FIDMetric(feature_net=TinyFeatures(), batch_size=5)
    imgs = [smooth_image(i, 32) for i in range(12)]
    feats = fid.features(imgs)
    assert feats.shape == (12, 8)
    assert M.FIDMetric.distance(feats, feats) == pytest.approx(0.0, abs=1e-6)
    shift = np.array([0.1, -0.2, 0.3, 0, 0, 0, 0, 0.05])
    # same covariance, means apart by `shift`: FID = |shift|^2
    assert M.FIDMetric.distance(feats + shift, feats) == pytest.approx(float(shift @ shift), rel=1e-4)
    other = fid.features([255 - img for img in imgs])
    assert M.FIDMetric.distance(other, feats) > 1e-3
    with pytest.raises(ValueError, match='at least 2'):
        M.FIDMetric.distance(feats[:1], feats)


def test_identity_angle_known_cases():
    ident = M.IdentityMetric(model=ChannelMeans(), input_size=16)
    red = np.zeros((64, 64, 3), np.uint8)
    red[..., 2] = 255  # BGR
    green = np.zeros((64, 64, 3), np.uint8)
    green[..., 1] = 255
    assert ident(red, red) == pytest.approx(0.0, abs=1e-5)
    assert ident(red, green) == pytest.approx(90.0, abs=1e-5)


def _write_set(folder, imgs, ext='.png'):
    folder.mkdir(parents=True, exist_ok=True)
    for i, img in enumerate(imgs):
        cv2.imwrite(str(folder / f'{i:03d}{ext}'), img)


def test_evaluate_folders_table_and_json(tmp_path, tiny_lpips):
    gts = [smooth_image(10 + i, 48) for i in range(4)]
    rng = np.random.default_rng(0)
    _write_set(tmp_path / 'gt', gts, '.jpg')
    _write_set(tmp_path / 'same', [cv2.imread(str(tmp_path / 'gt' / f'{i:03d}.jpg')) for i in range(4)])
    _write_set(tmp_path / 'noisy', [np.clip(g + rng.normal(0, 15, g.shape), 0, 255).astype(np.uint8) for g in gts])
    res = M.evaluate_folders(
        str(tmp_path / 'gt'), {'same': str(tmp_path / 'same'), 'noisy': str(tmp_path / 'noisy')},
        size=192, lpips_metric=tiny_lpips, fid_metric=M.FIDMetric(feature_net=TinyFeatures()),
        identity_metric=M.IdentityMetric(model=TinyFeatures(), input_size=32))
    same, noisy = res['methods']['same'], res['methods']['noisy']
    assert res['n'] == 4
    assert same['psnr'] == math.inf and same['ssim'] == pytest.approx(1.0)
    assert same['lpips'] == pytest.approx(0, abs=1e-7) and same['deg'] == pytest.approx(0, abs=1e-3)
    assert same['fid'] == pytest.approx(0, abs=1e-6)
    assert noisy['psnr'] < 40 and noisy['lpips'] > 0 and noisy['fid'] > 0
    assert set(noisy['runtime_s']) == set(M.METRIC_KEYS)
    table = M.results_to_markdown(res)
    assert table.startswith(GOLDEN_HEADER + '\n')
    assert table.splitlines()[2].startswith('| same | 4 | inf | 1.0000 | 0.0000 | ')
    text = json.dumps(M.json_safe(res), allow_nan=False)
    assert json.loads(text)['methods']['same']['psnr'] == 'inf'


def test_pairing_errors_name_the_problem(tmp_path):
    _write_set(tmp_path / 'gt', [smooth_image(0, 16)])
    _write_set(tmp_path / 'res', [smooth_image(0, 16)] * 2)
    with pytest.raises(ValueError, match='have no GT of the same name'):
        M.pair_folders(str(tmp_path / 'gt'), {'x': str(tmp_path / 'res')})
    with pytest.raises(FileNotFoundError, match='does not exist'):
        M.list_images(str(tmp_path / 'missing'))
    _write_set(tmp_path / 'big', [smooth_image(0, 32)])
    with pytest.raises(ValueError, match='at least 192x192'):
        M.niqe(smooth_image(0, 96))
    with pytest.raises(ValueError, match='pass a common --size'):
        M.evaluate_folders(str(tmp_path / 'gt'), {'big': str(tmp_path / 'big')}, metrics=('psnr',))
    assert osp.isdir(tmp_path / 'gt')


def _fid_inception_file(path, monkeypatch):
    """A weights file with the FID Inception's layout (random values): built with loading switched off."""
    from basicsr.archs import inception as inc
    from torchvision.models import Inception3

    monkeypatch.setattr(inc, 'load_url', lambda *a, **k: None)
    monkeypatch.setattr(Inception3, 'load_state_dict', lambda self, *a, **k: None)
    torch.save(inc.fid_inception_v3().state_dict(), path)
    monkeypatch.undo()


def test_real_metric_networks_load_from_local_files(tmp_path, monkeypatch):
    """FID Inception and ArcFace IR-SE50 built from local files (random weights here), on real-size inputs."""
    from facexlib.recognition.arcface_arch import Backbone

    inception = str(tmp_path / 'pt_inception.pth')
    _fid_inception_file(inception, monkeypatch)
    feats = M.FIDMetric(weights_path=inception).features([smooth_image(0, 64), smooth_image(1, 64)])
    assert feats.shape == (2, 2048) and np.isfinite(feats).all()

    arcface = str(tmp_path / 'arcface.pth')
    torch.save(Backbone(50, 0.6, 'ir_se').state_dict(), arcface)
    ident = M.IdentityMetric(weights_path=arcface)
    assert ident.embed(smooth_image(0, 128)).shape == (512,)
    assert ident(smooth_image(0, 128), smooth_image(0, 128)) == pytest.approx(0.0, abs=1e-3)
