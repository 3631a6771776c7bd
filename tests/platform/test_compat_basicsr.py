"""The compatibility layer: basicsr 1.4.2 imports and its StyleGAN2 runs forward/backward on CPU."""
import importlib
import logging
import math

import numpy as np
import pytest
import torch
from torch.nn import functional as F

import panininet
from panininet.data import degradations
from panininet.platform import compat_basicsr as compat
from panininet.platform import native_ops as ops


def test_import_basicsr_after_panininet():
    import basicsr
    import basicsr.data.degradations  # noqa: F401  (the module that needs functional_tensor)
    from torchvision.transforms.functional_tensor import rgb_to_grayscale
    assert basicsr.__version__.startswith('1.4')
    assert rgb_to_grayscale(torch.ones(3, 4, 4)).shape == (1, 4, 4)


def test_import_twice_registers_nothing_twice():
    from basicsr.utils.registry import ARCH_REGISTRY, DATASET_REGISTRY, MODEL_REGISTRY
    before = {r._name: set(r._obj_map) for r in (ARCH_REGISTRY, DATASET_REGISTRY, MODEL_REGISTRY)}
    importlib.reload(panininet.platform.compat_basicsr)  # re-applying patches is idempotent
    panininet.platform.compat_basicsr.apply()
    import panininet as again
    assert again is panininet
    after = {r._name: set(r._obj_map) for r in (ARCH_REGISTRY, DATASET_REGISTRY, MODEL_REGISTRY)}
    assert before == after


def test_op_path_is_reported(caplog):
    assert panininet.OP_PATH in ('cuda-kernels', 'native')
    compat._APPLIED = False
    with caplog.at_level(logging.INFO, logger='panininet'):
        assert compat.apply() == panininet.OP_PATH
    assert any('StyleGAN2 ops use' in r.getMessage() for r in caplog.records)


def _ref(x, b):
    return F.leaky_relu(x + b.view(1, -1, *([1] * (x.ndim - 2))), 0.2) * math.sqrt(2)


@pytest.mark.parametrize('shape', [(2, 5), (2, 5, 3, 4), (1, 3, 2, 2, 2)])
def test_native_fused_act_equals_reference(shape):
    from basicsr.ops.fused_act import FusedLeakyReLU, fused_leaky_relu
    x = torch.randn(shape)
    b = torch.randn(shape[1])
    torch.testing.assert_close(fused_leaky_relu(x, b), _ref(x, b), rtol=0, atol=1e-6)
    mod = FusedLeakyReLU(shape[1])
    with torch.no_grad():
        mod.bias.copy_(b)
    torch.testing.assert_close(mod(x), _ref(x, b), rtol=0, atol=1e-6)


def test_native_fused_act_gradcheck_and_gradgradcheck():
    from basicsr.ops.fused_act import fused_leaky_relu
    x = torch.randn(2, 3, 4, 4, dtype=torch.float64)
    x = x + 0.05 * torch.sign(x)  # keep away from the kink so finite differences are valid
    b = torch.randn(3, dtype=torch.float64) * 0.01
    x.requires_grad_(True)
    b.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x, b: fused_leaky_relu(x, b), (x, b))
    assert torch.autograd.gradgradcheck(lambda x, b: fused_leaky_relu(x, b), (x, b))


def test_stylegan2_forward_backward_cpu():
    from basicsr.archs.stylegan2_arch import StyleGAN2Discriminator, StyleGAN2Generator
    from basicsr.losses import r1_penalty
    g = StyleGAN2Generator(out_size=32, num_style_feat=64, num_mlp=2, channel_multiplier=1, narrow=0.5)
    d = StyleGAN2Discriminator(out_size=32, channel_multiplier=1, narrow=0.5)
    z = torch.randn(2, 64)
    img, _ = g([z], randomize_noise=False)
    assert img.shape == (2, 3, 32, 32) and torch.isfinite(img).all()
    logits = d(img)
    assert logits.shape == (2, 1)
    logits.mean().backward()
    assert all(p.grad is not None for p in g.style_convs.parameters() if p.requires_grad)

    # R1: gradient of D w.r.t. real images, differentiated again w.r.t. D's weights
    d.zero_grad()
    real = torch.randn(2, 3, 32, 32, requires_grad=True)
    r1 = r1_penalty(d(real), real)
    r1.backward()
    grads = [p.grad for p in d.parameters() if p.grad is not None]
    assert r1.item() > 0 and len(grads) > 0 and all(torch.isfinite(gr).all() for gr in grads)
    # the activations' biases get a second-order gradient (only possible with a correct double backward)
    assert d.final_linear[0].bias.grad is not None or d.conv_body[0][1].bias.grad is not None


def test_stylegan2_state_dict_keys_unchanged():
    from basicsr.archs.stylegan2_arch import StyleGAN2Generator
    g = StyleGAN2Generator(out_size=32, num_style_feat=64, num_mlp=2, channel_multiplier=1, narrow=0.5)
    keys = set(g.state_dict())
    assert 'style_conv1.activate.bias' in keys and 'noises.noise0' in keys and 'constant_input.weight' in keys
    g2 = StyleGAN2Generator(out_size=32, num_style_feat=64, num_mlp=2, channel_multiplier=1, narrow=0.5)
    g2.load_state_dict(g.state_dict(), strict=True)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA GPU')
@pytest.mark.skipif(compat._FusedLeakyReLUDispatch.compiled is None, reason='basicsr built without CUDA kernels')
def test_cuda_kernels_match_native():
    from basicsr.ops.upfirdn2d.upfirdn2d import upfirdn2d_native
    x = torch.randn(2, 8, 16, 16, device='cuda', requires_grad=True)
    b = torch.randn(8, device='cuda')
    out_k = compat._FusedLeakyReLUDispatch.compiled.apply(x, b, 0.2, math.sqrt(2))
    torch.testing.assert_close(out_k, ops.fused_leaky_relu_native(x, b), rtol=0, atol=1e-5)
    k = torch.tensor([1., 3., 3., 1.], device='cuda')
    k = (k[None] * k[:, None]) / 64
    out_k = compat._UpFirDn2dDispatch.compiled.apply(x, k, (2, 2), (1, 1), (2, 1, 2, 1))
    torch.testing.assert_close(out_k, upfirdn2d_native(x, k, 2, 2, 1, 1, 2, 1, 2, 1), rtol=0, atol=1e-5)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA GPU')
def test_stylegan2_runs_on_cuda_with_whatever_ops_exist():
    from basicsr.archs.stylegan2_arch import StyleGAN2Generator
    g = StyleGAN2Generator(out_size=32, num_style_feat=64, num_mlp=2, channel_multiplier=1, narrow=0.5).cuda()
    img, _ = g([torch.randn(1, 64, device='cuda')], randomize_noise=False)
    assert torch.isfinite(img).all()


def test_jpeg_float_quality_needs_and_gets_the_fix():
    import basicsr.data.degradations as deg
    import cv2
    img = np.random.RandomState(0).rand(32, 32, 3).astype(np.float32)
    # what basicsr 1.4.2 does: a float quality goes to cv2.imencode. OpenCV 5 rejects it.
    with pytest.raises(cv2.error):
        cv2.imencode('.jpg', img * 255., [int(cv2.IMWRITE_JPEG_QUALITY), 37.6])
    out = deg.random_add_jpg_compression(img, quality_range=(30, 40))  # uses the patched function
    assert out.shape == img.shape and out.dtype == np.float32
    assert deg.add_jpg_compression is degradations.add_jpg_compression is compat.add_jpg_compression  # alias kept
    jpeg = degradations.add_jpg_compression
    np.testing.assert_array_equal(jpeg(img, 37.6), jpeg(img, 38))


def test_exact_resume_is_installed_into_basicsr():
    import basicsr.train as train_mod

    from panininet import resume
    assert train_mod.EnlargedSampler is resume.ResumableEnlargedSampler
    assert isinstance(train_mod.load_resume_state.__self__, resume.ResumeHandoff)
    # the data-loader wrapper arms the sampler from the same handoff that loaded the state
    handoff = train_mod.load_resume_state.__self__
    assert handoff in [c.cell_contents for c in train_mod.create_train_val_dataloader.__closure__]


def test_diffjpeg_keeps_the_callers_quality_tensor():
    """basicsr's DiffJPEG.forward overwrote its quality argument with the quantisation factors (compat fix 7)."""
    from basicsr.utils import DiffJPEG
    quality = torch.tensor([50., 80.])
    out = DiffJPEG(differentiable=False)(torch.rand(2, 3, 16, 16), quality=quality)
    assert out.shape == (2, 3, 16, 16)
    assert quality.tolist() == [50., 80.]


def test_gray_gaussian_noise_pt_is_drawn_per_image():
    """basicsr's generate_gaussian_noise_pt gave every gray-noise image of a batch the same pattern (compat fix 7)."""
    from basicsr.data.degradations import add_gaussian_noise_pt, generate_gaussian_noise_pt
    noise = generate_gaussian_noise_pt(torch.zeros(2, 3, 8, 8), sigma=torch.tensor([10., 10.]),
                                       gray_noise=torch.tensor([1., 1.]))
    assert torch.equal(noise[0, 0], noise[0, 2]) and torch.equal(noise[1, 0], noise[1, 1])  # gray: one per image
    assert not torch.allclose(noise[0], noise[1])
    assert 5 / 255 < noise.std() < 15 / 255
    out = add_gaussian_noise_pt(torch.full((2, 3, 8, 8), 0.5), sigma=torch.tensor([10., 10.]),
                                gray_noise=torch.tensor([1., 1.]), clip=False)  # looks the fixed function up
    assert not torch.allclose(out[0], out[1])


def _frechet_distance(mu1, sigma1, mu2, sigma2):
    """The Frechet distance through symmetric square roots (eigh), independent of scipy.linalg.sqrtm."""
    def sym_sqrt(m):
        w, v = np.linalg.eigh(m)
        return (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    r1 = sym_sqrt(sigma1)
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(sigma1) + np.trace(sigma2)
                 - 2 * np.trace(sym_sqrt(r1 @ sigma2 @ r1)))


def test_fid_sqrtm_disp_needs_and_gets_the_fix(monkeypatch):
    import inspect

    import basicsr.metrics.fid as fid_mod
    import scipy.linalg
    rng = np.random.RandomState(0)
    a, b = rng.randn(6, 6), rng.randn(6, 6)
    s1, s2 = a @ a.T + np.eye(6), b @ b.T + np.eye(6)
    mu1, mu2 = rng.randn(6), rng.randn(6)
    expected = _frechet_distance(mu1, s1, mu2, s2)
    # basicsr's FID sees our sqrtm; scipy.linalg itself is untouched
    assert fid_mod.linalg.sqrtm is compat.sqrtm and scipy.linalg.sqrtm is not compat.sqrtm
    assert fid_mod.linalg.norm is scipy.linalg.norm
    root, err = fid_mod.linalg.sqrtm(s1 @ s2, disp=False)
    np.testing.assert_allclose(root @ root, s1 @ s2, rtol=1e-8, atol=1e-8)
    assert 0 <= err < 1e-10
    assert fid_mod.calculate_fid(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-8)
    # what basicsr 1.4.2 does without the fix: SciPy >= 1.18 has no ``disp`` and raises TypeError
    monkeypatch.setattr(fid_mod, 'linalg', scipy.linalg)
    if 'disp' in inspect.signature(scipy.linalg.sqrtm).parameters:  # SciPy < 1.18 (deprecated there)
        with pytest.warns(DeprecationWarning, match='disp'):
            assert fid_mod.calculate_fid(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-8)
    else:
        with pytest.raises(TypeError, match='disp'):
            fid_mod.calculate_fid(mu1, s1, mu2, s2)
