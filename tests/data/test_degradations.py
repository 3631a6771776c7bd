"""Eq. (10): each parameter does what it says, measured on images made here; the sampler honours its ranges."""
import cv2
import numpy as np
import pytest

from panininet.data import degradations as D
from panininet.data.degradation_sampler import PRESETS, DegradationSampler, make_lq, seeded_rng
from panininet.data.degradations import degrade, down_up


def _texture(size=128, seed=0):
    """Smooth shapes plus fine texture, float32 BGR in [0.1, 0.9]."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    base = 0.5 + 0.2 * np.sin(6 * xx + 3 * yy)[..., None] * np.array([1, 0.8, 0.6], np.float32)
    fine = cv2.GaussianBlur(rng.standard_normal((size, size, 3)).astype(np.float32), (0, 0), 0.7) * 0.15
    return np.clip(base + fine, 0.1, 0.9).astype(np.float32)


def _smooth(size=128):
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    img = 0.3 + 0.4 * (0.5 + 0.5 * np.sin(5 * xx) * np.cos(4 * yy))
    return np.repeat(img[..., None], 3, axis=2).astype(np.float32)


def _hf_energy(img):
    """Energy above a quarter of the Nyquist frequency (grey image, DC removed)."""
    g = img.mean(axis=2)
    f = np.fft.fftshift(np.fft.fft2(g - g.mean()))
    h, w = g.shape
    yy, xx = np.mgrid[-h // 2:h - h // 2, -w // 2:w - w // 2]
    mask = np.sqrt((yy / (h / 2)) ** 2 + (xx / (w / 2)) ** 2) > 0.25
    return float((np.abs(f[mask]) ** 2).sum() / (h * w))


def _blockiness(img):
    """Mean |horizontal+vertical step| across 8x8 block borders over the mean step inside blocks."""
    g = img.mean(axis=2) * 255
    dx, dy = np.abs(np.diff(g, axis=1)), np.abs(np.diff(g, axis=0))
    border_x = (np.arange(dx.shape[1]) % 8) == 7
    border_y = (np.arange(dy.shape[0]) % 8) == 7
    across = np.concatenate([dx[:, border_x].ravel(), dy[border_y, :].ravel()]).mean()
    inside = np.concatenate([dx[:, ~border_x].ravel(), dy[~border_y, :].ravel()]).mean()
    return across / (inside + 1e-6)


def test_identity_exact_and_near_identity_with_jpeg():
    img = _texture()
    out = degrade(img, sigma=0, r=10, delta=0, q=None)
    assert out.dtype == np.float32 and out.shape == img.shape
    assert np.array_equal(out, img)
    out_q = degrade(img, sigma=0, r=10, delta=0, q=95)
    assert not np.array_equal(out_q, img)
    assert np.array_equal(out_q, D.jpeg(img, 95))  # unchanged up to the JPEG step
    # r_base 1 (GFP-GAN units): r = 1 is the identity as well
    assert np.array_equal(degrade(img, 0, 1, 0, None, r_base=1), img)


@pytest.mark.parametrize('delta', [2.0, 10.0, 25.0])
def test_noise_std_on_flat_image(delta):
    img = np.full((96, 96, 3), 0.5, np.float32)
    out = degrade(img, 0, 10, delta, None, rng=np.random.default_rng(0))
    std = (out - img).std() * 255
    assert std == pytest.approx(delta, rel=0.03)
    assert abs((out - img).mean() * 255) < 0.1 * delta + 0.05
    # independent per channel (colour noise, as basicsr's default)
    res = (out - img).reshape(-1, 3)
    assert abs(np.corrcoef(res.T)[0, 1]) < 0.05


def test_noise_is_clipped_and_uses_given_rng():
    img = np.full((32, 32, 3), 0.99, np.float32)
    a = degrade(img, 0, 10, 25, None, rng=np.random.default_rng(3))
    b = degrade(img, 0, 10, 25, None, rng=np.random.default_rng(3))
    assert a.max() <= 1 and a.min() >= 0
    assert np.array_equal(a, b)


def test_lower_q_smaller_file_and_blockier(monkeypatch):
    sizes = []
    real = cv2.imencode

    def spy(ext, img, params=None):
        ok, buf = real(ext, img, params)
        sizes.append(len(buf))
        return ok, buf

    monkeypatch.setattr(cv2, 'imencode', spy)
    img = _smooth(128) + _texture(128, seed=1) * 0.05
    img = img.astype(np.float32)
    outs = {q: degrade(img, 0, 10, 0, q) for q in (10, 30, 50, 90)}
    qs = sorted(outs)
    assert sizes == sorted(sizes), f'file size should grow with q: {dict(zip(qs, sizes))}'
    blk = {q: _blockiness(outs[q]) for q in qs}
    assert blk[10] > blk[30] > blk[50] > blk[90], blk
    assert blk[10] > 1.5
    err = {q: np.abs(outs[q] - img).mean() for q in qs}
    assert err[10] > err[50] > err[90]


def test_jpeg_quality_must_be_valid():
    with pytest.raises(ValueError, match='quality'):
        degrade(_texture(32), 0, 10, 0, 150)


def test_larger_r_removes_more_high_frequency_energy():
    img = _texture(128)
    energies = [_hf_energy(degrade(img, 0, r, 0, None)) for r in (10, 16, 32, 64, 128)]
    assert all(a > b for a, b in zip(energies, energies[1:])), energies
    assert energies[-1] < 0.2 * energies[0]


def test_larger_sigma_removes_more_high_frequency_energy():
    img = _texture(128)
    energies = [_hf_energy(degrade(img, s, 10, 0, None)) for s in (0, 0.5, 1, 2, 4)]
    assert all(a > b for a, b in zip(energies, energies[1:])), energies


def test_down_up_sizes():
    img = _texture(64)
    assert down_up(img, 200).shape == img.shape  # factor 20: a 3 x 3 image, back to 64 x 64
    tiny = down_up(img, 10000)  # factor 1000: 1 x 1 pixel -> flat
    assert tiny.shape == img.shape and np.ptp(tiny[..., 0]) < 1e-6
    # gray (h, w) and single-channel images keep their shape
    assert down_up(img[..., 0], 32).shape == (64, 64)
    assert degrade(img[..., :1].copy(), 1, 32, 5, 30).shape == (64, 64, 1)


def test_bad_inputs():
    with pytest.raises(TypeError, match='float32'):
        degrade((_texture(32) * 255).astype(np.uint8), 0, 10, 0, None)
    with pytest.raises(ValueError, match='sigma'):
        degrade(_texture(32), -1, 10, 0, None)
    with pytest.raises(ValueError, match='delta'):
        degrade(_texture(32), 0, 10, -1, None)
    with pytest.raises(ValueError, match='r_base'):
        degrade(_texture(32), 0, 0, 0, None)
    with pytest.raises(ValueError, match='interpolation'):
        degrade(_texture(32), 0, 20, 0, None, down='lanczos9')


@pytest.mark.parametrize('preset', sorted(PRESETS))
def test_sampler_honours_preset_ranges(preset):
    s = DegradationSampler(preset)
    rng = np.random.default_rng(0)
    ps = [s.sample(rng) for _ in range(3000)]
    ref = PRESETS[preset]
    for key, rk in (('sigma', 'sigma_range'), ('r', 'r_range'), ('delta', 'delta_range'), ('q', 'q_range')):
        vals = np.array([p[key] for p in ps], float)
        lo, hi = ref[rk]
        assert vals.min() >= lo and vals.max() <= hi, key
        # uniform: covers the range (within 2 % of each end) and the mean is central
        assert vals.min() - lo < 0.02 * (hi - lo) + 1e-9 and hi - vals.max() < 0.02 * (hi - lo) + 1e-9, key
        assert vals.mean() == pytest.approx((lo + hi) / 2, rel=0.05), key
    qs = {p['q'] for p in ps}
    assert all(isinstance(p['q'], int) for p in ps) and qs == set(range(ref['q_range'][0], ref['q_range'][1] + 1))
    assert all(p['scale'] == pytest.approx(p['r'] / ref['r_base']) for p in ps)


def test_sampler_overrides_fixed_values_and_jpeg_off():
    s = DegradationSampler('panini_mfr', sigma_range=2.0, r_range=[16, 16], delta_range=0, jpeg=False)
    p = s.sample(np.random.default_rng(0))
    assert p == dict(sigma=2.0, r=16.0, delta=0.0, q=None, r_base=10.0, scale=1.6)
    s2 = DegradationSampler.from_opt({'degradation_preset': 'gfpgan', 'jpeg_range': [70, 70]})
    p2 = s2.sample(np.random.default_rng(0))
    assert p2['q'] == 70 and 1 <= p2['r'] <= 8 and p2['r_base'] == 1


@pytest.mark.parametrize('kwargs', [dict(preset='nope'), dict(sigma_range=[3, 1]), dict(r_range=[0, 5]),
                                    dict(q_range=[5, 120]), dict(delta_range=[-1, 2]), dict(preset=None)])
def test_sampler_rejects_bad_settings(kwargs):
    with pytest.raises(ValueError):
        DegradationSampler(**kwargs)


def test_seeded_rng_is_a_function_of_seed_and_index_only():
    state = np.random.get_state()
    a = seeded_rng(7, 3).random(5)
    np.random.random(10)  # global state changes must not matter
    b = seeded_rng(7, 3).random(5)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, seeded_rng(7, 4).random(5))
    assert not np.array_equal(a, seeded_rng(8, 3).random(5))
    np.random.set_state(state)
    s0 = np.random.get_state()
    seeded_rng(1, 1).random(3)
    assert np.array_equal(np.random.get_state()[1], s0[1])
    with pytest.raises(ValueError):
        seeded_rng(-1, 0)


def test_make_lq_runs_at_the_lq_size():
    hq = np.repeat(np.repeat(_texture(32), 4, axis=0), 4, axis=1)  # 128 x 128
    s = DegradationSampler(None, sigma_range=0, r_range=10, delta_range=0, q_range=None, r_base=10, jpeg=False)
    lq = make_lq(hq, 32, s.sample(np.random.default_rng(0)), s)
    assert lq.shape == (32, 32, 3)
    # no degradation: the area resize of the 4x nearest-upsampled texture gives the texture back
    assert np.abs(lq - _texture(32)).max() < 1e-5


# ---------------------------------------------------------------------------------------------------------------------
# MMRB-Net eq. (17): motion blur and the 41 kernel
# ---------------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(('length', 'angle'), [(1.0, 0.0), (9.0, 0.0), (9.0, np.pi / 2), (20.0, 0.7), (40.0, 2.5)])
def test_motion_kernel_is_a_normalised_line(length, angle):
    k = D.motion_blur_kernel(length, angle, 41)
    assert k.shape == (41, 41) and k.dtype == np.float32 and k.sum() == pytest.approx(1, abs=1e-6)
    assert np.allclose(k, k[::-1, ::-1])  # point symmetric: filter2D's correlation is the convolution
    # mass lies along the direction: the second moment along it is length^2 / 12, across it ~0
    yy, xx = np.mgrid[0:41, 0:41] - 20.0
    along = xx * np.cos(angle) - yy * np.sin(angle)
    across = xx * np.sin(angle) + yy * np.cos(angle)
    assert (k * along**2).sum() == pytest.approx(length**2 / 12, rel=0.1, abs=0.2)
    assert (k * across**2).sum() < 0.3


def test_motion_blur_smooths_along_its_direction_only():
    stripes_v = np.repeat(np.tile(np.array([0.2, 0.8], np.float32), 32)[None, :, None], 64, 0).repeat(3, 2)
    horizontal = D.motion_blur(stripes_v, 8, 0.0)  # along x: averages the vertical stripes away
    vertical = D.motion_blur(stripes_v, 8, np.pi / 2)  # along y: the vertical stripes survive
    assert horizontal.shape == stripes_v.shape and horizontal.dtype == np.float32
    assert horizontal[:, 8:-8].std() < 0.02 and vertical[:, 8:-8].std() == pytest.approx(0.3, abs=0.01)
    assert D.motion_blur(stripes_v, 0, 1.0) is stripes_v


def test_gaussian_kernel_limit():
    img = _texture(96)
    assert np.array_equal(D.gaussian_blur(img, 2.0, 41), D.gaussian_blur(img, 2.0))  # 13 px kernel: no cut
    cut = D.gaussian_blur(img, 10.0, 41)  # 61 px kernel cut to 41: less smoothing than the full one
    assert _hf_energy(cut) > _hf_energy(D.gaussian_blur(img, 10.0))
    assert np.allclose(cut, cv2.GaussianBlur(img, (41, 41), 10.0, borderType=cv2.BORDER_REFLECT_101), atol=1e-6)
    with pytest.raises(ValueError, match='odd'):
        D.gaussian_blur(img, 1.0, 40)


def test_mmrb_preset_draws_both_blurs_and_applies_them():
    s = DegradationSampler('mmrb')
    assert s.kernel_size == 41 and s.r_base == 1.0 and s.r_range == (0.4, 8.0) and s.q_range == (5, 50)
    rng = np.random.default_rng(0)
    ps = [s.sample(rng) for _ in range(2000)]
    kinds = [p['blur'] for p in ps]
    assert 0.45 < kinds.count('motion') / len(kinds) < 0.55 and set(kinds) == {'motion', 'gaussian'}
    lengths = np.array([p['length'] for p in ps])
    assert lengths.min() >= 1 and lengths.max() <= 41 and lengths.mean() == pytest.approx(21, rel=0.05)
    assert all(0 <= p['angle'] <= np.pi for p in ps)
    img = _texture(64)
    base = dict(sigma=3.0, r=1.0, delta=0.0, q=None, r_base=1.0, scale=1.0, length=15.0, angle=0.0)
    motion = s.apply(img, dict(base, blur='motion'))
    gauss = s.apply(img, dict(base, blur='gaussian'))
    assert np.allclose(motion, D.motion_blur(img, 15.0, 0.0)) and np.allclose(gauss, D.gaussian_blur(img, 3.0, 41))
    # other presets draw exactly what they drew before (no motion keys, same stream)
    a, b = DegradationSampler('panini_mfr').sample(np.random.default_rng(3)), np.random.default_rng(3)
    assert 'blur' not in a and a['sigma'] == b.uniform(0.2, 10.0)


def test_upsample_last_adds_noise_and_jpeg_at_the_small_size():
    img = _smooth(64)
    out = degrade(img, 0, 4.0, 20.0, 30, r_base=1.0, rng=np.random.default_rng(5), upsample_last=True)
    small = D.resize(img, 16, 'area')
    manual = D.resize(D.jpeg(D.add_noise(small, 20.0, np.random.default_rng(5)), 30), 64, 'linear')
    assert out.shape == img.shape and np.array_equal(out, manual)
    # noise added before the resize back is smooth (4x upsampled); added after it is white: far more HF energy
    late = degrade(img, 0, 4.0, 20.0, None, r_base=1.0, rng=np.random.default_rng(5))
    early = degrade(img, 0, 4.0, 20.0, None, r_base=1.0, rng=np.random.default_rng(5), upsample_last=True)
    assert _hf_energy(early - img + 0.5) < 0.2 * _hf_energy(late - img + 0.5)
    assert DegradationSampler('mmrb').upsample_last and not DegradationSampler('panini_mfr').upsample_last
