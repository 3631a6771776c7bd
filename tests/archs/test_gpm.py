"""The GPM (archs/gpm.py): BasicSR's StyleGAN2 with a synthesis loop whose fusion is a callback, at tiny sizes."""
import pytest
import torch
from basicsr.archs.stylegan2_arch import StyleConv, StyleGAN2Generator

from panininet.archs.gpm import GPM, synthesis_loop

GEN = {'num_style_feat': 16, 'num_mlp': 2, 'channel_multiplier': 1, 'narrow': 0.125}


def _pair(out_size=32):
    torch.manual_seed(0)
    ref = StyleGAN2Generator(out_size, **GEN).eval()
    gpm = GPM(out_size, **GEN).eval()
    gpm.load_prior(ref.state_dict())
    return ref, gpm


def test_keys_are_basicsrs_plus_fir_kernels():
    ref, gpm = _pair()
    extra = set(gpm.state_dict()) - set(ref.state_dict())
    assert set(ref.state_dict()) <= set(gpm.state_dict())
    assert extra and all(k.endswith('.kernel') for k in extra)
    assert isinstance(gpm, StyleGAN2Generator)


@pytest.mark.parametrize('out_size', [8, 32])
def test_synthesize_without_fusion_is_basicsrs_generator(out_size):
    ref, gpm = _pair(out_size)
    latent = torch.randn(2, ref.num_latent, GEN['num_style_feat'])
    with torch.no_grad():
        expected, _ = ref([latent], input_is_latent=True, randomize_noise=False)
        assert torch.equal(gpm.synthesize(latent), expected)
        assert torch.equal(gpm.synthesize(latent, fuse=lambda level, f: f), expected)
        # one w for every layer is w+ with equal codes
        w = latent[:, 0]
        assert torch.equal(synthesis_loop(gpm, w, gpm.stored_noise()),
                           gpm.synthesize(w[:, None].expand_as(latent).contiguous()))


def test_fuse_is_called_before_each_upsampling_conv_and_acts():
    _, gpm = _pair(32)
    latent = torch.randn(1, gpm.num_latent, GEN['num_style_feat'])
    seen, conv_inputs = [], []
    hooks = [gpm.style_convs[2 * k].register_forward_pre_hook(lambda m, args: conv_inputs.append(args[0]))
             for k in range(gpm.num_fusion_levels)]

    def fuse(level, features):
        seen.append((level, tuple(features.shape)))
        return features * 0 if level == 1 else features + 1

    with torch.no_grad():
        out = gpm.synthesize(latent, fuse=fuse)
        plain = gpm.synthesize(latent)
    for h in hooks:
        h.remove()
    assert seen == [(k, (1, gpm.channels[str(4 * 2**k)], 4 * 2**k, 4 * 2**k)) for k in range(3)]
    assert torch.count_nonzero(conv_inputs[1]) == 0  # what fuse returned is what the conv received
    assert not torch.allclose(out, plain)


def test_randomize_noise_and_bad_inputs():
    _, gpm = _pair(16)
    latent = torch.randn(1, gpm.num_latent, GEN['num_style_feat'])
    with torch.no_grad():
        for m in gpm.modules():
            if isinstance(m, StyleConv):  # its noise strength starts at 0: make the noise count
                m.weight.fill_(1.0)
        assert torch.equal(gpm.synthesize(latent), gpm.synthesize(latent))
        assert not torch.equal(gpm.synthesize(latent, randomize_noise=True), gpm.synthesize(latent))
    with pytest.raises(ValueError, match='codes'):
        gpm.synthesize(latent[:, :3])
    with pytest.raises(ValueError, match='noise entries'):
        synthesis_loop(gpm, latent, noise=[None])


# --------------------------------------------------------------------------------- CPU fast forwards (one face)
def _rel_err(a, b):
    return float((a - b).abs().max() / b.abs().max())


def test_style_blocks_get_the_cpu_forwards_with_basicsrs_keys():
    from basicsr.archs.stylegan2_arch import ToRGB

    from panininet.archs.gpm import StyleConvCPU, ToRGBCPU
    _, gpm = _pair()
    convs = [m for m in gpm.modules() if isinstance(m, StyleConv)]
    rgbs = [m for m in gpm.modules() if isinstance(m, ToRGB)]
    assert convs and all(type(m) is StyleConvCPU for m in convs)
    assert rgbs and all(type(m) is ToRGBCPU for m in rgbs)


def test_one_face_on_cpu_runs_channels_last_and_matches_basicsr(monkeypatch):
    import panininet.archs.gpm as gpm_module
    from panininet.platform.native_ops import plain_ops
    ref, gpm = _pair(32)
    latent = torch.randn(1, ref.num_latent, GEN['num_style_feat'])
    calls = []
    real = gpm_module.modulated_conv_cpu
    monkeypatch.setattr(gpm_module, 'modulated_conv_cpu', lambda *a, **k: calls.append(1) or real(*a, **k))
    with torch.no_grad():
        expected, _ = ref([latent], input_is_latent=True, randomize_noise=False)
        out = gpm.synthesize(latent)
        n_fast = len(calls)
        with plain_ops():
            plain = gpm.synthesize(latent)
    assert n_fast == len(gpm.style_convs) + 1 + len(gpm.to_rgbs) + 1  # every style conv and ToRGB, none twice
    assert len(calls) == n_fast  # plain_ops: none
    assert torch.equal(plain, expected)
    assert out.is_contiguous() and _rel_err(out, expected) < 1e-5


def test_gradients_and_batches_take_basicsrs_forward():
    ref, gpm = _pair(16)
    latent = torch.randn(1, ref.num_latent, GEN['num_style_feat'], requires_grad=True)
    expected, _ = ref([latent], input_is_latent=True, randomize_noise=False)
    out = gpm.synthesize(latent)
    assert torch.equal(out, expected)
    out.sum().backward()
    assert latent.grad is not None
    with torch.no_grad():
        two = torch.randn(2, ref.num_latent, GEN['num_style_feat'])
        assert gpm.faces_one_by_one(two) and not gpm.faces_one_by_one(two[:1])
    assert not gpm.faces_one_by_one(two)  # grad mode on and the GPM's weights require gradients


def test_panini_batch_on_cpu_equals_its_faces_one_by_one():
    from panininet.archs.panini_arch import PaniniNet
    from panininet.platform.native_ops import plain_ops
    torch.manual_seed(0)
    net = PaniniNet(in_size=32, out_size=64, narrow=0.125, rrdb_channels=4, rrdb_growth=8, dre_num_feat=8).eval()
    x = torch.rand(3, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        batch = net(x)
        faces = torch.cat([net(x[i:i + 1]) for i in range(3)])
        with plain_ops():
            plain = net(x)  # BasicSR's grouped convs over the batch
    assert _rel_err(batch, faces) < 1e-5 and _rel_err(batch, plain) < 1e-5
    assert not torch.equal(batch, plain)  # the fast forwards did run


def test_wide_style_convs_run_winograd_and_match_basicsr(monkeypatch):
    # 256 channels at every level (narrow 0.5, multiplier 2): the stride-1 style convs at 8 .. 64 take Winograd
    # (F(2x2) at 8 .. 32, F(4x4) at 64), with the stored weight's cached transform at 8 .. 32 (modulated input) and
    # the modulated weight's at 64
    import panininet.archs.gpm as gpm_module
    from panininet.platform.native_ops import plain_ops
    gen = dict(GEN, narrow=0.5, channel_multiplier=2)
    torch.manual_seed(0)
    ref = StyleGAN2Generator(64, **gen).eval()
    gpm = GPM(64, **gen).eval()
    gpm.load_prior(ref.state_dict())
    sizes, fresh = [], []
    real_conv, real_weight = gpm_module.conv3x3_winograd, gpm_module.winograd_weight
    monkeypatch.setattr(gpm_module, 'conv3x3_winograd', lambda x, *a: sizes.append(x.shape[-1]) or real_conv(x, *a))
    monkeypatch.setattr(gpm_module, 'winograd_weight', lambda w, t: fresh.append(t) or real_weight(w, t))
    latent = torch.randn(1, ref.num_latent, gen['num_style_feat'])
    with torch.no_grad():
        expected, _ = ref([latent], input_is_latent=True, randomize_noise=False)
        out = gpm.synthesize(latent)
        assert sorted(sizes) == [8, 16, 32, 64]
        n_fresh = len(fresh)
        again = gpm.synthesize(latent)
        with plain_ops():
            plain = gpm.synthesize(latent)
    assert fresh[:n_fresh] == [4]  # the 64 x 64 conv's modulated weight; the cached ones are made elsewhere
    assert fresh == [4, 4] and sorted(sizes) == [8, 8, 16, 16, 32, 32, 64, 64]  # plain_ops: none
    assert torch.equal(plain, expected)
    assert _rel_err(out, expected) < 3e-5 and torch.equal(again, out)
