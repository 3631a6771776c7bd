"""scripts/convert_gfpgan_to_clean.py: a trained GFP-GAN generator -> GFPGANv1Clean (exact for GFPGANBilinear,
refused / approximate for GFPGANv1), and the -v gfpgan1.3 family running trained and converted files."""
import os
import os.path as osp

import pytest
import torch

pytest.importorskip('gfpgan')

from gfpgan.archs.gfpgan_bilinear_arch import GFPGANBilinear  # noqa: E402
from gfpgan.archs.gfpganv1_arch import GFPGANv1  # noqa: E402
from gfpgan.archs.gfpganv1_clean_arch import GFPGANv1Clean  # noqa: E402
from helpers import REPO_ROOT as REPO  # noqa: E402
from helpers import load_script

from panininet.families import build_family  # noqa: E402

# a non-512 size, a narrow network and GFP-GAN v1's other options, as our net_g files record them
ARCH = dict(out_size=32, num_style_feat=16, channel_multiplier=1, num_mlp=8,
            lr_mlp=0.01, input_is_latent=True, different_w=True, narrow=0.125, sft_half=True)
CLEAN = ('out_size', 'num_style_feat', 'channel_multiplier', 'num_mlp', 'input_is_latent', 'different_w', 'narrow',
         'sft_half')


def _script(name):
    module = load_script(osp.join(REPO, 'scripts', f'{name}.py'), f'_script_{name}')
    return module


@pytest.fixture(scope='module')
def convert():
    return _script('convert_gfpgan_to_clean')


def trained_file(path, cls, record_arch=True):
    """A 'trained' generator as PaniniGFPGANModel saves it: random weights with non-zero biases / noise strengths."""
    torch.manual_seed(0)
    net = cls(**ARCH, fix_decoder=False)
    with torch.no_grad():
        for name, p in net.named_parameters():
            if name.endswith('bias') or p.numel() == 1:
                p.add_(torch.randn_like(p) * 0.1)
    obj = {'params': net.state_dict(), 'params_ema': net.state_dict()}
    if record_arch:
        obj['arch'] = dict(ARCH, type=cls.__name__)
    torch.save(obj, path)
    return net


def _run(net, x):
    with torch.no_grad():
        return net.eval()(x, return_rgb=False, randomize_noise=False)[0]


def test_bilinear_converts_exactly(convert, tmp_path):
    trained = trained_file(tmp_path / 'net_g.pth', GFPGANBilinear)
    assert convert.main([str(tmp_path / 'net_g.pth'), str(tmp_path / 'clean.pth')]) == 0
    obj = torch.load(tmp_path / 'clean.pth', weights_only=True)
    assert obj['arch'] == dict({k: ARCH[k] for k in CLEAN}, type='GFPGANv1Clean')
    clean = GFPGANv1Clean(**{k: ARCH[k] for k in CLEAN})
    clean.load_state_dict(obj['params_ema'], strict=True)
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    a, b = _run(trained, x), _run(clean, x)
    assert a.abs().max() > 1  # a non-trivial output
    torch.testing.assert_close(b, a, rtol=0, atol=1e-4)


def test_v1_is_refused_unless_approximate(convert, tmp_path, capsys):
    trained_file(tmp_path / 'net_g.pth', GFPGANv1)
    assert convert.main([str(tmp_path / 'net_g.pth'), str(tmp_path / 'clean.pth')]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and 'GFPGANv1' in err and 'GFPGANBilinear' in err
    assert not (tmp_path / 'clean.pth').exists()
    assert convert.main([str(tmp_path / 'net_g.pth'), str(tmp_path / 'clean.pth'), '--approximate']) == 0
    assert 'approximate: largest output difference' in capsys.readouterr().out


@pytest.mark.parametrize('args', [[], ['--from_type', 'GFPGANBilinear', '--out_size', '64']])
def test_bad_input_is_one_line_exit_2(convert, tmp_path, capsys, args):
    trained_file(tmp_path / 'net_g.pth', GFPGANBilinear, record_arch=False)  # GFP-GAN's own files record nothing
    assert convert.main([str(tmp_path / 'net_g.pth'), str(tmp_path / 'clean.pth'), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and ('--from_type' in err or 'does not fit' in err), err
    assert convert.main([str(tmp_path / 'net_g.pth'), str(tmp_path / 'net_g.pth')]) == 2  # never the input
    assert convert.main([str(tmp_path / 'nope.pth'), str(tmp_path / 'c.pth')]) == 2


@pytest.mark.parametrize('cls', [GFPGANv1, GFPGANBilinear])
def test_family_runs_trained_and_converted_files(convert, tmp_path, cls):
    """-v gfpgan1.3 --model_path: a trained net_g file builds its recorded arch (same output as the trained
    network), and the converted file builds GFPGANv1Clean at the trained size."""
    trained = trained_file(tmp_path / 'net_g.pth', cls)
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    family = build_family('gfpgan1.3', str(tmp_path / 'net_g.pth'), device='cpu')
    assert (family.in_size, family.out_size, type(family.net).__name__) == (32, 32, cls.__name__)
    torch.manual_seed(1)
    out = family(x, None)
    torch.manual_seed(1)
    with torch.no_grad():
        ref = trained.eval()(x, return_rgb=False)[0]
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-6)
    if cls is GFPGANBilinear:
        assert convert.main([str(tmp_path / 'net_g.pth'), str(tmp_path / 'clean.pth')]) == 0
        clean = build_family('gfpgan1.3', str(tmp_path / 'clean.pth'), device='cpu')
        assert type(clean.net).__name__ == 'GFPGANv1Clean' and clean.out_size == 32
        torch.manual_seed(1)
        torch.testing.assert_close(clean(x, None), ref, rtol=0, atol=1e-4)


def test_cli_restores_with_a_converted_file(convert, shared_dir, tmp_path):
    """inference_panini.py -v gfpgan1.3 --model_path converted.pth --aligned (as the README says)."""
    trained_file(tmp_path / 'net_g.pth', GFPGANBilinear)
    assert convert.main([str(tmp_path / 'net_g.pth'), str(tmp_path / 'clean.pth')]) == 0
    cli = load_script(osp.join(REPO, 'inference_panini.py'), '_cli')
    face = osp.join(shared_dir, 'testdata', 'cropped_faces', 'Julia_Roberts_crop.png')
    out = tmp_path / 'out'
    assert cli.main(['-i', face, '-o', str(out), '-v', 'gfpgan1.3', '--model_path', str(tmp_path / 'clean.pth'),
                     '--aligned', '--device', 'cpu', '--no_download', '--weights_dir', str(tmp_path / 'empty')]) == 0
    assert os.listdir(out / 'restored_faces') == ['Julia_Roberts_crop_00.png']
