"""Panini-Net fine-tuning with BasicSR's engine at tiny sizes on CPU: runs, checkpoints, validation, exact resume,
DDP (torchrun, gloo) against one process, frozen DRE, and the perceptual loss's value range.

Faces are real photos from ../shared/testdata resized to 128 px; the pre-trained networks (StyleGAN2 G and D, DRE,
VGG16) are random weights written to temporary files in the BasicSR / torchvision layouts, so the real loading code
runs and nothing is downloaded. Every experiment folder is under a temporary ``root_path``.
"""
import math
import os
import os.path as osp
import subprocess
import sys
from unittest import mock

import cv2
import pytest
import torch
import yaml
from basicsr.archs.stylegan2_arch import StyleGAN2Discriminator, StyleGAN2Generator
from basicsr.models import build_model
from helpers import exp_dir, load, logged, one_thread, run_training, save_options, set_option  # noqa: F401  (one_thread)

from panininet.archs.dre_arch import DegradationEncoder
from panininet.models.losses import VGGPerceptualLoss, vgg_features

pytestmark = pytest.mark.usefixtures('one_thread')
from helpers import REPO_ROOT as REPO  # noqa: E402

DATA = osp.join(REPO, 'tests', 'models', 'options')
CONFIGS = {'mfr': 'train_panini_mfr_tiny.yml', 'sr16': 'train_panini_sr16_tiny.yml'}
GEN = dict(num_style_feat=32, channel_multiplier=1, narrow=0.0625)  # as network_g in the tiny options


def face_paths(shared_dir):
    """The 8 distinct aligned faces of ../shared/testdata (5 CelebA-HQ GT, 3 GFPGAN crops)."""
    gt = osp.join(shared_dir, 'testdata', 'panini_examples', 'GT')
    crops = osp.join(shared_dir, 'testdata', 'cropped_faces')
    return [osp.join(gt, f) for f in sorted(os.listdir(gt))] + [osp.join(crops, f) for f in sorted(os.listdir(crops))]


@pytest.fixture(scope='module')
def assets(shared_dir, tmp_path_factory):
    root = str(tmp_path_factory.mktemp('train_panini'))
    faces = osp.join(root, 'faces')
    os.makedirs(faces)
    for p in face_paths(shared_dir):
        img = cv2.resize(cv2.imread(p), (128, 128), interpolation=cv2.INTER_AREA)
        cv2.imwrite(osp.join(faces, osp.splitext(osp.basename(p))[0] + '.png'), img)
    w = osp.join(root, 'weights')
    os.makedirs(w)
    torch.manual_seed(123)
    files = {}
    for size in (64, 128):
        files[f'g{size}'] = osp.join(w, f'stylegan2_g{size}.pth')
        torch.save({'params_ema': StyleGAN2Generator(size, **GEN).state_dict()}, files[f'g{size}'])
        files[f'd{size}'] = osp.join(w, f'stylegan2_d{size}.pth')
        d = StyleGAN2Discriminator(size, channel_multiplier=1, narrow=0.0625)
        torch.save({'params': d.state_dict()}, files[f'd{size}'])
    dre = DegradationEncoder(8)
    for m in dre.modules():  # non-trivial BatchNorm statistics, so a change would show
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    files['dre'] = osp.join(w, 'dre.pth')
    torch.save({'params': dre.state_dict()}, files['dre'])
    files['vgg'] = osp.join(w, 'vgg16.pth')  # torchvision layout (features.<i>.*), random weights
    torch.save({f'features.{k}': v for k, v in vgg_features('vgg16', 'pool5').state_dict().items()}, files['vgg'])
    return dict(root=root, faces=faces, **files)


def write_opt(assets, config, name, **changes):
    """Tiny options with the TEST paths filled in; ``changes`` maps 'a.b.c' (or 'a__b__c') to a value."""
    with open(osp.join(DATA, CONFIGS[config])) as f:
        opt = yaml.safe_load(f)
    size = opt['network_g']['out_size']
    opt['name'] = name
    opt['datasets']['train']['dataroot_gt'] = assets['faces']
    opt['datasets']['val']['dataroot_gt'] = assets['faces']
    opt['network_g']['decoder_load_path'] = assets[f'g{size}']
    if 'dre_load_path' in opt['network_g']:
        opt['network_g']['dre_load_path'] = assets['dre']
    opt['path']['pretrain_network_d'] = assets[f'd{size}']
    opt['train']['perceptual_opt']['vgg_load_path'] = assets['vgg']
    for key, value in changes.items():
        set_option(opt, key.replace('__', '.'), value)
    return save_options(assets['root'], name, opt)




@pytest.fixture(scope='module')
def straight_mfr(assets):
    """6 iterations of the tiny MFR config (checkpoints at 3 and 6; 4 iterations per epoch, so it crosses one)."""
    lines = run_training(assets['root'], write_opt(assets, 'mfr', 'mfr_straight'))
    return lines


def test_mfr_run_writes_checkpoints_metrics_images(assets, straight_mfr):
    d = exp_dir(assets['root'], 'mfr_straight')
    for it in (3, 6, 'latest'):
        g = load(osp.join(d, 'models', f'net_g_{it}.pth'))
        assert set(g) == {'params', 'params_ema', 'arch'}
        assert set(load(osp.join(d, 'models', f'net_d_{it}.pth'))) == {'params'}
    for it in (3, 6):
        state = load(osp.join(d, 'training_states', f'{it}.state'))
        assert state['iter'] == it and len(state['optimizers']) == 2 and len(state['rng']) == 1
    for name in ('l_g_pix', 'l_g_percep', 'l_g_gan', 'l_d_real', 'l_d_fake', 'l_d_r1'):
        values = logged(straight_mfr, name)
        assert values and all(math.isfinite(v) for v in values), (name, values)
    assert len(logged(straight_mfr, 'l_g_pix')) == 6 and len(logged(straight_mfr, 'l_d_r1')) == 3  # R1 every 2
    psnr, ssim = logged(straight_mfr, '# psnr'), logged(straight_mfr, '# ssim')
    assert psnr and 5 < psnr[-1] < 60 and ssim and -1 <= ssim[-1] <= 1
    vis = osp.join(d, 'visualization')
    images = [osp.join(r, f) for r, _, fs in os.walk(vis) for f in fs if f.endswith('.png')]
    assert len(images) == 8  # one per validation face
    assert cv2.imread(images[0]).shape == (64, 64, 3)


def test_trained_generator_loads_with_its_arch(assets, straight_mfr):
    from panininet.archs.panini_arch import PaniniNet
    from panininet.weights.panini_checkpoint import load_panini_weights
    state, arch = load_panini_weights(osp.join(exp_dir(assets['root'], 'mfr_straight'), 'models', 'net_g_latest.pth'))
    assert arch['in_size'] == 32 and arch['out_size'] == 64 and 'dre_load_path' not in arch
    net = PaniniNet(**arch)
    net.load_state_dict(state)
    assert net(torch.zeros(1, 3, 32, 32)).shape == (1, 3, 64, 64)


def test_frozen_dre_unchanged(assets, straight_mfr):
    dre = load(assets['dre'])['params']
    g = load(osp.join(exp_dir(assets['root'], 'mfr_straight'), 'models', 'net_g_6.pth'))
    for key in ('params', 'params_ema'):
        trained = {k[len('dre.'):]: v for k, v in g[key].items() if k.startswith('dre.')}
        assert trained.keys() == dre.keys()
        for k, v in dre.items():  # weights and BatchNorm statistics
            assert torch.equal(trained[k], v), k
    # while the rest of the generator did change
    g3 = load(osp.join(exp_dir(assets['root'], 'mfr_straight'), 'models', 'net_g_3.pth'))['params']
    assert [k for k, v in g3.items() if not k.startswith('dre.') and not torch.equal(v, g['params'][k])]


def test_exact_resume(assets, straight_mfr):
    """3 iterations, stop, --auto_resume to 6 == 6 straight iterations, bit for bit (networks, EMA, D, optimisers)."""
    run_training(assets['root'], write_opt(assets, 'mfr', 'mfr_resume', train__total_iter=3))
    assert not osp.exists(osp.join(exp_dir(assets['root'], 'mfr_resume'), 'models', 'net_g_6.pth'))
    lines = run_training(assets['root'], write_opt(assets, 'mfr', 'mfr_resume'), '--auto_resume')
    assert any('Resuming training from epoch: 0, iter: 3' in line for line in lines)
    assert logged(lines, 'l_g_pix') == logged(straight_mfr, 'l_g_pix')[3:]
    a, b = (osp.join(exp_dir(assets['root'], n), 'models') for n in ('mfr_straight', 'mfr_resume'))
    for f in ('net_g_6.pth', 'net_d_6.pth'):
        sa, sb = load(osp.join(a, f)), load(osp.join(b, f))
        for key in ('params', 'params_ema') if f.startswith('net_g') else ('params',):
            for k in sa[key]:
                assert torch.equal(sa[key][k], sb[key][k]), (f, key, k)
    ta = load(osp.join(exp_dir(assets['root'], 'mfr_straight'), 'training_states', '6.state'))
    tb = load(osp.join(exp_dir(assets['root'], 'mfr_resume'), 'training_states', '6.state'))
    for oa, ob in zip(ta['optimizers'], tb['optimizers']):
        for i, st in oa['state'].items():
            for k, v in st.items():
                assert torch.equal(v, ob['state'][i][k]), (i, k)
    assert ta['schedulers'] == tb['schedulers']


def test_sr16_run(assets):
    lines = run_training(assets['root'], write_opt(assets, 'sr16', 'sr16_run', train__total_iter=2,
                                                   logger__save_checkpoint_freq=2))
    d = exp_dir(assets['root'], 'sr16_run')
    assert set(load(osp.join(d, 'models', 'net_g_2.pth'))) == {'params', 'params_ema', 'arch'}
    assert osp.isfile(osp.join(d, 'models', 'net_d_2.pth')) and osp.isfile(osp.join(d, 'training_states', '2.state'))
    values = logged(lines, 'l_g_pix') + logged(lines, 'l_g_gan') + logged(lines, 'l_d_fake')
    assert len(values) == 6 and all(math.isfinite(v) for v in values)
    assert logged(lines, '# psnr')
    images = [f for _, _, fs in os.walk(osp.join(d, 'visualization')) for f in fs if f.endswith('.png')]
    assert len(images) == 8


def _model(assets, config):
    with open(write_opt(assets, config, f'model_{config}')) as f:
        opt = yaml.safe_load(f)
    opt.update(is_train=True, dist=False, rank=0, world_size=1, root_path=assets['root'], auto_resume=False)
    for phase, ds in opt['datasets'].items():
        ds['phase'] = phase
    exp = osp.join(assets['root'], 'experiments', opt['name'])
    opt['path'].update(experiments_root=exp, models=osp.join(exp, 'models'), log=exp,
                       training_states=osp.join(exp, 'training_states'), visualization=osp.join(exp, 'vis'))
    return build_model(opt), opt


@pytest.mark.parametrize('config', ['mfr', 'sr16'])
def test_l1_decreases_on_training_batch(assets, config):
    from basicsr.data import build_dataset
    model, opt = _model(assets, config)
    ds = build_dataset(opt['datasets']['train'])
    batch = {k: torch.stack([ds[i][k] for i in (0, 5)]) for k in ('lq', 'gt')}
    l1 = []
    for it in range(1, 7):
        model.feed_data(batch)
        model.optimize_parameters(it)
        l1.append(model.log_dict['l_g_pix'])
        assert all(math.isfinite(v) for v in model.log_dict.values())
    assert l1[-1] < 0.8 * l1[0], l1


def test_missing_pretrained_file_names_option(assets):
    with open(write_opt(assets, 'mfr', 'missing')) as f:
        opt = yaml.safe_load(f)
    opt.update(is_train=True, dist=False, rank=0, world_size=1, root_path=assets['root'])
    opt['path']['pretrain_network_d'] = 'no/such/d.pth'
    with pytest.raises(FileNotFoundError, match=r'path.pretrain_network_d'):
        build_model(opt)
    opt['path']['pretrain_network_d'] = assets['d64']
    opt['network_g']['dre_load_path'] = 'no/such/dre.pth'
    with pytest.raises(FileNotFoundError, match=r'network_g.dre_load_path.*no/such/dre.pth'):
        build_model(opt)
    opt['network_g']['dre_load_path'] = assets['dre']
    opt['train']['perceptual_opt']['vgg_load_path'] = None
    with pytest.raises(ValueError, match='vgg_load_path'):
        build_model(opt)


def test_perceptual_range_norm(assets):
    """range_norm=True feeds (x + 1) / 2 to the ImageNet normalisation; False (official) feeds x itself."""
    ours = VGGPerceptualLoss(assets['vgg'], {'conv1_2': 1.0}, range_norm=True)
    official = VGGPerceptualLoss(assets['vgg'], {'conv1_2': 1.0}, range_norm=False)
    x, y = torch.rand(1, 3, 16, 16) * 2 - 1, torch.rand(1, 3, 16, 16) * 2 - 1
    assert torch.allclose(ours(x, y), official((x + 1) / 2, (y + 1) / 2))
    assert not torch.allclose(ours(x, y), official(x, y))
    assert ours(x, x).item() == 0


# BatchNorm in training mode normalises each image with its own statistics, in both runs (see the DDP test)
PER_SAMPLE_BN = '''
import torch
from torch.nn import functional as F
from torch.nn.modules.batchnorm import _BatchNorm


def per_sample_batch_norm(self, x):
    if not self.training:
        return _BN_FORWARD(self, x)
    return torch.cat([F.batch_norm(x[i:i + 1], None, None, self.weight, self.bias, True, 0.0, self.eps)
                      for i in range(x.shape[0])])


_BN_FORWARD = _BatchNorm.forward
'''
LAUNCHER = PER_SAMPLE_BN + '''
import os
import panininet  # noqa: F401
from basicsr.train import train_pipeline
if os.environ.get('PANINI_TEST_PER_SAMPLE_BN') == '1':
    _BatchNorm.forward = per_sample_batch_norm
train_pipeline(os.environ['PANINI_TEST_ROOT'])
'''


@pytest.mark.parametrize('per_sample_bn', [True, False], ids=['per_sample_bn', 'batch_bn'])
def test_ddp_two_processes_match_one(assets, per_sample_bn):
    """torchrun --nproc_per_node=2 (gloo, CPU), 1 image per process == 1 process with a batch of 2, after 2 SGD steps.

    Equal data in both runs: deterministic degradations (a function of (seed, index)), no flip; the discriminator's
    minibatch-stddev group is 1 (with 1 image per process a group of 2 cannot exist); no R1; SGD (Adam's first steps
    are lr * sign(g), which turns rounding-level gradient differences into full-size steps).

    The one remaining coupling between the images of a batch is the training-mode BatchNorm of the CBAM: one
    process normalises over both images, DDP over each process's image (PyTorch has no SyncBatchNorm on CPU; the
    official run also trained with one image per GPU). ``per_sample_bn`` makes both runs normalise per image, so
    they compute the same function and only the order of float sums differs (all-reduce average vs. a batch mean):
    float32 rounding, amplified through the G <-> D coupling over two steps of SGD with lr 0.1, gave relative
    differences of 1.2e-5 (G) and 1.1e-4 (D); the bound is 1e-3. A real DDP fault (a rank's gradient lost or summed
    instead of averaged) moves the result by ~50-100%. With batch statistics (the real setting) the measured
    difference is 1.1-1.3% of the change, bounded here by 5%.
    """
    common = dict(datasets__train__deterministic=True, datasets__train__use_hflip=False, train__total_iter=2,
                  train__r1_reg_weight=0, network_d__stddev_group=1, logger__save_checkpoint_freq=1,
                  train__optim_g={'type': 'SGD', 'lr': 0.1}, train__optim_d={'type': 'SGD', 'lr': 0.1},
                  find_unused_parameters=True)
    tag = 'ps' if per_sample_bn else 'bb'
    ns = {}
    exec(PER_SAMPLE_BN, ns)
    with mock.patch.object(ns['_BatchNorm'], 'forward', ns['per_sample_batch_norm'] if per_sample_bn
                           else ns['_BN_FORWARD']):
        run_training(assets['root'], write_opt(assets, 'mfr', f'ddp_ref_{tag}', datasets__train__batch_size_per_gpu=2,
                                               **common))
    opt = write_opt(assets, 'mfr', f'ddp_run_{tag}', datasets__train__batch_size_per_gpu=1, **common)
    launcher = osp.join(assets['root'], 'launch_train.py')
    with open(launcher, 'w') as f:
        f.write(LAUNCHER)
    env = dict(os.environ, PANINI_TEST_ROOT=assets['root'], OMP_NUM_THREADS='1',
               PANINI_TEST_PER_SAMPLE_BN='1' if per_sample_bn else '0')
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node=2', launcher, '-opt', opt,
           '--launcher', 'pytorch']
    proc = subprocess.run(cmd, env=env, cwd=assets['root'], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    tol = 1e-3 if per_sample_bn else 0.05
    for net in ('g', 'd'):
        models = [osp.join(exp_dir(assets['root'], f'ddp_{r}_{tag}'), 'models') for r in ('ref', 'run')]
        init = load(osp.join(models[0], f'net_{net}_1.pth'))['params']
        assert all(torch.equal(v, load(osp.join(models[1], f'net_{net}_1.pth'))['params'][k])
                   for k, v in init.items() if k.startswith('dre.'))
        ref, ddp = (load(osp.join(m, f'net_{net}_2.pth'))['params'] for m in models)
        trained = [k for k, v in ref.items() if v.dtype.is_floating_point and not torch.equal(v, init[k])]
        assert trained
        diff = sum((ref[k] - ddp[k]).pow(2).sum() for k in trained).sqrt()
        step = sum((ref[k] - init[k]).pow(2).sum() for k in trained).sqrt()
        print(f'net_{net} {tag}: |ddp - ref| / |step 2| = {(diff / step).item():.2e}')
        assert diff / step < tol


@pytest.mark.parametrize(('real', 'tiny'), [('train_panini_mfr.yml', 'train_panini_mfr_tiny.yml'),
                                             ('train_panini_sr16.yml', 'train_panini_sr16_tiny.yml'),
                                             ('train_udrl_dre.yml', 'train_udrl_dre_tiny.yml')])
def test_options_files_match_their_tiny_versions(real, tiny):
    """The paper-size options name registered classes with valid keyword arguments, and their tiny CI versions
    use the same model, datasets, networks, losses and optimisers (only sizes, paths and counts differ)."""
    import inspect

    from basicsr.utils.registry import ARCH_REGISTRY, DATASET_REGISTRY, LOSS_REGISTRY, MODEL_REGISTRY

    with open(osp.join(REPO, 'options', real)) as f:
        opt = yaml.safe_load(f)
    with open(osp.join(DATA, tiny)) as f:
        small = yaml.safe_load(f)
    assert MODEL_REGISTRY.get(opt['model_type']) and opt['model_type'] == small['model_type']
    for phase in ('train', 'val'):
        assert DATASET_REGISTRY.get(opt['datasets'][phase]['type'])
        assert opt['datasets'][phase]['type'] == small['datasets'][phase]['type']
    for net in ('network_g', 'network_d'):
        if net not in opt:
            continue
        cls = ARCH_REGISTRY.get(opt[net]['type'])
        params = inspect.signature(cls).parameters
        assert set(opt[net]) - {'type'} <= set(params), set(opt[net]) - set(params)
        assert opt[net]['type'] == small[net]['type'] and set(small[net]) <= set(opt[net])
    for key, value in opt['train'].items():
        if key.endswith('_opt'):
            assert LOSS_REGISTRY.get(value['type']) and small['train'][key]['type'] == value['type']
    assert opt['train']['optim_g']['type'] == ('SGD' if opt['model_type'] == 'UDRLModel' else 'Adam')
    assert set(opt['val']['metrics']) == set(small['val']['metrics'])


def test_train_cli_as_documented(assets):
    """``python panininet/train.py -opt ...`` (the README command), run from a copy of the script placed so that its
    root_path (the parent of its folder) is the temporary folder: nothing is written into the repository."""
    cli_dir = osp.join(assets['root'], 'cli', 'panininet')
    os.makedirs(cli_dir, exist_ok=True)
    with open(osp.join(REPO, 'panininet', 'train.py')) as f, open(osp.join(cli_dir, 'train.py'), 'w') as g:
        g.write(f.read())
    opt = write_opt(assets, 'mfr', 'cli_run', train__total_iter=1, logger__save_checkpoint_freq=1)
    env = dict(os.environ, OMP_NUM_THREADS='1')
    proc = subprocess.run([sys.executable, osp.join(cli_dir, 'train.py'), '-opt', opt], env=env,
                          cwd=osp.join(assets['root'], 'cli'), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    models = osp.join(assets['root'], 'cli', 'experiments', 'cli_run', 'models')
    assert sorted(os.listdir(models)) == ['net_d_1.pth', 'net_d_latest.pth', 'net_g_1.pth', 'net_g_latest.pth']
