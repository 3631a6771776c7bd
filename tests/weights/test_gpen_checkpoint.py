"""GPEN's released layouts (GPEN-BFR-512.pth, GPEN-BFR-512-D.pth) into MMRB-Net's prior, GPENNet and BasicSR's
StyleGAN2Discriminator: strict loads, round trips, the full 512 layout, refusals. State dicts are made by the test
in GPEN's exact key/shape layout (tests/gpen_layout.py); nothing is downloaded."""
import pytest
import torch
from basicsr.archs.stylegan2_arch import StyleGAN2Discriminator
from gpen_layout import discriminator_layout, full_generator_forward, full_generator_layout, random_state, shapes
from helpers import REPO_ROOT, load_script, one_thread  # noqa: F401  (one_thread: fixture)

from panininet.archs.gpen_arch import GPENNet
from panininet.archs.mmrb_arch import ConcatStyleGAN2, MMRBNet
from panininet.weights import gpen_checkpoint as gpen
from panininet.weights.checkpoint import load_checkpoint_file

TINY_GEN = {'style_dim': 8, 'n_mlp': 2, 'channel_multiplier': 1, 'narrow': 1 / 32}
OURS = {'num_style_feat': 8, 'num_mlp': 2, 'channel_multiplier': 1, 'narrow': 1 / 32}


def _equal(a, b):
    assert list(a) == list(b) or sorted(a) == sorted(b)
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=k)


@pytest.mark.parametrize('size', [32, 64])
def test_generator_round_trip_into_gpennet_and_prior(size, one_thread):  # noqa: F811
    theirs = random_state(full_generator_layout(size, **TINY_GEN))
    # below 64 the widths do not depend on the multiplier: GPEN's default 2 is reported
    assert gpen.gpen_generator_config(theirs) == dict(OURS, out_size=size, channel_multiplier=1 if size > 32 else 2)
    net = GPENNet(out_size=size, **OURS)
    net.load_gpen_state(theirs)  # strict, prior and encoder
    prior_sd, enc_sd = net.prior.state_dict(), net.encoder.state_dict()
    torch.testing.assert_close(prior_sd['constant_input.weight'], theirs['generator.input.input'])
    torch.testing.assert_close(prior_sd['style_convs.1.noise_weight'], theirs['generator.convs.1.noise.weight'])
    torch.testing.assert_close(enc_sd['convs.1.1.weight'], theirs['ecd1.0.1.weight'])
    _equal(gpen.prior_to_gpen_generator(prior_sd, enc_sd), theirs)  # round trip, FIR kernels included
    y = net(torch.rand(1, 3, size, size) * 2 - 1)
    assert y.shape == (1, 3, size, size) and torch.isfinite(y).all()
    # MMRB-Net takes the prior only
    mmrb = MMRBNet(out_size=size, **OURS)
    mmrb.prior.load_gpen_state(theirs)
    _equal(mmrb.prior.state_dict(), prior_sd)


@pytest.mark.parametrize('size', [32, 64])
def test_gpennet_computes_gpens_full_generator(size, one_thread):  # noqa: F811
    """GPENNet with converted weights = GPEN's FullGenerator forward (written from gpen_model.py in plain torch)."""
    theirs = random_state(full_generator_layout(size, **TINY_GEN), seed=5)
    net = GPENNet(out_size=size, **OURS).eval()
    net.load_gpen_state(theirs)
    x = torch.rand(2, 3, size, size, generator=torch.Generator().manual_seed(6)) * 2 - 1
    with torch.no_grad():
        expected = full_generator_forward(theirs, x)
        got = net(x)
    assert expected.abs().mean() > 0.05  # a real signal, not a vanishing one
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)
    # the concatenated noise branches act: GPEN's strengths are non-zero in this state dict
    with torch.no_grad():
        theirs_off = dict(theirs, **{k: torch.zeros_like(v) for k, v in theirs.items() if k.endswith('noise.weight')})
        assert not torch.allclose(full_generator_forward(theirs_off, x), expected)


def test_discriminator_round_trip(one_thread):  # noqa: F811
    theirs = random_state(discriminator_layout(32, channel_multiplier=1, narrow=1 / 32))
    cfg = gpen.gpen_discriminator_config(theirs)
    assert cfg == {'out_size': 32, 'channel_multiplier': 2, 'narrow': 1 / 32}
    net_d = StyleGAN2Discriminator(**cfg)
    net_d.load_state_dict(gpen.gpen_discriminator_to_basicsr(theirs), strict=True)
    torch.testing.assert_close(net_d.conv_body[2].skip[1].weight, theirs['convs.2.skip.1.weight'])
    _equal(gpen.basicsr_discriminator_to_gpen(net_d.state_dict()), theirs)
    assert net_d(torch.rand(4, 3, 32, 32)).shape == (4, 1)


def test_full_512_layouts_are_gpens():
    """Our 512 networks, mapped back, have exactly GPEN-BFR-512's keys and shapes (163 generator and 57
    discriminator entries: 16 mapping, 1 constant, 15 style blocks x 5 + 7 blur kernels, 8 ToRGBs x 4 + 7 up-sampling
    kernels, 8 encoder convs (2 + 7 x 3) and 2 final-linear entries; 2 + 7 ResBlocks x 7 + 2 + 4)."""
    layout_g, layout_d = full_generator_layout(512), discriminator_layout(512)
    assert (len(layout_g), len(layout_d)) == (163, 57)
    with torch.device('meta'):
        net = GPENNet()
        net_d = StyleGAN2Discriminator(512)
    ours_g = gpen.prior_to_gpen_generator(net.prior.state_dict(), net.encoder.state_dict())
    assert shapes(ours_g) == shapes(layout_g)
    assert shapes(gpen.basicsr_discriminator_to_gpen(net_d.state_dict())) == shapes(layout_d)
    spot = {'generator.convs.0.conv.weight': (1, 512, 1024, 3, 3), 'generator.to_rgbs.6.conv.weight': (1, 3, 128, 1, 1),
            'generator.convs.13.activate.bias': (128, ), 'ecd0.0.0.weight': (64, 3, 1, 1),
            'ecd7.0.1.weight': (512, 512, 3, 3), 'final_linear.0.weight': (512, 8192)}
    assert {k: shapes(layout_g)[k] for k in spot} == spot
    meta = {k: v if isinstance(v, torch.Tensor) else torch.empty(v, device='meta') for k, v in layout_g.items()}
    assert gpen.gpen_generator_config(meta) == {'out_size': 512, 'num_style_feat': 512, 'num_mlp': 8,
                                                'channel_multiplier': 2, 'narrow': 1.0}
    assert shapes(gpen.gpen_generator_to_prior(meta)) == shapes(net.prior.state_dict())
    assert shapes(gpen.gpen_encoder_to_ours(meta)) == shapes(net.encoder.state_dict())


def test_prior_load_path_reads_a_gpen_file_and_training_checkpoint(tmp_path, one_thread):  # noqa: F811
    theirs = random_state(full_generator_layout(32, **TINY_GEN), seed=3)
    bare, ckpt = tmp_path / 'GPEN-BFR-32.pth', tmp_path / 'gpen_train.pth'
    torch.save(theirs, bare)
    torch.save({'g_ema': {'module.' + k: v for k, v in theirs.items()}, 'd': {}}, ckpt)
    expected = gpen.gpen_generator_to_prior(theirs)
    for path in (bare, ckpt):
        net = MMRBNet(out_size=32, prior_load_path=str(path), **OURS)
        _equal(net.prior.state_dict(), expected)


def test_refusals():
    theirs = random_state(full_generator_layout(32, **TINY_GEN))
    with pytest.raises(ValueError, match='GPEN generator has'):
        ConcatStyleGAN2(64, 8, 2, 1, 1 / 32).load_gpen_state(theirs, 'g.pth')
    with pytest.raises(ValueError, match='not a GPEN generator'):
        gpen.pick_gpen_generator({'params_ema': {}}, 'x.pth')
    with pytest.raises(ValueError, match='not a GPEN discriminator'):
        gpen.pick_gpen_discriminator(theirs, 'x.pth')
    bad = dict(theirs)
    bad['generator.to_rgbs.0.upsample.kernel'] = torch.ones(4, 4)
    with pytest.raises(ValueError, match='FIR kernel'):
        gpen.gpen_generator_to_prior(bad, 'bad.pth')
    extra = dict(theirs, **{'generator.convs.0.extra.weight': torch.zeros(1)})
    with pytest.raises(ValueError, match='unexpected key'):
        gpen.gpen_generator_to_prior(extra, 'extra.pth')


def _convert_script():
    import os.path as osp
    path = osp.join(REPO_ROOT, 'scripts', 'convert_gpen.py')
    module = load_script(path, '_convert_gpen')
    return module


def test_convert_script(tmp_path, capsys, one_thread):  # noqa: F811
    script = _convert_script()
    g_in, d_in = tmp_path / 'GPEN-BFR-32.pth', tmp_path / 'GPEN-BFR-32-D.pth'
    theirs_g = random_state(full_generator_layout(32, **TINY_GEN))
    theirs_d = random_state(discriminator_layout(32, channel_multiplier=1, narrow=1 / 32))
    torch.save(theirs_g, g_in)
    torch.save(theirs_d, d_in)
    assert script.main([str(d_in), str(tmp_path / 'd.pth')]) == 0
    out = load_checkpoint_file(str(tmp_path / 'd.pth'))
    StyleGAN2Discriminator(**out['arch']).load_state_dict(out['params'], strict=True)
    assert script.main([str(g_in), str(tmp_path / 'g.pth')]) == 0
    out = load_checkpoint_file(str(tmp_path / 'g.pth'))
    GPENNet(**out['arch']).load_state_dict(out['params_ema'], strict=True)
    capsys.readouterr()
    torch.save({'params': {}}, tmp_path / 'other.pth')
    assert script.main([str(tmp_path / 'other.pth'), str(tmp_path / 'x.pth')]) == 2
    assert script.main([str(g_in), str(g_in)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and 'neither a GPEN generator' in err[0] and 'input path' in err[1]
