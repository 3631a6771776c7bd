"""UDRL (MoCo) pre-training of the DRE with BasicSR's engine at tiny size on CPU, on crops of the test faces.

Training faces and held-out faces are different people. The held-out check is MoCo's contrastive accuracy as
degradation retrieval: N pairs, pair i = (face A degraded with parameters p_i, face B degraded with p_i); a query
must find its key among the N keys (cosine of v_DR centred on the mean, see ``retrieval_metrics``). Every query
shows the same face and every key the other one, so content cannot help: chance is 1/N. The encoders run as during
MoCo training (BatchNorm with the statistics of the batch of N queries, resp. N keys; a permutation-equivariant
operation, so nothing about the pairing leaks). Measured: trained 0.42, untrained 0.12-0.17, chance 0.042 (N = 24);
the test asks for >= 5x chance and better than untrained. In eval mode (running statistics, how Panini-Net uses
the DRE) this 150-iteration tiny run reaches only ~0.1-0.17: it has not yet learnt batch-independent features.
"""
import math
import os
import os.path as osp

import cv2
import numpy as np
import pytest
import torch
import yaml
from helpers import logged, one_thread, run_training  # noqa: F401  (one_thread: fixture)

from panininet.archs.dre_arch import MoCo
from panininet.data.data_util import prepare_hq, to_tensor
from panininet.data.degradation_sampler import DegradationSampler, make_lq
from panininet.data.degradations import resize
from panininet.models.udrl_model import retrieval_metrics

pytestmark = pytest.mark.usefixtures('one_thread')
from helpers import REPO_ROOT as REPO  # noqa: E402

N_PAIRS = 24
MARGIN = 5  # trained top-1 retrieval must be >= MARGIN x chance (1 / N_PAIRS)


def _crops(img, n, rng, size=128):
    """n random square crops (70-100% of the side) of an aligned face, resized to size."""
    h = img.shape[0]
    out = []
    for _ in range(n):
        s = int(h * rng.uniform(0.7, 1.0))
        y, x = rng.integers(0, h - s + 1, size=2)
        out.append(cv2.resize(img[y:y + s, x:x + s], (size, size), interpolation=cv2.INTER_AREA))
    return out


@pytest.fixture(scope='module')
def udrl_data(shared_dir, tmp_path_factory):
    """Training crops of 6 faces and held-out crops of 2 other faces (128 px), in a temporary root."""
    root = str(tmp_path_factory.mktemp('train_udrl'))
    gt = osp.join(shared_dir, 'testdata', 'panini_examples', 'GT')
    crops = osp.join(shared_dir, 'testdata', 'cropped_faces')
    faces = [osp.join(gt, f) for f in sorted(os.listdir(gt))] + [osp.join(crops, f) for f in sorted(os.listdir(crops))]
    train_faces, heldout_faces = faces[:6], faces[6:]  # held out: two GFPGAN crops (other people)
    rng = np.random.default_rng(0)
    train_dir = osp.join(root, 'train')
    os.makedirs(train_dir)
    for p in train_faces:
        for j, c in enumerate(_crops(cv2.imread(p), 4, rng)):
            cv2.imwrite(osp.join(train_dir, f'{osp.splitext(osp.basename(p))[0]}_{j}.png'), c)
    heldout_dir = osp.join(root, 'heldout')
    os.makedirs(heldout_dir)
    for p in heldout_faces:
        for j, c in enumerate(_crops(cv2.imread(p), 2, rng)):
            cv2.imwrite(osp.join(heldout_dir, f'{osp.splitext(osp.basename(p))[0]}_{j}.png'), c)
    return dict(root=root, train_dir=train_dir, heldout_dir=heldout_dir, heldout_faces=heldout_faces)


def write_opt(data, name, **changes):
    """Tiny UDRL options with the data folders filled in; ``changes`` maps 'a__b' to a value."""
    with open(osp.join(REPO, 'tests', 'models', 'options', 'train_udrl_dre_tiny.yml')) as f:
        opt = yaml.safe_load(f)
    opt['name'] = name
    opt['datasets']['train']['dataroot_gt'] = data['train_dir']
    opt['datasets']['val']['dataroot_gt'] = data['heldout_dir']
    for key, value in changes.items():
        *parents, last = key.split('__')
        node = opt
        for k in parents:
            node = node[k]
        node[last] = value
    path = osp.join(data['root'], f'{name}.yml')
    with open(path, 'w') as f:
        yaml.safe_dump(opt, f)
    return path, opt


@pytest.fixture(scope='module')
def udrl(udrl_data):
    opt_path, opt = write_opt(udrl_data, 'tiny_udrl_dre')
    lines = run_training(udrl_data['root'], opt_path)
    return dict(root=udrl_data['root'], opt=opt, lines=lines, heldout_faces=udrl_data['heldout_faces'],
                exp=osp.join(udrl_data['root'], 'experiments', opt['name']))


def heldout_pairs(faces, opt, n):
    """n pairs (A degraded with p_i, B degraded with p_i), as the UDRL dataset degrades (degrade, area-resize)."""
    sampler = DegradationSampler.from_opt(opt)
    rng = np.random.default_rng(1234)
    a, b = (prepare_hq(cv2.imread(p)[..., ::-1].astype(np.float32) / 255., opt['degrade_size'], rng, False)[0]
            for p in faces)
    q, k = [], []
    for _ in range(n):
        params = sampler.sample(rng)
        for img, out in ((a, q), (b, k)):
            lq = make_lq(img, opt['degrade_size'], params, sampler, rng)
            out.append(to_tensor(resize(lq, opt['out_size'], 'area'), opt['mean'], opt['std']))
    return torch.stack(q), torch.stack(k)


def _v_dr(encoder, x):
    """v_DR of a batch, BatchNorm with batch statistics (as in MoCo training)."""
    encoder.train()
    with torch.no_grad():
        return encoder(x)


def test_udrl_loss_decreases_and_logs_accuracy(udrl):
    loss, acc = logged(udrl['lines'], 'l_infonce'), logged(udrl['lines'], 'acc_top1')
    assert len(loss) == 15 and all(math.isfinite(v) for v in loss)
    assert np.mean(loss[-3:]) < np.mean(loss[:3]) - 0.3, loss
    assert all(0 <= a <= 1 for a in acc)
    assert logged(udrl['lines'], '# retrieval_top1') and logged(udrl['lines'], '# infonce')
    # the per-factor linear-probe R² of the validation (4 held-out pairs: 2-fold CV); finite, at most 1
    for target in ('log_r', 'delta', 'q', 'sigma', 'log_blur'):
        (value,) = logged(udrl['lines'], f'# r2_{target}')
        assert math.isfinite(value) and value <= 1, (target, value)


def test_udrl_heldout_retrieval_beats_chance(udrl):
    ckpt = torch.load(osp.join(udrl['exp'], 'models', 'net_g_latest.pth'), map_location='cpu', weights_only=True)
    net_opt = {k: v for k, v in udrl['opt']['network_g'].items() if k != 'type'}
    trained, untrained = MoCo(**net_opt), MoCo(**net_opt)
    trained.load_state_dict(ckpt['params'])
    ds_opt = udrl['opt']['datasets']['val']
    q, k = heldout_pairs(udrl['heldout_faces'], ds_opt, N_PAIRS)
    after = retrieval_metrics(_v_dr(trained.encoder_q, q), _v_dr(trained.encoder_q, k))
    before = retrieval_metrics(_v_dr(untrained.encoder_q, q), _v_dr(untrained.encoder_q, k))
    print(f'held-out retrieval top-1: trained {after["retrieval_top1"]:.3f}, untrained '
          f'{before["retrieval_top1"]:.3f}, chance {1 / N_PAIRS:.3f}')
    assert after['retrieval_top1'] >= MARGIN / N_PAIRS
    assert after['retrieval_top1'] > before['retrieval_top1'] and after['infonce'] < before['infonce']


def test_udrl_checkpoint_holds_queue_and_loads_into_panini(udrl):
    from panininet.archs.panini_arch import PaniniNet
    path = osp.join(udrl['exp'], 'models', 'net_g_latest.pth')
    params = torch.load(path, map_location='cpu', weights_only=True)['params']
    assert params['queue'].shape == (32, 256) and int(params['queue_ptr']) == (150 * 16) % 256
    net = PaniniNet(in_size=32, out_size=64, num_style_feat=32, channel_multiplier=1, narrow=0.0625,
                    rrdb_channels=4, num_rrdbs=1, rrdb_growth=8, dre_in_size=32, dre_num_feat=8, dre_load_path=path)
    for key, value in net.dre.state_dict().items():
        assert torch.equal(value, params[f'encoder_q.{key}']), key


def test_udrl_exact_resume_restores_queue(udrl_data):
    """4 straight iterations == 2 + stop + --auto_resume 2 (3 iterations per epoch): encoders, queue, optimiser."""
    common = dict(datasets__train__batch_size_per_gpu=8, datasets__train__dataset_enlarge_ratio=1,
                  logger__save_checkpoint_freq=2, logger__print_freq=1)
    root = udrl_data['root']
    run_training(root, write_opt(udrl_data, 'udrl_straight', train__total_iter=4, **common)[0])
    run_training(root, write_opt(udrl_data, 'udrl_resume', train__total_iter=2, **common)[0])
    run_training(root, write_opt(udrl_data, 'udrl_resume', train__total_iter=4, **common)[0], '--auto_resume')
    a, b = (torch.load(osp.join(root, 'experiments', n, 'models', 'net_g_4.pth'), map_location='cpu',
                       weights_only=True)['params'] for n in ('udrl_straight', 'udrl_resume'))
    assert int(a['queue_ptr']) == 32 % 256
    for k in a:
        assert torch.equal(a[k], b[k]), k
    sa, sb = (torch.load(osp.join(root, 'experiments', n, 'training_states', '4.state'), map_location='cpu',
                         weights_only=True) for n in ('udrl_straight', 'udrl_resume'))
    for i, st in sa['optimizers'][0]['state'].items():
        for k, v in st.items():
            assert torch.equal(v, sb['optimizers'][0]['state'][i][k]), (i, k)
