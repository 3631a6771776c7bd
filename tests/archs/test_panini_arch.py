"""PaniniNet behaviour at tiny sizes (CPU): shapes, masks, eqs. 12-13, mask_bias, freezing, GPM loading."""
import pytest
import torch
from basicsr.archs.stylegan2_arch import StyleGAN2Generator, make_resample_kernel
from basicsr.utils.registry import ARCH_REGISTRY

from panininet.archs.dre_arch import MoCo
from panininet.archs.panini_arch import PaniniNet

TINY = {'num_style_feat': 32, 'narrow': 0.125, 'channel_multiplier': 1, 'rrdb_channels': 4, 'num_rrdbs': 1,
        'rrdb_growth': 4, 'dre_num_feat': 8}


def tiny(**kw):
    opt = dict(TINY, in_size=32, out_size=64)
    opt.update(kw)
    return PaniniNet(**opt)


def _input(net, b=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, 3, net.in_size, net.in_size, generator=g) * 2 - 1


@pytest.mark.parametrize(('in_size', 'out_size', 'condition', 'levels'),
                         [(32, 64, 'dre', 4), (64, 128, 'learned', 5), (16, 64, 'dre', 3), (128, 128, 'learned', 5),
                          (32, 256, 'dre', 4)])
def test_shapes(in_size, out_size, condition, levels):
    net = ARCH_REGISTRY.get('PaniniNet')(**dict(TINY, in_size=in_size, out_size=out_size, condition=condition))
    x = _input(net)
    y, extras = net(x, return_extras=True)
    n_latent = 2 * out_size.bit_length() - 4
    assert y.shape == (2, 3, out_size, out_size)
    assert net.num_levels == levels
    assert extras['masks'].shape == (2, levels, max(net.level_channels))
    assert extras['theta'].shape == (2, levels)
    assert extras['latent'].shape == (2, n_latent, 32)
    assert extras['v_dr'].shape == (2, 4 * TINY['dre_num_feat'])
    assert torch.isfinite(y).all()
    assert (net.dre is None) == (condition == 'learned')


def test_bad_input_and_options_are_refused():
    net = tiny()
    with pytest.raises(ValueError, match='expects'):
        net(torch.zeros(1, 3, 16, 16))
    with pytest.raises(ValueError, match='source'):
        net(_input(net), source='gan')
    with pytest.raises(ValueError, match='mask_bias'):
        net(_input(net), mask_bias=[1.0, 2.0])
    with pytest.raises(ValueError, match='power of two'):
        PaniniNet(in_size=48)
    with pytest.raises(ValueError, match='condition'):
        tiny(condition='none')


def test_catconv_has_more_parameters_and_no_masks():
    dafi, cat = tiny(condition='learned'), tiny(condition='learned', fusion='catconv')
    assert sum(p.numel() for p in cat.parameters()) > sum(p.numel() for p in dafi.parameters())
    y, extras = cat(_input(cat), return_extras=True)
    assert y.shape == (2, 3, 64, 64)
    assert extras['masks'] is None and extras['v_dr'] is None
    with pytest.raises(ValueError, match='dafi'):
        cat(_input(cat), source='ife')


def test_masks_in_open_unit_interval_and_complementary():
    net = tiny().eval()
    x = _input(net)
    _, extras = net(x, return_extras=True)
    masks = extras['masks']
    assert ((masks > 0) & (masks < 1)).all()
    # the input weight is the other softmax slot: recompute it from the logits independently
    y = net.dafi.mapping(extras['v_dr'])
    c = net.level_channels[0]
    logits = y[:, :2 * c].reshape(-1, 2, c)
    w_prior, w_input = torch.softmax(logits, dim=1).unbind(1)
    assert torch.allclose(masks[:, 0], w_prior, atol=1e-6)
    assert torch.allclose(masks[:, 0] + w_input, torch.ones_like(w_input), atol=1e-6)
    assert torch.allclose(extras['theta'], masks.mean(dim=2), atol=1e-6)


def _level0_parts(net, x, source):
    """F_GPB, F_IFE, mask and the fused feature at the 4x4 level.

    On CPU the GPM runs a batch one face at a time (``GPM.faces_one_by_one``), so its hooks fire once per face: the
    captured pieces are concatenated in call order.
    """
    cap = {'gpb': [], 'ife': [], 'fused': []}
    hooks = [
        net.gpm.style_conv1.register_forward_hook(lambda m, i, o: cap['gpb'].append(o.clone())),
        net.ife.h_convs[0].register_forward_hook(lambda m, i, o: cap['ife'].append(o)),
        net.gpm.style_convs[0].register_forward_pre_hook(lambda m, a: cap['fused'].append(a[0])),
    ]
    with torch.no_grad():
        _, extras = net(x, source=source, return_extras=True)
    for h in hooks:
        h.remove()
    m = extras['masks'][:, 0, :, None, None]
    gpb, ife, fused = (torch.cat(cap[k]) for k in ('gpb', 'ife', 'fused'))
    assert gpb.shape == ife.shape == fused.shape == (x.shape[0],) + gpb.shape[1:]
    return gpb, ife, m, fused


@pytest.mark.parametrize('source', ['both', 'ife', 'gpb'])
def test_source_follows_eqs_7_12_13(source):
    net = tiny().eval()
    gpb, ife, m, fused = _level0_parts(net, _input(net), source)
    expected = {'both': m * gpb + (1 - m) * ife, 'ife': (1 - m) * ife, 'gpb': m * gpb}[source]
    assert torch.allclose(fused, expected, atol=1e-6)
    assert gpb.abs().sum() > 0 and ife.abs().sum() > 0


def test_source_changes_the_output():
    net = tiny().eval()
    x = _input(net)
    with torch.no_grad():
        outs = {s: net(x, source=s) for s in ('both', 'ife', 'gpb')}
    assert not torch.allclose(outs['both'], outs['ife'])
    assert not torch.allclose(outs['both'], outs['gpb'])


def test_positive_mask_bias_raises_theta_and_moves_output_monotonically():
    net = tiny().eval()
    x = _input(net)
    with torch.no_grad():
        runs = [net(x, mask_bias=b, return_extras=True) for b in (-1.0, 0.0, 1.0, 2.0, 4.0)]
    thetas = [r[1]['theta'] for r in runs]
    for lo, hi in zip(thetas, thetas[1:]):
        assert (hi > lo).all()
    y0 = runs[1][0]
    dist = [float((r[0] - y0).abs().mean()) for r in runs[2:]]
    assert 0 < dist[0] < dist[1] < dist[2]
    masks = runs[-1][1]['masks']
    assert ((masks >= 0) & (masks <= 1)).all()
    # one value per level: only the biased level moves
    with torch.no_grad():
        _, ex = net(x, mask_bias=[0.0, 0.0, 0.0, 3.0], return_extras=True)
    assert torch.allclose(ex['theta'][:, :3], runs[1][1]['theta'][:, :3])
    assert (ex['theta'][:, 3] > runs[1][1]['theta'][:, 3]).all()


def test_gradients_reach_trainable_parts_not_frozen_dre():
    net = tiny(fix_dre=True).train()
    assert not net.dre.training  # frozen DRE keeps its BatchNorm statistics
    net(_input(net)).square().mean().backward()
    for name in ('ife', 'lce', 'dafi'):
        grads = [p.grad for p in getattr(net, name).parameters()]
        assert all(g is not None for g in grads), name
        assert sum(float(g.abs().sum()) for g in grads) > 0, name
    assert net.gpm.style_convs[0].modulated_conv.weight.grad.abs().sum() > 0
    assert all(p.grad is None and not p.requires_grad for p in net.dre.parameters())


def test_every_trainable_parameter_gets_a_gradient():
    """No trainable parameter is unused (DistributedDataParallel would wait for it)."""
    for kw in ({'fix_dre': False}, {'condition': 'learned'}, {'fusion': 'catconv'}):
        net = tiny(**kw).train()
        with torch.no_grad():
            for conv in net.gpm.style_convs:
                conv.weight.fill_(0.1)
        net(_input(net)).square().mean().backward()
        missing = [n for n, p in net.named_parameters() if p.requires_grad and p.grad is None]
        assert missing == [], (kw, missing)


def test_official_training_mode_and_frozen_decoder():
    net = tiny(fix_dre=False, fix_decoder=True).train()
    assert net.dre.training
    net(_input(net)).mean().backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in net.dre.parameters())
    assert all(p.grad is None for p in net.gpm.parameters())


def test_learned_condition_gets_gradient():
    net = tiny(condition='learned').train()
    net(_input(net)).mean().backward()
    assert net.learned_v_dr.grad.abs().sum() > 0


def test_basicsr_stylegan2_checkpoint_loads_into_gpm(tmp_path):
    g = StyleGAN2Generator(64, num_style_feat=32, channel_multiplier=1, narrow=0.125)
    path = str(tmp_path / 'stylegan2.pth')
    torch.save({'params_ema': g.state_dict()}, path)
    net = tiny(decoder_load_path=path).eval()
    ours = net.gpm.state_dict()
    for k, v in g.state_dict().items():
        assert torch.equal(ours[k], v), k
    kernel = make_resample_kernel([1, 3, 3, 1]) * 4
    assert torch.equal(ours['style_convs.0.modulated_conv.smooth.kernel'], kernel)
    assert torch.equal(ours['to_rgbs.0.upsample.kernel'], kernel)
    # the composed GPM still computes exactly what BasicSR's generator computes
    latent = torch.randn(2, g.num_latent, 32)
    with torch.no_grad():
        ref, _ = g([latent], input_is_latent=True, randomize_noise=False)
        out, _ = net.gpm([latent], input_is_latent=True, randomize_noise=False)
    assert torch.equal(out, ref)


def test_basicsr_checkpoint_with_wrong_shapes_is_refused(tmp_path):
    g = StyleGAN2Generator(64, num_style_feat=32, channel_multiplier=1, narrow=0.25)
    path = str(tmp_path / 'stylegan2.pth')
    torch.save({'params_ema': g.state_dict()}, path)
    with pytest.raises(RuntimeError, match='size mismatch'):
        tiny(decoder_load_path=path)


def test_fir_kernels_are_buffers_that_follow_the_state_dict():
    net = tiny().eval()
    x = _input(net)
    sd = net.state_dict()
    assert 'gpm.style_convs.0.modulated_conv.smooth.kernel' in sd and 'gpm.to_rgbs.1.upsample.kernel' in sd
    with torch.no_grad():
        y = net(x)
        sd['gpm.to_rgbs.1.upsample.kernel'] = sd['gpm.to_rgbs.1.upsample.kernel'] / 4
        net.load_state_dict(sd)
        assert not torch.allclose(net(x), y)
    assert net.gpm.to_rgbs[1].upsample.kernel.sum() == pytest.approx(1.0)


def test_dre_load_path_from_our_moco(tmp_path):
    moco = MoCo(num_feat=8, dim=32, K=16)
    path = str(tmp_path / 'udrl.pth')
    torch.save({'params': moco.state_dict()}, path)
    net = tiny(dre_load_path=path)
    for k, v in moco.encoder_q.state_dict().items():
        assert torch.equal(net.dre.state_dict()[k], v), k
    with pytest.raises(ValueError, match='no DRE'):
        tiny(condition='learned', dre_load_path=path)


def test_same_input_same_output_and_random_noise_option():
    net = tiny().eval()
    x = _input(net)
    with torch.no_grad():
        for conv in net.gpm.style_convs:  # noise strengths start at 0 in BasicSR
            conv.weight.fill_(0.5)
        a, b = net(x), net(x)
        c = net(x, randomize_noise=True)
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA GPU')
def test_cuda_matches_cpu():
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    net = tiny().eval()
    x = _input(net)
    with torch.no_grad():
        ref, ex_ref = net(x, return_extras=True)
        net = net.cuda()
        assert net.gpm.to_rgbs[0].upsample.kernel.is_cuda  # FIR kernels are buffers: they moved
        out, ex = net(x.cuda(), return_extras=True)
    assert (out.cpu() - ref).abs().max() < 1e-4
    assert (ex['masks'].cpu() - ex_ref['masks']).abs().max() < 1e-5


def test_dre_sees_average_pooled_input():
    net = tiny(in_size=64, out_size=64, dre_in_size=32).eval()
    x = _input(net)
    with torch.no_grad():
        v = net.degradation_representation(x)
        ref = net.dre(torch.nn.functional.avg_pool2d(x, 2))
    assert torch.allclose(v, ref, atol=1e-6)
