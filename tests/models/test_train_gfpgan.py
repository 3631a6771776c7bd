"""GFP-GAN's own training (gfpgan 1.3.8: GFPGANModel, GFPGANv1, FFHQDegradationDataset, component discriminators,
ArcFace identity loss, perceptual + style loss) through our engine at tiny sizes on CPU: runs, checkpoints, validates,
resumes exactly; and trains on our eq. (10) data.

Faces are real photos from ../shared/testdata resized to 64 px. The pre-trained files (StyleGAN2 decoder, ArcFace,
VGG19, component landmarks) are random weights / template boxes written to temporary files in the released layouts,
so the real loading code runs and nothing is downloaded. Every experiment folder is under a temporary root_path.
"""
import math
import os
import os.path as osp

import cv2
import pytest
import torch
import yaml

pytest.importorskip('gfpgan')  # the [gfpgan] extra (in [test]); everything below needs it

from basicsr.archs.stylegan2_arch import StyleGAN2Generator  # noqa: E402
from gfpgan.archs.arcface_arch import IRBlock, ResNetArcFace  # noqa: E402
from helpers import (  # noqa: E402,F401  (one_thread: fixture)
    exp_dir,
    free_port,
    load,
    logged,
    one_thread,
    run_training,
    save_options,
    set_option,
    write_component_file,
)

from panininet.models.losses import vgg_features  # noqa: E402

pytestmark = pytest.mark.usefixtures('one_thread')
from helpers import REPO_ROOT as REPO  # noqa: E402

TINY = osp.join(REPO, 'tests', 'models', 'options', 'train_gfpgan_v1_tiny.yml')
SIZE = 64
NETS = ('net_g', 'net_d', 'net_d_left_eye', 'net_d_right_eye', 'net_d_mouth')
@pytest.fixture(scope='module')
def assets(shared_dir, tmp_path_factory):
    root = str(tmp_path_factory.mktemp('train_gfpgan'))
    gt_dir, lq_dir = osp.join(root, 'faces'), osp.join(root, 'faces_lq')
    os.makedirs(gt_dir)
    os.makedirs(lq_dir)
    gt = osp.join(shared_dir, 'testdata', 'panini_examples', 'GT')
    crops = osp.join(shared_dir, 'testdata', 'cropped_faces')
    paths = [osp.join(gt, f) for f in sorted(os.listdir(gt))] + [osp.join(crops, f) for f in sorted(os.listdir(crops))]
    for p in paths:  # 8 faces: 4 iterations per epoch at batch 2
        img = cv2.resize(cv2.imread(p), (SIZE, SIZE), interpolation=cv2.INTER_AREA)
        name = osp.splitext(osp.basename(p))[0] + '.png'
        cv2.imwrite(osp.join(gt_dir, name), img)
        cv2.imwrite(osp.join(lq_dir, name), cv2.GaussianBlur(img, (5, 5), 1.5))
    w = osp.join(root, 'weights')
    os.makedirs(w)
    torch.manual_seed(123)
    files = {'faces': gt_dir, 'faces_lq': lq_dir, 'weights': w, 'num': len(paths)}
    files['decoder'] = osp.join(w, 'stylegan2_64.pth')  # as StyleGAN2_512_Cmul1_FFHQ_B12G4_scratch_800k.pth
    torch.save({'params_ema': StyleGAN2Generator(SIZE, num_style_feat=32, channel_multiplier=1,
                                                 narrow=0.0625).state_dict()}, files['decoder'])
    files['arcface'] = osp.join(w, 'arcface.pth')  # as arcface_resnet18.pth: a bare state dict
    torch.save(ResNetArcFace(IRBlock, [1, 1, 1, 1], use_se=False).state_dict(), files['arcface'])
    # torchvision's vgg19-dcbb9e9d.pth (features.* entries), found in the weights root
    torch.save({f'features.{k}': v for k, v in vgg_features('vgg19', 'pool5').state_dict().items()},
               osp.join(w, 'vgg19-dcbb9e9d.pth'))
    files['components'] = osp.join(w, 'FFHQ_eye_mouth_landmarks_64.pth')
    write_component_file(files['components'], len(paths))
    files['root'] = root
    return files


@pytest.fixture(scope='module', autouse=True)
def _weights_root(assets):
    """basicsr's perceptual loss finds vgg19-dcbb9e9d.pth in the weights root (panininet.platform.compat_gfpgan)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv('PANINI_WEIGHTS_DIR', assets['weights'])
        yield


def tiny_opt(assets, name, **changes):
    """The tiny options with the TEST paths filled in; ``changes`` maps 'a__b__c' to a value."""
    with open(TINY) as f:
        opt = yaml.safe_load(f)
    opt['name'] = name
    train = opt['datasets']['train']
    train['dataroot_gt'], train['component_path'] = assets['faces'], assets['components']
    opt['datasets']['val'].update(dataroot_gt=assets['faces'], dataroot_lq=assets['faces_lq'])
    opt['network_g']['decoder_load_path'] = assets['decoder']
    opt['path']['pretrain_network_identity'] = assets['arcface']
    for key, value in changes.items():
        set_option(opt, key.replace('__', '.'), value)
    return opt


def write_opt(assets, opt):
    return save_options(assets['root'], opt['name'], opt)




@pytest.fixture(scope='module')
def straight(assets, _weights_root):
    """4 iterations of the tiny config (checkpoints at 2 and 4, one epoch of 8 faces at batch 2)."""
    return run_training(assets['root'], write_opt(assets, tiny_opt(assets, 'gfpgan_straight')))


LOSSES = ('l_g_pix', 'l_p_8', 'l_p_16', 'l_p_32', 'l_p_64', 'l_g_percep', 'l_g_style', 'l_g_gan', 'l_g_gan_left_eye',
          'l_g_gan_right_eye', 'l_g_gan_mouth', 'l_g_comp_style_loss', 'l_identity', 'l_d', 'l_d_r1', 'l_d_left_eye',
          'l_d_right_eye', 'l_d_mouth')


def test_gfpgan_run_writes_checkpoints_metrics_images(assets, straight):
    d = exp_dir(assets['root'], 'gfpgan_straight')
    for it in (2, 4, 'latest'):
        g = load(osp.join(d, 'models', f'net_g_{it}.pth'))
        assert set(g) == {'params', 'params_ema', 'arch'} and g['arch']['type'] == 'GFPGANv1'
        assert g['arch']['out_size'] == SIZE and 'decoder_load_path' not in g['arch']
        for net in NETS[1:]:
            assert set(load(osp.join(d, 'models', f'{net}_{it}.pth'))) == {'params'}
    for it in (2, 4):
        state = load(osp.join(d, 'training_states', f'{it}.state'))
        assert state['iter'] == it and len(state['optimizers']) == 5 and len(state['rng']) == 1
    for name in LOSSES:  # every term of GFP-GAN's objective ran and is finite
        values = logged(straight, name)
        assert values and all(math.isfinite(v) for v in values), (name, values)
    assert len(logged(straight, 'l_g_pix')) == 4 and len(logged(straight, 'l_d_r1')) == 2  # R1 every 2
    # remove_pyramid_loss: 3 -> GFP-GAN's 1e-12 weight from iteration 4 on
    assert logged(straight, 'l_p_64')[3] < 1e-10 < logged(straight, 'l_p_64')[2]
    psnr = logged(straight, '# psnr')
    assert psnr and 3 < psnr[-1] < 60
    images = [f for _, _, fs in os.walk(osp.join(d, 'visualization')) for f in fs if f.endswith('.png')]
    assert len(images) == assets['num']
    # fix_decoder: the StyleGAN2 decoder is the pre-trained one, bit for bit, while the U-Net trained
    decoder = load(assets['decoder'])['params_ema']
    g2, g4 = (load(osp.join(d, 'models', f'net_g_{it}.pth'))['params'] for it in (2, 4))
    assert all(torch.equal(g4[f'stylegan_decoder.{k}'], v) for k, v in decoder.items())
    assert not torch.equal(g2['conv_body_first.0.weight'], g4['conv_body_first.0.weight'])


def test_exact_resume(assets, straight):
    """2 iterations, stop, --auto_resume to 4 == 4 straight iterations, bit for bit (all five networks, EMA,
    optimisers): the data order, GFP-GAN's random degradations and the generator's noise all continue."""
    run_training(assets['root'], write_opt(assets, tiny_opt(assets, 'gfpgan_resume', train__total_iter=2)))
    lines = run_training(assets['root'], write_opt(assets, tiny_opt(assets, 'gfpgan_resume')), '--auto_resume')
    assert any('Resuming training from epoch: 0, iter: 2' in line for line in lines)
    for name in ('l_g_pix', 'l_identity', 'l_g_comp_style_loss', 'l_d_mouth'):
        assert logged(lines, name) == logged(straight, name)[2:], name
    a, b = (osp.join(exp_dir(assets['root'], n), 'models') for n in ('gfpgan_straight', 'gfpgan_resume'))
    for net in NETS:
        sa, sb = load(osp.join(a, f'{net}_4.pth')), load(osp.join(b, f'{net}_4.pth'))
        for key in ('params', 'params_ema') if net == 'net_g' else ('params',):
            for k in sa[key]:
                assert torch.equal(sa[key][k], sb[key][k]), (net, key, k)
    ta = load(osp.join(exp_dir(assets['root'], 'gfpgan_straight'), 'training_states', '4.state'))
    tb = load(osp.join(exp_dir(assets['root'], 'gfpgan_resume'), 'training_states', '4.state'))
    for oa, ob in zip(ta['optimizers'], tb['optimizers']):
        for i, st in oa['state'].items():
            for k, v in st.items():
                assert torch.equal(v, ob['state'][i][k]), (i, k)
    assert ta['schedulers'] == tb['schedulers']


def test_gfpgan_trains_on_our_eq10_pairs(assets):
    """options/data_gfpgan_eq10.yml's train block (PaniniMFRDataset with component boxes) at the tiny size feeds
    GFPGANModel: lq, gt and the three boxes, which follow a flip; one real iteration with every loss on."""
    from basicsr.utils.registry import DATASET_REGISTRY
    with open(osp.join(REPO, 'options', 'data_gfpgan_eq10.yml')) as f:
        train = yaml.safe_load(f)['datasets']['train']
    train.update(dataroot_gt=assets['faces'], component_path=assets['components'], component_coord_size=SIZE,
                 out_size=SIZE, in_size=SIZE, num_worker_per_gpu=0, batch_size_per_gpu=2, phase='train')
    ds = DATASET_REGISTRY.get(train['type'])(train)  # (build_dataset would set up basicsr's logger too early)
    item = ds[0]
    assert item['lq'].shape == item['gt'].shape == (3, SIZE, SIZE)
    boxes = {p: item[f'loc_{p}'] for p in ('left_eye', 'right_eye', 'mouth')}
    comp = torch.load(assets['components'], weights_only=False)['00000000']  # the file as written
    flipped = bool(item['params']['hflip'])
    left = comp['right_eye'] if flipped else comp['left_eye']  # the face's left eye after a flip is its right one
    x_left = SIZE - left[0] if flipped else left[0]
    for box, (x, y, h) in ((boxes['left_eye'], (x_left, left[1], 1.4 * left[2])), (boxes['mouth'], comp['mouth'])):
        x0, y0, x1, y1 = box.tolist()  # centre and side within a pixel (pixel-index vs continuous conventions)
        assert max(abs((x0 + x1) / 2 - x), abs((y0 + y1) / 2 - y), abs((x1 - x0) - 2 * h)) <= 1 + 1e-4

    opt = tiny_opt(assets, 'gfpgan_eq10', train__total_iter=1, logger__save_checkpoint_freq=1)
    train.pop('phase')
    opt['datasets']['train'] = train
    lines = run_training(assets['root'], write_opt(assets, opt))
    for name in ('l_g_pix', 'l_g_gan_left_eye', 'l_g_comp_style_loss', 'l_identity', 'l_d_mouth'):
        assert logged(lines, name) and all(math.isfinite(v) for v in logged(lines, name)), name
    assert osp.isfile(osp.join(exp_dir(assets['root'], 'gfpgan_eq10'), 'models', 'net_d_mouth_1.pth'))


def test_options_file_matches_its_tiny_version():
    """options/train_gfpgan_v1.yml names registered classes with valid keyword arguments, and the tiny CI version
    uses the same model, datasets, networks, losses and optimisers (only sizes, paths and counts differ)."""
    import inspect

    from basicsr.utils.registry import ARCH_REGISTRY, DATASET_REGISTRY, LOSS_REGISTRY, MODEL_REGISTRY
    with open(osp.join(REPO, 'options', 'train_gfpgan_v1.yml')) as f:
        opt = yaml.safe_load(f)
    with open(TINY) as f:
        small = yaml.safe_load(f)
    assert MODEL_REGISTRY.get(opt['model_type']) and opt['model_type'] == small['model_type'] == 'PaniniGFPGANModel'
    for phase in ('train', 'val'):
        assert DATASET_REGISTRY.get(opt['datasets'][phase]['type'])
        assert opt['datasets'][phase]['type'] == small['datasets'][phase]['type']
        assert set(small['datasets'][phase]) == set(opt['datasets'][phase])
    nets = [k for k in opt if k.startswith('network_')]
    assert nets == [k for k in small if k.startswith('network_')] and len(nets) == 6
    for net in nets:
        params = inspect.signature(ARCH_REGISTRY.get(opt[net]['type'])).parameters
        assert set(opt[net]) - {'type'} <= set(params), set(opt[net]) - set(params)
        # the tiny D is narrowed (the released options leave narrow at its default 1)
        assert opt[net]['type'] == small[net]['type'] and set(small[net]) - {'narrow'} <= set(opt[net])
        assert set(small[net]) - {'type'} <= set(params)
    for key, value in opt['train'].items():
        if key.endswith('_opt'):
            assert LOSS_REGISTRY.get(value['type']) and small['train'][key]['type'] == value['type']
    assert set(opt['train']) == set(small['train']) and set(opt['path']) == set(small['path'])
    # GFP-GAN's released loss weights (paper: lambda_l1 0.1, per 1, adv 0.1, local 1, fs 200, id 10)
    t = opt['train']
    assert (t['pixel_opt']['loss_weight'], t['perceptual_opt']['perceptual_weight'], t['gan_opt']['loss_weight'],
            t['gan_component_opt']['loss_weight'], t['comp_style_weight'], t['identity_weight']) == (
                0.1, 1, 0.1, 1, 200, 10)


def test_train_cli_names_the_missing_extra(monkeypatch, capsys):
    """Without gfpgan, panininet/train.py -opt options/train_gfpgan_v1.yml stops with one line (exit 2)."""
    import runpy
    import sys

    import panininet.models
    monkeypatch.setattr(panininet.models, 'HAS_GFPGAN', False)
    monkeypatch.setattr(sys, 'argv', ['train.py', '-opt', osp.join(REPO, 'options', 'train_gfpgan_v1.yml')])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path(osp.join(REPO, 'panininet', 'train.py'), run_name='__main__')
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith('error: PaniniGFPGANModel') and '[gfpgan]' in err and len(err.splitlines()) == 1


def test_distributed_code_path_on_cpu(assets, monkeypatch):
    """--launcher pytorch on CPU (one gloo rank in this process): init_dist, DDP around the five trained networks
    without device_ids, the loss all-reduce and the RNG gather run. Two processes: the README's torchrun command."""
    import torch.distributed as dist
    env = dict(RANK='0', LOCAL_RANK='0', WORLD_SIZE='1', MASTER_ADDR='127.0.0.1', MASTER_PORT=free_port())
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    opt = tiny_opt(assets, 'gfpgan_gloo', train__total_iter=1, logger__save_checkpoint_freq=1, val=None)
    try:
        lines = run_training(assets['root'], write_opt(assets, opt), '--launcher', 'pytorch')
        assert dist.is_initialized() and dist.get_backend() == 'gloo'
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    assert any('DistributedDataParallel' in line for line in lines)
    assert logged(lines, 'l_identity') and logged(lines, 'l_d_left_eye')
    state = load(osp.join(exp_dir(assets['root'], 'gfpgan_gloo'), 'training_states', '1.state'))
    assert len(state['rng']) == 1




def test_missing_decoder_file_names_option(assets):
    from basicsr.models import build_model
    opt = tiny_opt(assets, 'missing', network_g__decoder_load_path='no/such/stylegan2.pth')
    opt.update(is_train=True, dist=False, rank=0, world_size=1, root_path=assets['root'])
    with pytest.raises(FileNotFoundError, match=r'network_g.decoder_load_path: .*no/such/stylegan2.pth'):
        build_model(opt)


def test_gfpgans_own_model_type_runs_too(assets):
    """model_type: GFPGANModel (GFP-GAN's class itself) trains on a CPU with the compat patches alone; only the
    component discriminators are off here, GFP-GAN's crops being 0 px below 512 px (PaniniGFPGANModel fixes that)."""
    opt = tiny_opt(assets, 'gfpgan_own', model_type='GFPGANModel', train__total_iter=1, logger__save_checkpoint_freq=1,
                   datasets__train__crop_components=False, val=None)
    for part in ('left_eye', 'right_eye', 'mouth'):
        opt.pop(f'network_d_{part}')
    lines = run_training(assets['root'], write_opt(assets, opt))
    for name in ('l_g_pix', 'l_g_percep', 'l_g_style', 'l_identity', 'l_d'):
        assert logged(lines, name) and all(math.isfinite(v) for v in logged(lines, name)), name
    assert sorted(os.listdir(osp.join(exp_dir(assets['root'], 'gfpgan_own'), 'models'))) == [
        'net_d_1.pth', 'net_d_latest.pth', 'net_g_1.pth', 'net_g_latest.pth']
