"""panininet.platform.native_ops: the fast native upfirdn2d equals basicsr's ``upfirdn2d_native`` and is what basicsr
uses."""
import importlib
import itertools
import random

import pytest
import torch
from torch.nn import functional as F

from panininet.platform import compat_basicsr as compat
from panininet.platform import native_ops as ops

UP_MOD = importlib.import_module('basicsr.ops.upfirdn2d.upfirdn2d')
K4 = torch.outer(torch.tensor([1., 3, 3, 1]), torch.tensor([1., 3, 3, 1])) / 64  # basicsr's make_resample_kernel

# (kernel scale, up, down, pad) of every basicsr StyleGAN2 call site
STYLEGAN2_CALLS = {
    'to_rgb_upsample': (4, 2, 1, (2, 1)),  # UpFirDnUpsample
    'upconv_blur': (4, 1, 1, (1, 1)),  # UpFirDnSmooth(upsample_factor=2, kernel_size=3)
    'downconv_blur': (1, 1, 1, (2, 2)),  # UpFirDnSmooth(downsample_factor=2, kernel_size=3)
    'skip_blur': (1, 1, 1, (1, 1)),  # UpFirDnSmooth(downsample_factor=2, kernel_size=1)
    'downsample': (1, 1, 2, (1, 1)),  # UpFirDnDownsample
}


def _both(x, kernel, *args):
    return ops.upfirdn2d_fast(x, kernel, *args), compat.reference_upfirdn2d()(x, kernel, *args)


@pytest.mark.parametrize('site', sorted(STYLEGAN2_CALLS))
@pytest.mark.parametrize('size', [(1, 3, 8, 8), (2, 5, 9, 7)])
def test_stylegan2_call_sites_equal_reference(site, size):
    scale, up, down, (p0, p1) = STYLEGAN2_CALLS[site]
    x = torch.randn(size)
    fast, ref = _both(x, K4 * scale, up, up, down, down, p0, p1, p0, p1)
    assert fast.shape == ref.shape
    torch.testing.assert_close(fast, ref, rtol=0, atol=1e-5)


KERNELS = {
    'k4': K4,
    'k3': torch.outer(torch.tensor([1., 2, 1]), torch.tensor([1., 2, 1])) / 16,
    'k1': torch.tensor([[0.7]]),
    'non_separable_3x4': torch.tensor([[0.1, -0.3, 0.2, 0.05], [0.4, 0.0, -0.1, 0.3], [0.2, 0.1, 0.5, -0.2]]),
    'wide_1x5': torch.tensor([[0.1, 0.2, 0.4, 0.2, 0.1]]),
}


# every (up, down) pair with independent x/y factors up to 3, and a fixed random sample of paddings (negative ones
# crop); the full product (1728 per kernel) passes too but takes minutes on 2 cores
ALL_FACTORS = list(itertools.product([1, 2, 3], [1, 2], [1, 2, 3], [1, 2]))
PADS = list(itertools.product([-2, 0, 1, 2], [-1, 0, 3], [-1, 0, 2], [0, 1]))


@pytest.mark.parametrize('name', sorted(KERNELS))
def test_all_up_down_pad_combinations_equal_reference(name):
    kernel = KERNELS[name]
    x = torch.randn(2, 3, 7, 9)
    rng = random.Random(name)
    checked = 0
    for factors in ALL_FACTORS:
        for pads in rng.sample(PADS, 2):
            args = (*factors, *pads)
            try:
                ref = compat.reference_upfirdn2d()(x, kernel, *args)
            except RuntimeError:  # the reference cannot compute this one (empty output)
                continue
            if ref.numel() == 0:
                continue
            fast = ops.upfirdn2d_fast(x, kernel, *args)
            assert fast.shape == ref.shape, args
            assert (fast - ref).abs().max() <= 1e-5, args
            checked += 1
    assert checked > 50


def test_empty_output_and_bad_shapes_raise():
    with pytest.raises(ValueError, match='empty output'):
        ops.upfirdn2d_fast(torch.randn(1, 1, 2, 2), K4, 1, 1, 1, 1, -1, -1, 0, 0)
    with pytest.raises(ValueError, match=r'\(b, c, h, w\)'):
        ops.upfirdn2d_fast(torch.randn(3, 8, 8), K4, 1, 1, 1, 1, 1, 1, 1, 1)
    with pytest.raises(ValueError, match='>= 1'):
        ops.upfirdn2d_fast(torch.randn(1, 1, 8, 8), K4, 0, 1, 1, 1, 1, 1, 1, 1)


@pytest.mark.parametrize('site', sorted(STYLEGAN2_CALLS))
def test_gradcheck_and_gradgradcheck(site):
    """Backward and double backward (R1 differentiates through the discriminator's blur), float64."""
    scale, up, down, (p0, p1) = STYLEGAN2_CALLS[site]
    x = torch.randn(1, 1, 4, 5, dtype=torch.float64, requires_grad=True)
    kernel = (K4 * scale).double()

    def fn(inp):
        return ops.upfirdn2d_fast(inp, kernel, up, up, down, down, p0, p1, p0, p1)

    assert torch.autograd.gradcheck(fn, (x,))
    assert torch.autograd.gradgradcheck(fn, (x,))


def test_gradients_equal_reference_including_kernel_gradient():
    x = torch.randn(2, 3, 6, 5, dtype=torch.float64, requires_grad=True)
    kernel = KERNELS['non_separable_3x4'].double().requires_grad_()
    grads = []
    for op in (ops.upfirdn2d_fast, compat.reference_upfirdn2d()):
        out = op(x, kernel, 2, 1, 1, 2, 1, 2, 2, 0)
        grads.append(torch.autograd.grad(out.square().sum(), (x, kernel)))
    for fast, ref in zip(*grads):
        torch.testing.assert_close(fast, ref, rtol=1e-10, atol=1e-10)


def test_installed_by_default_and_toggle():
    assert compat.fast_ops_installed()
    assert UP_MOD.upfirdn2d_native is ops.upfirdn2d_fast
    assert compat._UpFirDn2dDispatch.native is ops.upfirdn2d_fast
    assert compat._FusedLeakyReLUDispatch.native is ops.fused_leaky_relu_fast
    assert compat.reference_upfirdn2d() is not ops.upfirdn2d_fast
    try:
        compat.install_fast_ops(fast=False)
        assert not compat.fast_ops_installed()
        assert compat._UpFirDn2dDispatch.native is compat.reference_upfirdn2d()
        assert compat._FusedLeakyReLUDispatch.native is None
    finally:
        compat.install_fast_ops()
    assert compat.fast_ops_installed()


@pytest.mark.parametrize('shape', [(2, 5), (2, 5, 3, 4), (1, 3, 2, 2, 2)])
def test_fused_leaky_relu_fast_is_bit_identical_and_keeps_autograd(shape):
    x = torch.randn(shape, requires_grad=True)
    bias = torch.randn(shape[1], requires_grad=True)
    with torch.no_grad():
        fast = ops.fused_leaky_relu_fast(x, bias)
        assert torch.equal(fast, ops.fused_leaky_relu_native(x, bias))
        no_bias = ops.fused_leaky_relu_fast(x, None, 0.1, 2.0)
        assert torch.equal(no_bias, ops.fused_leaky_relu_native(x, None, 0.1, 2.0))
    before = x.detach().clone()
    out = ops.fused_leaky_relu_fast(x, bias)
    assert out.requires_grad and torch.equal(x.detach(), before)  # the input is never modified
    grads = torch.autograd.grad(out.square().sum(), (x, bias))
    ref = torch.autograd.grad(ops.fused_leaky_relu_native(x, bias).square().sum(), (x, bias))
    for a, b in zip(grads, ref):
        assert torch.equal(a, b)


def test_fused_leaky_relu_gradgradcheck():
    x = torch.randn(1, 2, 3, 3, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradgradcheck(ops.fused_leaky_relu_fast, (x, bias))


def test_basicsr_upfirdn2d_calls_the_installed_op(monkeypatch):
    calls = []

    def spy(*args):
        calls.append(args[2:])
        return ops.upfirdn2d_fast(*args)

    monkeypatch.setattr(UP_MOD, 'upfirdn2d_native', spy)
    out = UP_MOD.upfirdn2d(torch.randn(1, 2, 4, 4), K4, up=2, pad=(2, 1))
    assert out.shape == (1, 2, 8, 8)
    assert calls == [(2, 2, 1, 1, 2, 1, 2, 1)]


def _run_with(fast, fn):
    try:
        compat.install_fast_ops(fast=fast)
        return fn()
    finally:
        compat.install_fast_ops()


def test_stylegan2_generator_and_r1_equal_with_and_without_fast_op():
    from basicsr.archs.stylegan2_arch import StyleGAN2Discriminator, StyleGAN2Generator
    torch.manual_seed(0)
    gen = StyleGAN2Generator(out_size=16, num_style_feat=16, num_mlp=1, channel_multiplier=1, narrow=0.125).eval()
    disc = StyleGAN2Discriminator(out_size=16, channel_multiplier=1, narrow=0.125)
    z = [torch.randn(2, 16)]
    img = torch.randn(2, 3, 16, 16)

    def forward():
        with torch.no_grad():
            out, _ = gen(z, randomize_noise=False)
        real = img.clone().requires_grad_()
        (grad,) = torch.autograd.grad(disc(real).sum(), real, create_graph=True)  # R1 penalty
        penalty = grad.pow(2).sum()
        penalty.backward()
        return out, penalty.detach(), disc.final_linear[0].weight.grad.clone()

    fast = _run_with(True, forward)
    disc.zero_grad()
    ref = _run_with(False, forward)
    for a, b in zip(fast, ref):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


class _ConvNet(torch.nn.Module):
    """A 1x1 identity conv that records the dtype its conv computes in (bf16/fp16 under autocast)."""
    in_size = out_size = 32

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 3, 1, bias=False)
        with torch.no_grad():
            self.conv.weight.copy_(torch.eye(3).view(3, 3, 1, 1))
        self.seen = []

    def forward(self, x, mask_bias=0.0):
        y = self.conv(x)
        self.seen.append(y.dtype)
        return y


def test_restorer_precision_autocasts_the_network():
    import numpy as np

    from panininet.pipeline.restorer import PaniniRestorer
    faces = [np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)]
    outs = {}
    for precision in ('fp32', 'bf16'):
        net = _ConvNet()
        restorer = PaniniRestorer(detector='dlib', net=net, device='cpu', precision=precision)
        outs[precision] = restorer.restore_faces(faces)[0]
        assert net.seen == [torch.float32 if precision == 'fp32' else torch.bfloat16]
    assert np.array_equal(outs['fp32'], faces[0])
    assert np.abs(outs['bf16'].astype(int) - faces[0]).max() <= 2  # bf16 keeps 8 bits of mantissa
    with pytest.raises(ValueError, match='needs a GPU'):
        PaniniRestorer(detector='dlib', net=_ConvNet(), device='cpu', precision='fp16')
    with pytest.raises(ValueError, match='Unknown precision'):
        PaniniRestorer(detector='dlib', net=_ConvNet(), device='cpu', precision='half')


def _psnr01(a, b):
    a, b = ((a.float() + 1) / 2).clamp(0, 1), ((b.float() + 1) / 2).clamp(0, 1)
    return 10 * torch.log10(1 / (a - b).double().pow(2).mean()).item()


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA GPU')
@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
def test_half_precision_psnr_on_official_reference_input(shared_dir, dtype):
    """Autocast output vs fp32 (TF32 off) >= 40 dB on the official MFR input with the reference recipe weights."""
    import json
    import os.path as osp

    import numpy as np
    from official_recipe import make_recipe_state_dict

    from panininet.archs.panini_arch import PaniniNet
    from panininet.weights.official import convert_official_state_dict
    ref = osp.join(shared_dir, 'official_reference')
    with open(osp.join(ref, 'manifest_panini_mfr.json')) as f:
        state_dict, arch_opt = convert_official_state_dict(make_recipe_state_dict(json.load(f)))
    net = PaniniNet(**arch_opt).eval()
    net.load_state_dict(state_dict, strict=True)
    net = net.cuda()
    x = torch.from_numpy(np.load(osp.join(ref, 'mfr_input.npy'))).cuda()
    tf32 = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        with torch.no_grad():
            y32 = net(x)
            with torch.autocast('cuda', dtype=dtype):
                y16 = net(x)
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = tf32
    assert torch.isfinite(y16).all()
    assert _psnr01(y16, y32) >= 40


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA GPU')
@pytest.mark.parametrize('site', sorted(STYLEGAN2_CALLS))
def test_fast_ops_on_cuda_equal_reference_and_compiled_kernel(site):
    """On CUDA the fast op equals basicsr's native op and, where it was built, the compiled upfirdn2d kernel."""
    scale, up, down, (p0, p1) = STYLEGAN2_CALLS[site]
    x = torch.randn(2, 16, 33, 33, device='cuda')
    kernel = (K4 * scale).cuda()
    args = (up, up, down, down, p0, p1, p0, p1)
    tf32 = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False
    try:
        fast, ref = _both(x, kernel, *args)
        torch.testing.assert_close(fast, ref, rtol=0, atol=1e-5)
        if compat._UpFirDn2dDispatch.compiled is not None:
            compiled = compat._UpFirDn2dDispatch.compiled.apply(x, kernel, (up, up), (down, down), (p0, p1, p0, p1))
            torch.testing.assert_close(fast, compiled, rtol=0, atol=1e-5)
        b = torch.randn(16, device='cuda')
        torch.testing.assert_close(ops.fused_leaky_relu_fast(x, b), ops.fused_leaky_relu_native(x, b), rtol=0,
                                   atol=0)
    finally:
        torch.backends.cudnn.allow_tf32 = tf32


def test_ops_is_a_leaf():
    """ops.py imports nothing of panininet's or basicsr's (compat installs it, not the reverse)."""
    import ast
    tree = ast.parse(open(ops.__file__, encoding='utf-8').read())
    names = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    names += [n.module or '' for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    assert names and not [m for m in names if m.split('.')[0] in ('panininet', 'basicsr')], names


@pytest.mark.parametrize('tile', [2, 4])
@pytest.mark.parametrize('shape', [(1, 256, 8, 8), (2, 256, 9, 14), (1, 256, 11, 7)])
@pytest.mark.parametrize('bias', [True, False])
def test_winograd_conv_equals_the_direct_conv(tile, shape, bias):
    torch.manual_seed(0)
    x = torch.randn(shape)  # NCHW in; sizes that are not multiples of the tile are padded and cropped
    w = torch.randn(192, shape[1], 3, 3) / (9 * shape[1])**0.5
    b = torch.randn(192) if bias else None
    u = ops.winograd_weight(w, tile)
    assert u.shape == ((tile + 2)**2, shape[1], 192)
    out = ops.conv3x3_winograd(x, u, b)
    ref = F.conv2d(x, w, b, padding=1)
    assert out.shape == ref.shape and out.is_contiguous(memory_format=torch.channels_last)
    assert float((out - ref).abs().max() / ref.abs().max()) < (5e-6 if tile == 2 else 3e-5)


def test_winograd_tile_only_for_wide_fp32_inference_convs():
    def tile(c, size, **kw):
        return ops.winograd_tile(torch.randn(1, c, size, size), torch.randn(c, c, 3, 3), **kw)

    # measured choices (benchmarks/bench_winograd.py): F(4x4) wide and large, F(2x2) wide and small, else direct
    assert [tile(512, s) for s in (4, 8, 16, 32, 64)] == [0, 2, 2, 4, 4]
    assert [tile(256, s) for s in (8, 16, 32, 64, 128)] == [2, 2, 2, 4, 4]
    assert [tile(128, s) for s in (64, 128, 256)] == [0, 0, 0]
    assert tile(64, 512) == 0
    x, w = torch.randn(1, 256, 64, 64), torch.randn(256, 256, 3, 3)
    assert ops.winograd_tile(x, w) == 4
    assert ops.winograd_tile(x, w, stride=2) == ops.winograd_tile(x, w, padding=0) == 0
    assert ops.winograd_tile(x, w, groups=2) == ops.winograd_tile(x, torch.randn(256, 256, 1, 1)) == 0
    assert ops.winograd_tile(x, w.requires_grad_()) == 0  # training
    w.requires_grad_(False)
    with torch.no_grad():
        assert ops.winograd_tile(x, w) == 4
        with torch.autocast('cpu', dtype=torch.bfloat16):
            assert ops.winograd_tile(x, w) == 0  # bf16: oneDNN's direct conv
        assert ops.winograd_tile(x.bfloat16(), w.bfloat16()) == 0
        with ops.plain_ops():
            assert ops.winograd_tile(x, w) == 0


def test_winograd_conv2d_module_is_an_nn_conv2d_with_a_cached_transform():
    torch.manual_seed(1)
    ours = ops.WinogradConv2d(256, 256, 3, 1, 1).eval()
    torch.manual_seed(1)
    ref = torch.nn.Conv2d(256, 256, 3, 1, 1).eval()
    assert list(ours.state_dict()) == list(ref.state_dict())
    assert all(torch.equal(a, b) for a, b in zip(ours.state_dict().values(), ref.state_dict().values()))
    seen = []
    ours.register_forward_hook(lambda m, i, o: seen.append(o.shape))
    x = torch.randn(1, 256, 10, 10)
    with torch.no_grad():
        out = ours(x)
        assert list(ours.__dict__['_winograd_weights']) == [2] and out.is_contiguous(memory_format=torch.channels_last)
        assert float((out - ref(x)).abs().max() / ref(x).abs().max()) < 1e-5
        for conv in (ours, ref):
            conv.weight.mul_(-1)  # in place: the cached transform must follow
        assert float((ours(x) - ref(x)).abs().max() / ref(x).abs().max()) < 1e-5
        big = torch.randn(1, 256, 64, 64)
        assert float((ours(big) - ref(big)).abs().max() / ref(big).abs().max()) < 3e-5
        assert sorted(ours.__dict__['_winograd_weights']) == [2, 4]
    assert seen == [(1, 256, 10, 10)] * 2 + [(1, 256, 64, 64)]  # hooks fire
    assert torch.equal(ours(x), ref(x))  # with gradients: nn.Conv2d's forward
    assert '_winograd_weights' not in str(list(ours.state_dict()))


@pytest.mark.parametrize('site', ['upconv_blur', 'to_rgb_upsample'])
def test_upfirdn_bias_is_added_to_every_output_channel(site):
    scale, up, down, (p0, p1) = STYLEGAN2_CALLS[site]
    x, bias = torch.randn(1, 5, 9, 8), torch.randn(5)
    args = (K4 * scale, up, up, down, down, p0, p1, p0, p1)
    plain = ops.upfirdn2d_fast(x, *args)
    torch.testing.assert_close(ops.upfirdn2d_fast(x, *args, bias=bias), plain + bias.view(1, -1, 1, 1))
