"""CPU bf16: the units are detected, every family runs bf16 within 40 dB of fp32, PaniniNet stays bf16 between its
layers (fp32 where accuracy needs it), and the official recipe network keeps the bound at full size (slow)."""
import copy
import importlib.util
import json
import math
import os.path as osp

import numpy as np
import pytest
import torch
from torch import nn

from panininet.archs.gpm import StyleConvCPU, ToRGBCPU
from panininet.archs.rrdb import DenseBlock
from panininet.families import random_family
from panininet.platform.cpu_bf16 import cpu_bf16_units, store_convs_in_bf16

HAS_GFPGAN = importlib.util.find_spec('gfpgan') is not None
PSNR_MIN = 40.0  # dB, bf16 against fp32
TINY_PANINI = dict(in_size=32, out_size=64, narrow=0.25, channel_multiplier=1, num_style_feat=32, dre_num_feat=4,
                   dre_in_size=32)
TINY = {
    'mfr': TINY_PANINI,
    'sr16': dict(TINY_PANINI, in_size=64, out_size=128, rrdb_channels=4, num_rrdbs=1),
    'gfpgan1.3': dict(out_size=32, num_style_feat=32, channel_multiplier=1, narrow=0.25, num_mlp=2),
    'gpen512': dict(out_size=32, num_style_feat=8, num_mlp=2, channel_multiplier=1, narrow=1 / 32),
    'mmrb': dict(out_size=32, num_style_feat=8, num_mlp=2, channel_multiplier=1, narrow=1 / 32),
}


def psnr(a, b):
    a, b = ((a + 1) / 2).clamp(0, 1), ((b + 1) / 2).clamp(0, 1)
    mse = (a - b).double().pow(2).mean().item()
    return float('inf') if mse == 0 else 10 * math.log10(1 / mse)


def _open_noise(net):
    """Non-zero noise strengths (StyleGAN2's start at 0), so the noise / noise-branch paths are part of the test."""
    with torch.no_grad():
        for name, p in net.named_parameters():
            if p.numel() == 1 and (name.endswith('.weight') or name.endswith('noise_weight')):
                p.fill_(0.3)


@pytest.mark.parametrize(('flags', 'units'), [
    ('fpu avx512f avx512_bf16 amx_bf16 amx_tile', ('AMX', 'AVX-512 BF16')),
    ('fpu avx512f avx512_bf16', ('AVX-512 BF16',)),
    ('fpu avx2 fma', ())])
def test_bf16_units_are_read_off_cpuinfo(tmp_path, flags, units):
    path = tmp_path / 'cpuinfo'
    path.write_text(f'processor\t: 0\nmodel name\t: test\nflags\t\t: {flags}\n\nprocessor\t: 1\nflags\t\t: {flags}\n')
    assert cpu_bf16_units(str(path)) == units


def test_convs_stored_in_bf16_compute_what_autocast_computes():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.LeakyReLU(0.2), nn.ConvTranspose2d(8, 4, 4, 2, 1),
                        nn.Linear(16, 5))
    x = torch.randn(1, 3, 8, 8).contiguous(memory_format=torch.channels_last)
    with torch.no_grad(), torch.autocast('cpu', dtype=torch.bfloat16):
        before = net(x)
        assert store_convs_in_bf16(net) == 2
        after = net(x)
    assert net[0].weight.dtype == torch.bfloat16 and net[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert net[2].bias.dtype == torch.bfloat16 and net[3].weight.dtype == torch.float32  # linears keep fp32
    assert after.dtype == before.dtype == torch.bfloat16 and torch.equal(after, before)


@pytest.mark.parametrize('name', sorted(TINY))
def test_every_family_runs_bf16_within_40db_of_fp32(name):
    if name.startswith('gfpgan') and not HAS_GFPGAN:
        pytest.skip('needs the gfpgan package')
    torch.manual_seed(0)
    fp32 = random_family(name, 'cpu', 'fp32', **TINY[name])
    if not name.startswith('gfpgan'):  # GFPGAN draws fresh noise per call (randomize_noise): keep its strengths 0
        _open_noise(fp32.net)
    bf16 = type(fp32)(copy.deepcopy(fp32.net), 'cpu', 'bf16')
    assert bf16.cpu_bf16
    x = torch.rand(2, 3, fp32.in_size, fp32.in_size) * 2 - 1
    y32, y16 = fp32(x), bf16(x)
    assert y16.dtype == torch.float32 and y16.shape == y32.shape == (2, 3, fp32.out_size, fp32.out_size)
    assert torch.isfinite(y16).all()
    assert not torch.equal(y16, y32)  # it did run in bf16
    assert psnr(y16, y32) >= PSNR_MIN, psnr(y16, y32)
    assert torch.equal(bf16(x[1:]), y16[1:])  # a batch runs face by face: the same as that face alone


def test_panini_stays_bf16_between_layers_and_fp32_where_accuracy_needs_it():
    torch.manual_seed(0)
    fam = random_family('mfr', 'cpu', 'bf16', **TINY_PANINI)
    seen = {}

    def record(module, args, out):
        seen.setdefault(type(module).__name__, set()).add(out.dtype)

    kinds = (StyleConvCPU, ToRGBCPU, DenseBlock, nn.Conv2d)
    hooks = [m.register_forward_hook(record) for m in fam.net.modules() if isinstance(m, kinds)]
    hooks.append(fam.net.lce.fc.register_forward_hook(record))
    fam(torch.rand(1, 3, 32, 32) * 2 - 1)
    for h in hooks:
        h.remove()
    assert seen['StyleConvCPU'] == seen['DenseBlock'] == seen['Conv2d'] == {torch.bfloat16}  # features
    assert seen['ToRGBCPU'] == seen['Linear'] == {torch.float32}  # the RGB skip sum and w+


@pytest.mark.slow
def test_official_recipe_network_bf16_within_40db_of_fp32(shared_dir):
    """MFR with the official recipe weights on the official input, full size: PSNR and max abs of bf16 vs fp32."""
    from official_recipe import make_recipe_state_dict

    from panininet.archs.panini_arch import PaniniNet
    from panininet.families.panini_family import PaniniFamily
    from panininet.weights.official import convert_official_state_dict

    ref = osp.join(shared_dir, 'official_reference')
    with open(osp.join(ref, 'manifest_panini_mfr.json')) as f:
        state_dict, arch = convert_official_state_dict(make_recipe_state_dict(json.load(f)))
    net = PaniniNet(**arch)
    net.load_state_dict(state_dict, strict=True)
    x = torch.from_numpy(np.load(osp.join(ref, 'mfr_input.npy')))
    y32 = PaniniFamily(copy.deepcopy(net), 'cpu', 'fp32')(x)
    y16 = PaniniFamily(net, 'cpu', 'bf16')(x)
    assert psnr(y16, y32) >= PSNR_MIN
    assert (y16 - y32).abs().max().item() < 0.1
