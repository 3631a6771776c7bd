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
