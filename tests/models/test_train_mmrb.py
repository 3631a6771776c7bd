"""MMRB-Net fine-tuning (eqs. 11-16) and the GAN-prior plug-ins it shares with Panini-Net, at tiny sizes on CPU:
FreezeD keeps its layers bit-identical, each local discriminator is logged and reaches the generator, the identity
loss, a real ``optimize_parameters`` from the tiny YAML, a run through BasicSR's engine that checkpoints, exact
resume, and the same plug-ins on PaniniModel.

Faces: ../shared/testdata resized to 64 px; pre-trained networks (GPEN's generator and discriminator in GPEN's own
layouts, the discriminator converted by scripts/convert_gpen.py, VGG19, ArcFace IR-SE50, Panini's decoder, D and
DRE) are random weights written in their real layouts to temporary files: nothing is downloaded.
"""
import inspect
import math
import os
import os.path as osp

import cv2
import pytest
import torch
import yaml
from basicsr.archs.stylegan2_arch import StyleGAN2Discriminator, StyleGAN2Generator
from basicsr.data import build_dataset
from basicsr.models import build_model
from facexlib.recognition.arcface_arch import Backbone
from gpen_layout import discriminator_layout, full_generator_layout, random_state
from helpers import exp_dir, load, load_script, logged, one_thread, run_training, save_options, set_option  # noqa: F401  (one_thread)

from panininet.archs.dre_arch import DegradationEncoder
from panininet.data.face_components import COMPONENTS
from panininet.models.finetune_plugins import conv_layers, crop_components
from panininet.models.losses import ArcFaceIdentityLoss, vgg_features

pytestmark = pytest.mark.usefixtures('one_thread')
from helpers import REPO_ROOT as REPO  # noqa: E402

DATA = osp.join(REPO, 'tests', 'models', 'options')
PARTS = [f'net_d_{part}' for part in COMPONENTS]


@pytest.fixture(scope='module')
def assets(shared_dir, tmp_path_factory):
    root = str(tmp_path_factory.mktemp('train_mmrb'))
    faces = osp.join(root, 'faces')
    os.makedirs(faces)
    gt = osp.join(shared_dir, 'testdata', 'panini_examples', 'GT')
    crops = osp.join(shared_dir, 'testdata', 'cropped_faces')
    for p in [osp.join(gt, f) for f in sorted(os.listdir(gt))][:3] + [osp.join(crops, f) for f in os.listdir(crops)]:
        img = cv2.resize(cv2.imread(p), (128, 128), interpolation=cv2.INTER_AREA)
        cv2.imwrite(osp.join(faces, osp.splitext(osp.basename(p))[0] + '.png'), img)
    w = osp.join(root, 'weights')
    os.makedirs(w)
    torch.manual_seed(7)
    files = {'d64': osp.join(w, 'd64.pth'), 'vgg19': osp.join(w, 'vgg19.pth'), 'vgg16': osp.join(w, 'vgg16.pth'),
             'arcface': osp.join(w, 'arcface.pth'), 'g64': osp.join(w, 'g64.pth'), 'dre': osp.join(w, 'dre.pth')}
    torch.save({'params': StyleGAN2Discriminator(64, channel_multiplier=1, narrow=0.0625).state_dict()}, files['d64'])
    for vgg in ('vgg19', 'vgg16'):  # torchvision layout (features.<i>.*), the first layers only
        feats = vgg_features(vgg, 'relu2_2')
        torch.save({f'features.{k}': v for k, v in feats.state_dict().items()}, files[vgg])
    torch.save(Backbone(50, 0.6, 'ir_se').state_dict(), files['arcface'])  # facexlib's layout (its release file's)
    torch.save({'params_ema': StyleGAN2Generator(64, num_style_feat=32, channel_multiplier=1,
                                                 narrow=0.0625).state_dict()}, files['g64'])
    torch.save({'params': DegradationEncoder(8).state_dict()}, files['dre'])
    # GPEN's released layouts at the tiny size: GPEN-BFR-512.pth is read as is, GPEN-BFR-512-D.pth converted
    files['gpen_g'], files['gpen_d'] = osp.join(w, 'gpen_g.pth'), osp.join(w, 'gpen_d.pth')
    torch.save(random_state(full_generator_layout(64, 8, 2, channel_multiplier=1, narrow=1 / 32), seed=1),
               files['gpen_g'])
    torch.save(random_state(discriminator_layout(64, channel_multiplier=1, narrow=0.0625), seed=2),
               osp.join(w, 'gpen_d_raw.pth'))
    convert = load_script(osp.join(REPO, 'scripts', 'convert_gpen.py'), 'convert_gpen')
    convert.convert_file(osp.join(w, 'gpen_d_raw.pth'), files['gpen_d'])
    return dict(root=root, faces=faces, **files)


def write_opt(assets, name, config='mmrb', **changes):
    """Tiny options with the TEST paths filled in; ``changes``: 'a__b__c' -> value (None removes the key)."""
    if config == 'mmrb':
        with open(osp.join(DATA, 'train_mmrb_tiny.yml')) as f:
            opt = yaml.safe_load(f)
        opt['train']['perceptual_opt']['vgg_load_path'] = assets['vgg19']
        opt['train']['identity_opt']['arcface_load_path'] = assets['arcface']
        opt['network_g']['prior_load_path'] = assets['gpen_g']
        opt['path']['pretrain_network_d'] = assets['gpen_d']
    else:  # PaniniModel's tiny options with the three plug-ins on
        with open(osp.join(DATA, 'train_panini_mfr_tiny.yml')) as f:
            opt = yaml.safe_load(f)
        opt['network_g'].update(decoder_load_path=assets['g64'], dre_load_path=assets['dre'])
        opt['train']['perceptual_opt']['vgg_load_path'] = assets['vgg16']
        opt['path']['pretrain_network_d'] = assets['d64']
        opt['datasets']['train'].update(crop_components=True)
        for part in COMPONENTS:
            opt[f'network_d_{part}'] = {'type': 'ComponentDiscriminator', 'num_feat': 4}
        opt['train'].update(
            freeze_d_layers=5, component_crop_size={'left_eye': 12, 'right_eye': 12, 'mouth': 16},
            gan_component_opt={'type': 'GANLoss', 'gan_type': 'vanilla', 'loss_weight': 3.0},
            optim_component={'type': 'Adam', 'lr': 2e-3, 'betas': [0.9, 0.99]},
            identity_opt={'type': 'ArcFaceIdentityLoss', 'arcface_load_path': assets['arcface'], 'loss_weight': 10})
    opt['name'] = name
    opt['datasets']['train']['dataroot_gt'] = assets['faces']
    opt['datasets']['val']['dataroot_gt'] = assets['faces']
    for key, value in changes.items():
        set_option(opt, key.replace('__', '.'), value)
    return save_options(assets['root'], name, opt)




def build(assets, config, **changes):
    with open(write_opt(assets, f'model_{config}', config, **changes)) as f:
        opt = yaml.safe_load(f)
    opt.update(is_train=True, dist=False, rank=0, world_size=1, root_path=assets['root'], auto_resume=False)
    for phase, ds in opt['datasets'].items():
        ds['phase'] = phase
    exp = exp_dir(assets['root'], opt['name'])
    opt['path'].update(experiments_root=exp, models=osp.join(exp, 'models'), log=exp,
                       training_states=osp.join(exp, 'training_states'), visualization=osp.join(exp, 'vis'))
    model = build_model(opt)
    ds = build_dataset(opt['datasets']['train'])
    items = [ds[i] for i in (0, 4)]
    batch = {k: torch.stack([it[k] for it in items]) for k in ('lq', 'gt', *[f'loc_{p}' for p in COMPONENTS])}
    return model, batch


@pytest.fixture(scope='module', params=['mmrb', 'panini'])
def stepped(assets, request):
    """A model of each kind after two real ``optimize_parameters`` steps, with the D states before and after."""
    model, batch = build(assets, request.param)
    start_g = {k: v.clone() for k, v in model.get_bare_model(model.net_g).state_dict().items()}
    before = {k: v.clone() for k, v in model.get_bare_model(model.net_d).state_dict().items()}
    parts_before = {n: {k: v.clone() for k, v in getattr(model, n).state_dict().items()} for n in PARTS}
    logs = []
    for it in (1, 2):
        model.feed_data(batch)
        model.optimize_parameters(it)
        logs.append(dict(model.log_dict))
    return dict(kind=request.param, model=model, batch=batch, start_g=start_g, before=before,
                parts_before=parts_before, logs=logs)


def test_fine_tuning_starts_from_gpen_files(assets, stepped):
    """MMRB-Net's prior starts as GPEN's generator file, its global D as GPEN's discriminator file converted."""
    if stepped['kind'] != 'mmrb':
        assert torch.equal(stepped['before']['final_linear.1.weight'], load(assets['d64'])['params'][
            'final_linear.1.weight'])
        return
    from panininet.weights.gpen_checkpoint import gpen_discriminator_to_basicsr, gpen_generator_to_prior
    prior = gpen_generator_to_prior(load(assets['gpen_g']))
    assert all(torch.equal(stepped['start_g'][f'prior.{k}'], v) for k, v in prior.items())
    d = gpen_discriminator_to_basicsr(load(osp.join(assets['root'], 'weights', 'gpen_d_raw.pth')))
    assert all(torch.equal(stepped['before'][k], v) for k, v in d.items())


def test_freeze_d_first_five_conv_layers_bit_identical_rest_moves(stepped):
    model = stepped['model']
    net_d = model.get_bare_model(model.net_d)
    layers = [name for name, _ in conv_layers(net_d)]
    # BasicSR's StyleGAN2Discriminator: RGB 1x1, block 1 (conv1, conv2, skip), block 2's conv1
    assert layers[:6] == ['conv_body.0', 'conv_body.1.conv1', 'conv_body.1.conv2', 'conv_body.1.skip',
                          'conv_body.2.conv1', 'conv_body.2.conv2']
    frozen = set(model.d_frozen)
    assert frozen == {n for n, _ in net_d.named_parameters() if n.startswith(tuple(f'{x}.' for x in layers[:5]))}
    after = net_d.state_dict()
    for name in frozen:
        assert torch.equal(after[name], stepped['before'][name]), name
        assert not dict(net_d.named_parameters())[name].requires_grad
    moved = [n for n, _ in net_d.named_parameters() if n not in frozen and not torch.equal(after[n],
                                                                                            stepped['before'][n])]
    trainable = [n for n, _ in net_d.named_parameters() if n not in frozen]
    assert len(moved) == len(trainable), sorted(set(trainable) - set(moved))
    in_optim = {id(p) for g in model.optimizer_d.param_groups for p in g['params']}
    assert not any(id(dict(net_d.named_parameters())[n]) in in_optim for n in frozen)


def test_every_loss_logged_finite_and_local_discriminators_train(stepped):
    expected = ['l_g_pix', 'l_g_percep', 'l_g_gan', 'l_d_real', 'l_d_fake', 'l_g_identity',
                *[f'l_g_gan_{p}' for p in COMPONENTS], *[f'l_d_{p}' for p in COMPONENTS]]
    if stepped['kind'] == 'mmrb':
        expected.append('l_g_pyramid')
    for log in stepped['logs']:
        assert set(expected) <= set(log), set(expected) - set(log)
        assert all(math.isfinite(v) for v in log.values()), log
    assert 'l_d_r1' in stepped['logs'][1]  # net_d_reg_every 2
    model = stepped['model']
    for name in PARTS:
        after = getattr(model, name).state_dict()
        before = stepped['parts_before'][name]
        assert all(not torch.equal(after[k], v) for k, v in before.items() if v.is_floating_point()), name


@pytest.mark.parametrize('part', COMPONENTS)
def test_local_discriminator_gradient_reaches_generator_through_its_box_only(stepped, part):
    model, batch = stepped['model'], stepped['batch']
    model.feed_data(batch)
    model.set_d_requires_grad(False)
    net_g = model.get_bare_model(model.net_g)
    net_g.zero_grad()
    output = model.generate()
    output.retain_grad()
    crops = crop_components(output, {part: model.component_boxes[part]}, model.component_crop_size)
    model.cri_component(getattr(model, f'net_d_{part}')(crops[part]), True, is_disc=False).backward()
    grads = [p.grad for p in net_g.parameters() if p.requires_grad and p.grad is not None]
    assert grads and sum(g.abs().sum() for g in grads) > 0
    for i in range(output.shape[0]):  # d loss / d output is zero outside the ROI box (+1 px of bilinear support)
        x1, y1, x2, y2 = model.component_boxes[part][i].tolist()
        g = output.grad[i].abs().sum(0)
        assert g.sum() > 0
        mask = torch.ones_like(g, dtype=torch.bool)
        mask[max(0, math.floor(y1 - 1)):math.ceil(y2 + 1), max(0, math.floor(x1 - 1)):math.ceil(x2 + 1)] = False
        assert g[mask].abs().max() == 0
    model.set_d_requires_grad(True)


def test_identity_loss_zero_on_identical_grows_with_perturbation(assets):
    loss = ArcFaceIdentityLoss(assets['arcface'], loss_weight=10.0)
    x = torch.rand(1, 3, 64, 64) * 2 - 1
    noise = torch.randn(1, 3, 64, 64)
    y = torch.cat([x + s * noise for s in (0.0, 0.02, 0.1, 0.5)]).requires_grad_(True)
    per_image = (loss.embed(y) - loss.embed(x)).abs().mean(1) * 10.0  # the loss of each perturbed copy
    # (the batch of 4 rounds differently from the batch of 1: 0 up to float error)
    assert per_image[0].item() < 1e-5 and 1e-3 < per_image[1] < per_image[2] < per_image[3], per_image
    assert loss(x, x).item() == 0
    assert loss(y[2:3], x).item() == pytest.approx(per_image[2].item(), rel=1e-5)
    per_image[2].backward()
    assert y.grad[2].abs().sum() > 0


def test_identity_loss_needs_its_weights(assets, tmp_path):
    with pytest.raises(ValueError, match='arcface_load_path is not set'):
        ArcFaceIdentityLoss(None)
    with pytest.raises(FileNotFoundError, match='recognition_arcface_ir_se50.pth'):
        ArcFaceIdentityLoss(str(tmp_path / 'absent.pth'))
    torch.save({'input_layer.0.weight': torch.zeros(1)}, tmp_path / 'wrong.pth')
    with pytest.raises(ValueError, match='do not fit'):
        ArcFaceIdentityLoss(str(tmp_path / 'wrong.pth'))


def test_per_part_learning_rates(stepped):
    model = stepped['model']
    if stepped['kind'] == 'mmrb':  # MMRBNet.param_groups() with the paper's rates (Sec. IV-B)
        groups = {g['name']: g['lr'] for g in model.optimizer_g.param_groups}
        assert groups == {'codec': 2e-3, 'prior': 2e-4, 'noise': 2e-3}
        assert model.optimizer_d.param_groups[0]['lr'] == 2e-5
    else:  # no param_groups option: one group of every trainable PaniniNet parameter (the frozen DRE left out)
        (group,) = model.optimizer_g.param_groups
        net_g = model.get_bare_model(model.net_g)
        assert group['lr'] == 1e-3 and len(group['params']) == sum(p.requires_grad for p in net_g.parameters())
        assert not any(p.requires_grad for p in net_g.dre.parameters())
    assert model.optimizer_component.param_groups[0]['lr'] == 2e-3
    assert len(model.optimizers) == 3


@pytest.fixture(scope='module')
def straight(assets):
    """4 iterations through BasicSR's engine (checkpoints at 2 and 4). The identity loss is off here (it has no
    state, and its 44M-parameter ArcFace would triple the run time); the steps above cover it."""
    return run_training(assets['root'], write_opt(assets, 'mmrb_straight', train__identity_opt=None))


def test_run_writes_checkpoints_with_arch(assets, straight):
    from panininet.archs.mmrb_arch import MMRBNet
    d = exp_dir(assets['root'], 'mmrb_straight')
    for it in (2, 4, 'latest'):
        g = load(osp.join(d, 'models', f'net_g_{it}.pth'))
        assert set(g) == {'params', 'params_ema', 'arch'}
        for name in ('net_d', *PARTS):
            assert set(load(osp.join(d, 'models', f'{name}_{it}.pth'))) == {'params'}
    state = load(osp.join(d, 'training_states', '4.state'))
    assert state['iter'] == 4 and len(state['optimizers']) == 3
    arch = load(osp.join(d, 'models', 'net_g_latest.pth'))['arch']
    assert arch['out_size'] == 64 and 'prior_load_path' not in arch
    net = MMRBNet(**arch)
    net.load_state_dict(load(osp.join(d, 'models', 'net_g_latest.pth'))['params_ema'])
    assert net(torch.zeros(1, 3, 64, 64)).shape == (1, 3, 64, 64)
    # the restoration pipeline's -v mmrb family builds from the trained file and restores with its EMA weights
    from panininet.families import build_family
    family = build_family('mmrb', osp.join(d, 'models', 'net_g_latest.pth'), device='cpu', allow_download=False)
    faces = torch.rand(1, 3, 64, 64) * 2 - 1
    assert family.in_size == family.out_size == 64
    assert torch.allclose(family(faces, None), net.eval()(faces), atol=1e-5)
    for name in ('l_g_pix', 'l_g_pyramid', 'l_g_gan_mouth', 'l_d_left_eye'):
        values = logged(straight, name)
        assert len(values) == 4 and all(math.isfinite(v) for v in values), (name, values)
    psnr = logged(straight, '# psnr')  # validation at 4 and at the end (its batches carry no component boxes)
    assert psnr and all(3 < v < 60 for v in psnr)


def test_exact_resume(assets, straight):
    """2 iterations, stop, --auto_resume to 4 == 4 straight iterations, bit for bit (G, EMA, all D, optimisers)."""
    run_training(assets['root'], write_opt(assets, 'mmrb_resume', train__identity_opt=None, train__total_iter=2))
    lines = run_training(assets['root'], write_opt(assets, 'mmrb_resume', train__identity_opt=None), '--auto_resume')
    assert any('Resuming training from epoch: ' in line and 'iter: 2' in line for line in lines)
    assert logged(lines, 'l_g_pix') == logged(straight, 'l_g_pix')[2:]
    a, b = (osp.join(exp_dir(assets['root'], n), 'models') for n in ('mmrb_straight', 'mmrb_resume'))
    for name in ('net_g', 'net_d', *PARTS):
        sa, sb = load(osp.join(a, f'{name}_4.pth')), load(osp.join(b, f'{name}_4.pth'))
        for key in ('params', 'params_ema') if name == 'net_g' else ('params',):
            for k in sa[key]:
                assert torch.equal(sa[key][k], sb[key][k]), (name, key, k)
    ta, tb = (load(osp.join(exp_dir(assets['root'], n), 'training_states', '4.state')) for n in ('mmrb_straight',
                                                                                          'mmrb_resume'))
    for oa, ob in zip(ta['optimizers'], tb['optimizers']):
        for i, st in oa['state'].items():
            for k, v in st.items():
                assert torch.equal(v, ob['state'][i][k]), (i, k)
    assert ta['schedulers'] == tb['schedulers']


def test_options_file_matches_its_tiny_version():
    """options/train_mmrb.yml names registered classes with valid arguments; the tiny CI file uses the same model,
    dataset, networks, losses and optimisers (only sizes, paths and counts differ)."""
    from basicsr.utils.registry import ARCH_REGISTRY, DATASET_REGISTRY, LOSS_REGISTRY, MODEL_REGISTRY
    with open(osp.join(REPO, 'options', 'train_mmrb.yml')) as f:
        opt = yaml.safe_load(f)
    with open(osp.join(DATA, 'train_mmrb_tiny.yml')) as f:
        small = yaml.safe_load(f)
    assert MODEL_REGISTRY.get(opt['model_type']) and opt['model_type'] == small['model_type'] == 'MMRBModel'
    for phase in ('train', 'val'):
        assert DATASET_REGISTRY.get(opt['datasets'][phase]['type']) == DATASET_REGISTRY.get(
            small['datasets'][phase]['type'])
    assert set(small['datasets']['train']) == set(opt['datasets']['train'])
    for net in ('network_g', 'network_d', *[f'network_d_{p}' for p in COMPONENTS]):
        params = inspect.signature(ARCH_REGISTRY.get(opt[net]['type'])).parameters
        assert set(opt[net]) - {'type'} <= set(params), set(opt[net]) - set(params)
        assert opt[net]['type'] == small[net]['type'] and set(small[net]) <= set(opt[net])
    for key, value in opt['train'].items():
        if key.endswith('_opt'):
            assert LOSS_REGISTRY.get(value['type']) and small['train'][key]['type'] == value['type']
            params = inspect.signature(LOSS_REGISTRY.get(value['type'])).parameters
            assert set(value) - {'type'} <= set(params), (key, set(value) - set(params))
    assert set(small['train']) == set(opt['train'])
    # the paper's numbers (Sec. III-D, IV-B)
    t = opt['train']
    assert (t['gan_opt']['loss_weight'], t['gan_component_opt']['loss_weight'], t['pixel_opt']['loss_weight'],
            t['perceptual_opt']['loss_weight'], t['identity_opt']['loss_weight']) == (0.5, 3, 8, 0.02, 10)
    assert {k: v['lr'] for k, v in t['optim_g']['param_groups'].items()} == {'codec': 2e-3, 'prior': 2e-4,
                                                                           'noise': 2e-3}
    assert (t['optim_d']['lr'], t['optim_component']['lr'], t['freeze_d_layers'], t['total_iter']) == (
        2e-5, 2e-3, 5, 700000)
    assert opt['datasets']['train']['batch_size_per_gpu'] * 2 == 4 and opt['network_g']['out_size'] == 512


def test_component_discriminator_has_gfpgan_layout():
    """At num_feat 64 the local discriminator's state dict is GFP-GAN's FacialComponentDiscriminator's (its released
    component discriminators load); narrower ones keep the names, and the output is one logit per 4x4 patch."""
    from gfpgan.archs.gfpganv1_arch import FacialComponentDiscriminator

    from panininet.archs.component_discriminator_arch import ComponentDiscriminator
    ours, theirs = ComponentDiscriminator().state_dict(), FacialComponentDiscriminator().state_dict()
    assert list(ours) == list(theirs) and all(ours[k].shape == theirs[k].shape for k in ours)
    tiny = ComponentDiscriminator(num_feat=4)
    assert list(tiny.state_dict()) == list(ours)
    assert tiny(torch.zeros(2, 3, 16, 16)).shape == (2, 1, 4, 4)


def test_ddp_two_processes_match_one(assets):
    """torchrun --nproc_per_node=2 (gloo, CPU), 1 image per process == 1 process with a batch of 2, after 2 SGD steps
    of every network (G, global D with FreezeD, the three local D).

    Equal data in both runs: deterministic degradations, no flip; minibatch-stddev group 1; no R1; SGD (Adam's first
    steps are lr * sign(g)); no identity loss (its cost, not its behaviour: it is per image). MMRB-Net has no batch
    statistics, so the two runs compute the same function and differ by float summation order only.
    """
    import subprocess
    import sys
    sgd = {'type': 'SGD', 'lr': 0.05}
    common = dict(datasets__train__deterministic=True, datasets__train__use_hflip=False, train__total_iter=2,
                  train__r1_reg_weight=0, network_d__stddev_group=1, logger__save_checkpoint_freq=1,
                  val__val_freq=100, train__identity_opt=None, train__optim_d=sgd, train__optim_component=sgd,
                  train__optim_g=dict(sgd, param_groups={'codec': {'lr': 0.05}, 'prior': {'lr': 0.005},
                                                         'noise': {'lr': 0.05}}))
    run_training(assets['root'], write_opt(assets, 'mmrb_ddp_ref', datasets__train__batch_size_per_gpu=2, **common))
    opt = write_opt(assets, 'mmrb_ddp_run', datasets__train__batch_size_per_gpu=1, **common)
    launcher = osp.join(assets['root'], 'launch_mmrb.py')
    with open(launcher, 'w') as f:
        f.write('import os\nimport panininet  # noqa: F401\nfrom basicsr.train import train_pipeline\n'
                "train_pipeline(os.environ['PANINI_TEST_ROOT'])\n")
    env = dict(os.environ, PANINI_TEST_ROOT=assets['root'], OMP_NUM_THREADS='1')
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node=2', launcher, '-opt', opt,
           '--launcher', 'pytorch']
    proc = subprocess.run(cmd, env=env, cwd=assets['root'], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    init_d = load(assets['gpen_d'])['params']
    for name in ('net_g', 'net_d', *PARTS):
        models = {r: osp.join(exp_dir(assets['root'], f'mmrb_ddp_{r}'), 'models') for r in ('ref', 'run')}
        ref1, ref, ddp = (load(osp.join(models[r], f'{name}_{it}.pth'))['params']
                          for r, it in (('ref', 1), ('ref', 2), ('run', 2)))
        keys = [k for k in ref if ref[k].is_floating_point() and not torch.equal(ref[k], ref1[k])]
        assert keys, name
        diff = sum((ref[k] - ddp[k]).pow(2).sum() for k in keys).sqrt()
        step = sum((ref[k] - ref1[k]).pow(2).sum() for k in keys).sqrt()  # the second step's size
        # a lost or summed (not averaged) rank gradient moves the result by ~50-100 % of a step
        print(f'{name}: |ddp - ref| / |step 2| = {(diff / step).item():.2e}')
        assert diff / step < 1e-3, (name, (diff / step).item())
        if name == 'net_d':  # FreezeD under DDP: the frozen layers are the converted GPEN D's, bit for bit
            frozen = [k for k in ref if k.startswith(('conv_body.0.', 'conv_body.1.', 'conv_body.2.conv1.'))]
            assert frozen and all(torch.equal(ddp[k], init_d[k]) for k in frozen)


@pytest.mark.parametrize(('changes', 'error', 'match'), [
    ({'network_d_mouth': None}, ValueError, 'give all of network_d_left_eye'),
    ({'train__gan_component_opt': None}, ValueError, 'gan_component_opt is required'),
    ({'train__freeze_d_layers': 99}, ValueError, 'freeze_d_layers=99: the discriminator has 14 convolution layers'),
    ({'train__optim_g__param_groups': {'codec': {'lr': 1.0}}}, ValueError, 'PaniniNet has no param_groups'),
    ({'train__identity_opt__arcface_load_path': 'no/such/arcface.pth'}, FileNotFoundError,
     r'train.identity_opt: .*no/such/arcface.pth'),
], ids=['partial_local_d', 'no_component_loss', 'freeze_too_many', 'no_parts', 'no_arcface'])
def test_plugin_option_errors_name_the_option(assets, changes, error, match):
    with pytest.raises(error, match=match):
        build(assets, 'panini', **changes)


def test_local_discriminators_need_boxes_in_the_batch(stepped):
    model, batch = stepped['model'], dict(stepped['batch'])
    del batch['loc_mouth']
    model.feed_data(batch)
    try:
        with pytest.raises(KeyError, match='crop_components: true'):
            model.optimize_parameters(3)
    finally:
        model.set_d_requires_grad(True)
