"""The accumulating CPU dense block (panininet.archs.rrdb) and the ops it runs on (panininet.platform.native_ops)."""
import pytest
import torch
from basicsr.archs.rrdbnet_arch import RRDB as BasicsrRRDB
from basicsr.archs.rrdbnet_arch import ResidualDenseBlock
from torch.nn import functional as F

from panininet.archs.panini_arch import IFE
from panininet.archs.rrdb import RRDB, DenseBlock
from panininet.platform import native_ops as ops
from panininet.platform.native_ops import conv2d_accumulate_, cpu_inference_dtype, eager_cpu_inference, plain_ops

CL = torch.channels_last


def _block(num_feat=8, grow=16, seed=0):
    torch.manual_seed(seed)
    block = DenseBlock(num_feat, grow).eval()
    with torch.no_grad():  # basicsr initialises at 0.1 x kaiming: give the convs weights that matter
        for p in block.parameters():
            p.normal_(0, 0.2)
    return block


def test_rrdb_has_basicsr_keys_and_initialisation():
    torch.manual_seed(3)
    ours = RRDB(8, 16)
    torch.manual_seed(3)
    ref = BasicsrRRDB(8, 16)
    assert list(ours.state_dict()) == list(ref.state_dict())
    assert all(torch.equal(a, b) for a, b in zip(ours.state_dict().values(), ref.state_dict().values()))
    assert all(type(getattr(ours, f'rdb{i}')) is DenseBlock for i in (1, 2, 3))


def test_the_ife_uses_the_accumulating_blocks():
    ife = IFE(64, [32, 32, 32], 8, 2, 16, 2)
    assert all(isinstance(m, RRDB) for m in ife.body)


@pytest.mark.parametrize('batch', [1, 2])
@pytest.mark.parametrize('layout', ['channels_last', 'nchw'])
def test_dense_block_equals_basicsr_and_never_concatenates(monkeypatch, batch, layout):
    block = _block()
    x = torch.randn(batch, 8, 24, 20)
    if layout == 'channels_last':
        x = x.contiguous(memory_format=CL)
    with torch.no_grad():
        ref = ResidualDenseBlock.forward(block, x)

        def no_cat(*args, **kwargs):
            raise AssertionError('the CPU inference forward concatenated')

        monkeypatch.setattr(torch, 'cat', no_cat)
        out = block(x)
    assert out.shape == ref.shape
    assert (out - ref).abs().max() <= 1e-5 * ref.abs().max()
    assert not torch.equal(out, x)


def test_training_runs_basicsrs_forward_bit_for_bit_with_gradients():
    block = _block().train()
    x = torch.randn(2, 8, 16, 16, requires_grad=True)
    out = block(x)
    assert torch.equal(out, ResidualDenseBlock.forward(block, x))
    out.square().sum().backward()
    assert x.grad is not None and block.conv5.weight.grad.abs().sum() > 0


def test_plain_ops_turns_the_fast_forward_off(monkeypatch):
    block = _block()
    x = torch.randn(1, 8, 12, 12).contiguous(memory_format=CL)
    calls = []
    real = ResidualDenseBlock.forward
    monkeypatch.setattr(ResidualDenseBlock, 'forward', lambda self, t: calls.append(1) or real(self, t))
    with torch.no_grad():
        block(x)
        assert calls == []
        with plain_ops():
            assert not eager_cpu_inference(x)
            out = block(x)
        assert calls == [1] and eager_cpu_inference(x)
    assert torch.equal(out, real(block, x))


def test_eager_cpu_inference_conditions():
    x = torch.randn(1, 2, 4, 4)
    w = torch.nn.Parameter(torch.randn(2, 2, 3, 3))
    with torch.no_grad():
        assert eager_cpu_inference(x, params=[w])
        assert not eager_cpu_inference(x.double())
        assert cpu_inference_dtype(x) == torch.float32
        with torch.autocast('cpu', dtype=torch.bfloat16):  # the CPU bf16 path
            assert cpu_inference_dtype(x) == torch.bfloat16 == cpu_inference_dtype(x.bfloat16())
        with torch.autocast('cpu', dtype=torch.float16):
            assert not eager_cpu_inference(x)
        assert cpu_inference_dtype(x.bfloat16()) == torch.bfloat16  # a bf16 tensor without autocast
        assert cpu_inference_dtype(x, x.bfloat16()) is None  # mixed dtypes without autocast
    assert eager_cpu_inference(x)  # grad mode on, but nothing requires a gradient
    assert not eager_cpu_inference(x, params=[w])
    assert not eager_cpu_inference(x.requires_grad_())


def test_conv2d_accumulate_is_the_fused_op_and_bit_identical(monkeypatch):
    torch.manual_seed(0)
    x = torch.randn(2, 16, 20, 18).contiguous(memory_format=CL)
    w = torch.randn(8, 16, 3, 3)
    acc = torch.randn(2, 8, 20, 18).contiguous(memory_format=CL)
    expected = acc.clone().add_(F.conv2d(x, w, padding=1))
    used = []
    real = ops._mkldnn_conv_add_()
    if real is None:
        pytest.skip("this torch build has no oneDNN 'conv + add' op")
    monkeypatch.setattr(ops, '_mkldnn_conv_add_', lambda: lambda *a: used.append(1) or real(*a))
    ptr = acc.data_ptr()
    with torch.no_grad():
        out = conv2d_accumulate_(acc, x, w)
    assert used == [1] and out is acc and acc.data_ptr() == ptr
    assert torch.equal(acc, expected)


def test_conv2d_accumulate_falls_back_with_autograd():
    x = torch.randn(1, 4, 8, 8, requires_grad=True)
    w = torch.randn(3, 4, 3, 3, requires_grad=True)
    acc = torch.randn(1, 3, 8, 8)
    out = conv2d_accumulate_(acc.clone(), x, w)
    ref = acc + F.conv2d(x, w, padding=1)
    assert torch.allclose(out, ref)
    out.sum().backward()
    gx, gw = x.grad.clone(), w.grad.clone()
    x.grad = w.grad = None
    ref.sum().backward()
    assert torch.allclose(gx, x.grad) and torch.allclose(gw, w.grad)


def test_pair_weight_is_the_same_conv_over_pixel_pairs():
    from panininet.archs.rrdb import _pairs, pair_weight
    torch.manual_seed(0)
    x = torch.randn(2, 5, 7, 12).contiguous(memory_format=CL)
    w = torch.randn(3, 5, 3, 3)
    pairs = F.conv2d(_pairs(x), pair_weight(w), padding=1)  # (2, 6, 7, 7): pixels -1 .. 12
    assert pairs.shape == (2, 6, 7, 7)
    wide = pairs.permute(0, 2, 3, 1).reshape(2, 7, 14, 3).permute(0, 3, 1, 2)
    torch.testing.assert_close(wide[..., 1:13], F.conv2d(x, w, padding=1), rtol=0, atol=1e-5)  # edges included


@pytest.mark.parametrize('width', [20, 21])
def test_last_conv_runs_in_pixel_pairs_where_the_width_is_even(monkeypatch, width):
    import panininet.archs.rrdb as rrdb_module
    block = _block()
    x = torch.randn(1, 8, 12, width).contiguous(memory_format=CL)
    kernels = []
    real = rrdb_module.conv2d_accumulate_
    monkeypatch.setattr(rrdb_module, 'conv2d_accumulate_',
                        lambda acc, inp, w, padding=1: kernels.append(tuple(w.shape)) or real(acc, inp, w, padding))
    with torch.no_grad():
        ref = ResidualDenseBlock.forward(block, x)
        out, again = block(x), block(x)  # the second call reads the cached pair weights
        block.conv5.weight.mul_(-1)  # an in-place change: the cache must see it
        changed, ref_changed = block(x), ResidualDenseBlock.forward(block, x)
    last = kernels[6:10]  # conv2 .. conv4 take 1 + 2 + 3 accumulations, then conv5's four parts
    assert last == ([(16, 32, 3, 2)] * 4 if width % 2 == 0 else [(8, 16, 3, 3)] * 4)
    for a, b in ((out, ref), (again, ref), (changed, ref_changed)):
        assert a.shape == b.shape and a.is_contiguous(memory_format=CL)
        assert (a - b).abs().max() <= 1e-5 * b.abs().max()
