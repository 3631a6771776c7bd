"""MMRB-Net at tiny sizes (CPU): the MMRB equations (4-10), codec asymmetry (eq. 1), the concatenated noise
branches (eq. 3), shapes, parameter groups."""
import pytest
import torch
from basicsr.utils.registry import ARCH_REGISTRY
from helpers import one_thread  # noqa: F401  (fixture)
from torch.nn import functional as F

from panininet.archs.gpm import stylegan2_channels
from panininet.archs.mmrb_arch import MMRB, ConcatStyleConv, MMRBNet

pytestmark = pytest.mark.usefixtures('one_thread')
TINY = {'num_style_feat': 8, 'narrow': 1 / 32, 'channel_multiplier': 1, 'num_mlp': 2}


def tiny(**kw):
    return MMRBNet(**dict(TINY, out_size=32, **kw))


def _input(size, b=2, seed=0, channels=3):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, channels, size, size, generator=g) * 2 - 1


def _randomise(module, seed=1):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)
    return module


@pytest.mark.parametrize('channels', [2, 8, 32])
def test_mmrb_kernel_sizes_widths_and_parameter_count(channels):
    m = MMRB(channels)
    half = channels // 2
    shapes = {name: tuple(conv.weight.shape) for name, conv in
              [('3_1', m.conv3_1), ('5_1', m.conv5_1), ('3_2', m.conv3_2), ('5_2', m.conv5_2), ('1', m.conv1)]}
    assert shapes == {'3_1': (half, half, 3, 3), '5_1': (half, half, 5, 5), '3_2': (channels, channels, 3, 3),
                      '5_2': (channels, channels, 5, 5), '1': (channels, 2 * channels, 1, 1)}
    assert sum(p.numel() for p in m.parameters()) == MMRB.num_parameters(channels) == 44.5 * channels**2 + 8 * channels


def test_mmrb_forward_is_eqs_4_to_10():
    m = _randomise(MMRB(8))
    x = _input(6, channels=8)
    x1, x2 = x[:, :4], x[:, 4:]  # eq. 4

    def act(prelu, y):
        return F.prelu(y, prelu.weight)

    p1 = act(m.act3_1, F.conv2d(x1, m.conv3_1.weight, m.conv3_1.bias, padding=1))
    p2 = act(m.act5_1, F.conv2d(x2, m.conv5_1.weight, m.conv5_1.bias, padding=2))
    c1 = torch.cat([p1, p2], 1)
    q1 = act(m.act3_2, F.conv2d(c1, m.conv3_2.weight, m.conv3_2.bias, padding=1))
    q2 = act(m.act5_2, F.conv2d(c1, m.conv5_2.weight, m.conv5_2.bias, padding=2))
    p = act(m.act1, F.conv2d(torch.cat([q1, q2], 1), m.conv1.weight, m.conv1.bias))
    torch.testing.assert_close(m(x), x + p)


def test_mmrb_residual_and_split():
    m = _randomise(MMRB(8))
    x = _input(6, channels=8)
    assert not torch.allclose(m(x), x)
    # eq. 10: with the 1x1 fusion conv at zero, P = PReLU(0) = 0 and the block is the identity
    with torch.no_grad():
        m.conv1.weight.zero_()
        m.conv1.bias.zero_()
    torch.testing.assert_close(m(x), x)
    # eq. 4: the first half reaches the block only through the 3x3 branch of eq. 5
    m = _randomise(MMRB(8))
    with torch.no_grad():
        m.conv3_1.weight.zero_()
    x2 = x.clone()
    x2[:, :4] += 1.0
    torch.testing.assert_close(m(x2) - m(x), x2 - x)
    x3 = x.clone()
    x3[:, 4:] += 1.0  # the second half goes through the 5x5 branch as well
    assert not torch.allclose(m(x3) - m(x), x3 - x)


def test_mmrb_refuses_odd_width():
    with pytest.raises(ValueError, match='even'):
        MMRB(5)
    with pytest.raises(ValueError, match='odd widths'):
        MMRBNet(out_size=32, narrow=3 / 512)


@pytest.mark.parametrize('num_dec', [0, 1, 2])
def test_codec_encoder_has_one_more_mmrb_per_scale(num_dec):
    net = tiny(num_mmrb_decoder=num_dec)
    enc, dec = net.codec.encoder, net.codec.decoder
    assert enc.resolutions[::-1] == dec.resolutions == [4, 8, 16, 32]  # MMRBs at every scale
    enc_counts = [sum(isinstance(m, MMRB) for m in stage.modules()) for stage in enc.stages][::-1]
    dec_counts = [sum(isinstance(m, MMRB) for m in stage.modules()) for stage in dec.stages]
    assert dec_counts == [num_dec] * 4
    assert enc_counts == [num_dec + 1] * 4


@pytest.mark.parametrize('out_size', [32, 64])
def test_shapes_and_registry(out_size):
    net = ARCH_REGISTRY.get('MMRBNet')(**dict(TINY, out_size=out_size))
    x = _input(out_size)
    y, rgbs = net(x, return_rgb=True)
    assert y.shape == (2, 3, out_size, out_size)
    assert [r.shape[-1] for r in rgbs] == [2**i for i in range(2, out_size.bit_length())]
    assert all(r.shape[:2] == (2, 3) for r in rgbs)
    feats, z, _ = net.codec(x)
    channels = stylegan2_channels(1, 1 / 32)
    assert [tuple(f.shape[1:]) for f in feats] == [(channels[r], r, r) for r in net.prior.resolutions]
    assert z.shape == (2, 8)
    torch.testing.assert_close(net(x), y)  # deterministic: the noise branches are the decoder's features
    with pytest.raises(ValueError, match='expects'):
        net(_input(16))


def test_style_blocks_concatenate_the_noise_branch():
    net = tiny()
    channels = stylegan2_channels(1, 1 / 32)
    for k, res in enumerate(net.prior.resolutions[1:]):
        conv1, conv2 = net.prior.style_convs[2 * k], net.prior.style_convs[2 * k + 1]
        assert conv1.modulated_conv.in_channels == 2 * channels[res // 2]  # previous block: [y_hat, x_hat]
        assert conv2.modulated_conv.in_channels == 2 * channels[res]
        assert conv2.activate.bias.numel() == 2 * channels[res]
        assert net.prior.to_rgbs[k].modulated_conv.in_channels == 2 * channels[res]
    block = ConcatStyleConv(4, 6, 16)
    out = block(_input(5, channels=4), torch.randn(2, 16), torch.randn(2, 6, 5, 5))
    assert out.shape == (2, 12, 5, 5)
    with pytest.raises(ValueError, match='noise branch'):
        block(_input(5, channels=4), torch.randn(2, 16), torch.randn(2, 3, 5, 5))


def test_noise_branch_changes_output_and_carries_gradient_to_the_codec():
    net = tiny()
    x = _input(32)
    feats, z, _ = net.codec(x)
    noise_weights = [p for n, p in net.prior.named_parameters() if n.endswith('noise_weight')]
    assert len(noise_weights) == 1 + 2 * 3 and all(p.item() == 0 for p in noise_weights)  # GPEN's zero init
    other = [f + torch.randn_like(f) for f in feats]
    with torch.no_grad():
        torch.testing.assert_close(net.prior(z, feats), net.prior(z, other))  # strength 0: branch closed
    # zero-initialised strengths still get a gradient, so training opens the branches
    net(x).square().mean().backward()
    assert all(p.grad is not None and p.grad.abs().item() > 0 for p in noise_weights)
    top_up = net.codec.decoder.ups[-1][1].weight  # reaches the output only through the 32x32 noise branch
    assert top_up.grad is None or top_up.grad.abs().sum() == 0
    net.zero_grad()
    with torch.no_grad():
        for p in noise_weights:
            p.fill_(0.5)
        assert not torch.allclose(net.prior(z, feats), net.prior(z, other))
    net(x).square().mean().backward()
    assert top_up.grad.abs().sum() > 0
    assert net.codec.encoder.conv_first[0].weight.grad.abs().sum() > 0


def test_param_groups_partition_the_parameters():
    net = tiny()
    groups = net.param_groups()
    ids = [id(p) for ps in groups.values() for p in ps]
    assert len(ids) == len(set(ids)) == len(list(net.parameters()))
    assert len(groups['noise']) == 7
    assert {id(p) for p in groups['codec']} == {id(p) for p in net.codec.parameters()}
