"""The restoration-family registry: every registered family builds from a small weights file in its real layout,
honours its in/out sizes and the batched call, and the weight acts exactly where a family says it does."""
import importlib.util

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from panininet.archs.panini_arch import PaniniNet
from panininet.families import FAMILIES, RestorationFamily, build_family, family_names, random_family, register_family
from panininet.families.gfpgan_family import gfpgan_arch_from_state
from panininet.families.panini_family import PaniniFamily
from panininet.families.variants import variant_kwargs
from panininet.pipeline.restorer import VERSIONS, PaniniRestorer
from panininet.weights.checkpoint import load_checkpoint_file
from panininet.weights.releases import WeightsNotFoundError

HAS_GFPGAN = importlib.util.find_spec('gfpgan') is not None
TINY = dict(out_size=64, narrow=0.25, channel_multiplier=1, num_style_feat=32, dre_num_feat=4, dre_in_size=32)
# sr16 file recording only what differs from the variant: in_size 64 and the learned v_DR come from variants.py
TINY_SR = dict(TINY, out_size=128, rrdb_channels=4, num_rrdbs=1, cbam_reduction=2)
TINY_MMRB = dict(out_size=32, num_style_feat=8, num_mlp=2, channel_multiplier=1, narrow=1 / 32)
TINY_GFPGAN = dict(out_size=32, num_style_feat=32, channel_multiplier=1, narrow=0.25, num_mlp=2, different_w=True,
                   sft_half=True, input_is_latent=True, fix_decoder=False)


def write_panini(path, name, arch):
    torch.manual_seed(0)
    net = PaniniNet(**variant_kwargs(name, **arch))
    torch.save({'params_ema': net.state_dict(), 'arch': arch}, path)


def write_gfpgan(path):
    from gfpgan.archs.gfpganv1_clean_arch import GFPGANv1Clean

    torch.manual_seed(0)
    net = GFPGANv1Clean(**TINY_GFPGAN)
    for name, p in net.named_parameters():  # StyleGAN2 noise strengths start at 0: make them act
        if name.endswith('.weight') and p.numel() == 1:
            p.data.fill_(0.1)
    torch.save({'params_ema': net.state_dict()}, path)  # GFPGAN's release layout: params_ema, no arch


def write_mmrb(path):
    from panininet.archs.mmrb_arch import MMRBNet

    torch.manual_seed(0)
    arch = dict(TINY_MMRB, prior_load_path=None)  # as training records it: without the load path
    net = MMRBNet(**arch)
    for name, p in net.named_parameters():
        if name.endswith('noise_weight'):  # open the concatenated noise branches
            p.data.fill_(0.5)
    torch.save({'params_ema': net.state_dict(), 'arch': TINY_MMRB}, path)


def write_gpen(path):
    from gpen_layout import full_generator_layout, random_state

    torch.save(random_state(full_generator_layout(32, style_dim=8, n_mlp=2, channel_multiplier=1, narrow=1 / 32)),
               path)  # GPEN's own release layout: a bare FullGenerator state dict


# name -> (writer, in_size, out_size, supports_weight)
CASES = {
    'mfr': (lambda p: write_panini(p, 'mfr', dict(TINY, in_size=32)), 32, 64, True),
    'sr16': (lambda p: write_panini(p, 'sr16', TINY_SR), 64, 128, True),
    'gfpgan1.3': (write_gfpgan, 32, 32, False),
    'gfpgan1.4': (write_gfpgan, 32, 32, False),
    'gpen512': (write_gpen, 32, 32, False),
    'mmrb': (write_mmrb, 32, 32, False),
}


def test_every_registered_family_is_tested_and_listed():
    assert set(CASES) == set(FAMILIES)
    assert VERSIONS == family_names() == ('mfr', 'sr16', 'gfpgan1.3', 'gfpgan1.4', 'gpen512', 'mmrb')


@pytest.mark.parametrize('name', sorted(CASES))
def test_family_builds_from_file_and_runs_batched(name, tmp_path):
    if name.startswith('gfpgan') and not HAS_GFPGAN:
        pytest.skip('gfpgan is not installed')
    writer, in_size, out_size, supports_weight = CASES[name]
    path = str(tmp_path / 'weights.pth')
    writer(path)
    family = build_family(name, path, device='cpu')
    assert (family.in_size, family.out_size, family.supports_weight) == (in_size, out_size, supports_weight)
    faces = torch.rand(2, 3, in_size, in_size, generator=torch.Generator().manual_seed(1)) * 2 - 1
    torch.manual_seed(2)
    batched = family(faces, 0.5)
    assert batched.shape == (2, 3, out_size, out_size) and batched.dtype == torch.float32
    assert torch.isfinite(batched).all()
    if name.startswith('gfpgan'):  # random StyleGAN2 noise per call, as GFPGANer: same draws, same faces
        torch.manual_seed(2)
        again = family(faces, 0.5)
        torch.testing.assert_close(again, batched)
    else:  # deterministic: a face restored in a batch is the face restored alone
        torch.testing.assert_close(family(faces[1:2], 0.5), batched[1:2], rtol=1e-4, atol=1e-4)
    torch.manual_seed(2)
    most_prior = family(faces, 0.0)
    torch.manual_seed(2)
    most_input = family(faces, 1.0)
    change = (most_prior - most_input).abs().mean().item()
    assert (change > 1e-3) if supports_weight else (change == 0.0)
    with pytest.raises(ValueError, match=r'\[0, 1\]'):
        family(faces, 1.5)


def test_unknown_family_lists_the_known_ones(tmp_path):
    for build in (lambda: build_family('gfpgan2', None), lambda: PaniniRestorer(version='gfpgan2', detector=None)):
        with pytest.raises(ValueError, match=r"Unknown version 'gfpgan2'; choose one of .*'mfr', 'sr16'"):
            build()


def test_panini_file_of_another_variant_is_refused_in_one_line(tmp_path):
    path = str(tmp_path / 'sr16.pth')
    write_panini(path, 'sr16', TINY_SR)
    with pytest.raises(ValueError, match=r'does not hold -v mfr weights') as err:
        build_family('mfr', path, device='cpu')
    assert '\n' not in str(err.value)


def test_family_without_release_asks_for_model_path(tmp_path):
    with pytest.raises(WeightsNotFoundError, match=r'-v mmrb has no released weights.*--model_path'):
        build_family('mmrb', None, device='cpu')
    with pytest.raises(WeightsNotFoundError, match='GPEN-BFR-512.pth') as err:  # GPEN's release, by its URL
        build_family('gpen512', None, device='cpu', weights_dir=str(tmp_path), allow_download=False)
    assert 'public-vigen-video.oss-cn-shanghai.aliyuncs.com/robin/models/GPEN-BFR-512.pth' in str(err.value)


def test_mmrb_file_of_another_network_is_refused_in_one_line(tmp_path):
    write_gpen(str(tmp_path / 'gpen.pth'))
    write_mmrb(str(tmp_path / 'mmrb.pth'))
    for path, name, match in ((tmp_path / 'gpen.pth', 'mmrb', 'does not hold -v mmrb'),
                              (tmp_path / 'mmrb.pth', 'gpen512', 'does not hold -v gpen512')):
        with pytest.raises(ValueError, match=match) as err:
            build_family(name, str(path), device='cpu')
        assert '\n' not in str(err.value)
    torch.save({'params_ema': {}, 'arch': {'in_size': 64}}, tmp_path / 'odd.pth')
    with pytest.raises(ValueError, match="does not take"):
        build_family('mmrb', str(tmp_path / 'odd.pth'), device='cpu')
    # a file without its arch entry: the sizes are read off the shapes
    state = load_checkpoint_file(str(tmp_path / 'mmrb.pth'))['params_ema']
    torch.save({'params': state}, tmp_path / 'bare.pth')
    family = build_family('mmrb', str(tmp_path / 'bare.pth'), device='cpu')
    assert (family.in_size, family.out_size) == (32, 32)
    assert family.net.prior.num_style_feat == TINY_MMRB['num_style_feat']


def test_precision_refused_before_the_file_is_read(tmp_path):
    with pytest.raises(ValueError, match='needs a GPU'):
        build_family('mfr', str(tmp_path / 'absent.pth'), device='cpu', precision='fp16')


def test_catconv_refuses_a_weight_it_cannot_honour():
    torch.manual_seed(0)
    family = PaniniFamily(PaniniNet(**variant_kwargs('catconv', **TINY, in_size=32)), device='cpu')
    assert not family.supports_weight
    faces = torch.zeros(1, 3, 32, 32)
    assert family(faces, 0.5).shape == (1, 3, 64, 64)
    with pytest.raises(ValueError, match='DAFI'):
        family(faces, 0.8)


@pytest.mark.skipif(not HAS_GFPGAN, reason='gfpgan is not installed')
def test_gfpgan_arch_is_read_off_the_shapes():
    from gfpgan.archs.gfpganv1_clean_arch import GFPGANv1Clean

    with torch.device('meta'):
        released = GFPGANv1Clean(**dict(TINY_GFPGAN, out_size=512, num_style_feat=512, channel_multiplier=2, narrow=1,
                                        num_mlp=8))
        tiny = GFPGANv1Clean(**dict(TINY_GFPGAN, different_w=False, sft_half=False))
    arch = gfpgan_arch_from_state(released.state_dict())
    assert {k: arch[k] for k in ('out_size', 'num_style_feat', 'channel_multiplier', 'narrow', 'num_mlp',
                                 'different_w', 'sft_half')} == dict(out_size=512, num_style_feat=512,
                                                                     channel_multiplier=2, narrow=1, num_mlp=8,
                                                                     different_w=True, sft_half=True)
    arch = gfpgan_arch_from_state(tiny.state_dict())
    assert (arch['different_w'], arch['sft_half'], arch['narrow']) == (False, False, 0.25)
    with pytest.raises(ValueError, match='GFPGANv1Clean'):
        gfpgan_arch_from_state({'conv.weight': torch.zeros(1)})


def test_random_family_has_the_released_sizes():
    with torch.device('meta'):
        family = random_family('sr16', device='meta')
    assert (family.in_size, family.out_size) == (64, 1024)


class ToyFamily(RestorationFamily):
    """A family added the documented way: one registered class; the restorer runs it without knowing it."""
    supports_weight = True

    def __init__(self, net, device=None, precision='fp32'):
        super().__init__(net, device, precision)
        self.in_size, self.out_size = 32, 64

    @classmethod
    def from_file(cls, name, path, device=None, precision='fp32', weights_dir=None):
        net = torch.nn.Conv2d(3, 3, 1)
        net.load_state_dict(load_checkpoint_file(path)['params_ema'])
        return cls(net, device, precision)

    def forward(self, faces, weight):
        w = 0.5 if weight is None else weight
        return F.interpolate(w * faces + (1 - w) * self.net(faces), scale_factor=2, mode='nearest')


def test_a_new_family_is_one_registered_class(tmp_path):
    register_family('toy')(ToyFamily)
    try:
        with pytest.raises(ValueError, match='registered twice'):
            register_family('toy')(ToyFamily)
        conv = torch.nn.Conv2d(3, 3, 1)
        torch.nn.init.zeros_(conv.weight)
        torch.nn.init.zeros_(conv.bias)
        torch.save({'params_ema': conv.state_dict()}, tmp_path / 'toy.pth')
        restorer = PaniniRestorer(model_path=str(tmp_path / 'toy.pth'), version='toy', detector=None, device='cpu')
        face = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
        keep = restorer.restore_faces([face], weight=1.0)[0]
        assert keep.shape == (64, 64, 3)
        assert np.abs(keep[::2, ::2].astype(int) - face).max() <= 1  # weight 1: the input, upsampled
        assert np.abs(restorer.restore_faces([face], weight=0.0)[0].astype(int) - 128).max() <= 1  # conv: 0
    finally:
        FAMILIES.pop('toy')
