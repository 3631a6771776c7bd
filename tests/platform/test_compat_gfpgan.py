"""panininet.platform.compat_gfpgan and PaniniGFPGANModel: each fix of GFP-GAN 1.3.8's training path on today's stack,
shown
failing the original way first (the error it gave), then working; and gfpgan importable before or after panininet."""
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

pytest.importorskip('gfpgan')

import basicsr.archs.vgg_arch as vgg_arch  # noqa: E402
from basicsr.models.base_model import BaseModel  # noqa: E402
from gfpgan.archs.gfpganv1_arch import FacialComponentDiscriminator  # noqa: E402
from gfpgan.data.ffhq_degradation_dataset import FFHQDegradationDataset  # noqa: E402
from gfpgan.models.gfpgan_model import GFPGANModel  # noqa: E402
from helpers import REPO_ROOT as REPO  # noqa: E402
from helpers import free_port, write_component_file  # noqa: E402

from panininet.data.data_util import ComponentLocations  # noqa: E402
from panininet.models.gfpgan_model import PaniniGFPGANModel  # noqa: E402
from panininet.models.losses import vgg_features  # noqa: E402


def _dataset_opt(tmp_path, component_path, num=3):
    faces = tmp_path / 'faces'
    faces.mkdir(exist_ok=True)
    for i in range(num):
        import cv2
        cv2.imwrite(str(faces / f'{i:05d}.png'), np.full((64, 64, 3), 40 * i, np.uint8))
    return dict(dataroot_gt=str(faces), io_backend={'type': 'disk'}, use_hflip=True, mean=[0.5] * 3, std=[0.5] * 3,
                out_size=64, blur_kernel_size=7, kernel_list=['iso'], kernel_prob=[1], blur_sigma=[0.1, 1],
                downsample_range=[1, 2], noise_range=[0, 5], jpeg_range=[60, 100], crop_components=True,
                component_path=component_path, eye_enlarge_ratio=1.4)


def test_component_file_bare_torch_load_refused_then_read_safely(tmp_path, monkeypatch):
    import gfpgan.data.ffhq_degradation_dataset as ffhq_module
    listing = ffhq_module.paths_from_folder  # basicsr lists a folder in file-system order: make it a reversed one
    monkeypatch.setattr(ffhq_module, 'paths_from_folder', lambda folder: sorted(listing(folder), reverse=True))
    path = str(tmp_path / 'landmarks.pth')
    comp = write_component_file(path, 3)
    opt = _dataset_opt(tmp_path, path)
    # GFP-GAN's own __init__: torch.load(path) with today's default weights_only=True refuses numpy scalars
    with pytest.raises(Exception, match=r'(?s)Weights only load failed.*numpy._core.multiarray.scalar'):
        FFHQDegradationDataset.__init__._panininet_original(object.__new__(FFHQDegradationDataset), opt)
    ds = FFHQDegradationDataset(opt)  # patched: through panininet.weights.checkpoint (weights_only, numpy allowed)
    assert isinstance(ds.components_list, ComponentLocations) and len(ds.components_list) == 3
    np.testing.assert_array_equal(ds.components_list['00000001']['mouth'], np.array(comp['00000001']['mouth']))
    # entry i belongs to the i-th image in sorted order, whatever order the file system lists the folder in
    assert ds.paths == sorted(ds.paths) and len(ds.paths) == 3
    item = ds[1]
    assert item['gt_path'].endswith('00001.png') and item['lq'].shape == item['gt'].shape == (3, 64, 64)
    assert all(item[k].shape == (4,) and item[k].dtype == torch.float32
               for k in ('loc_left_eye', 'loc_right_eye', 'loc_mouth'))


def test_component_file_missing_or_short_is_one_clear_error(tmp_path):
    path = str(tmp_path / 'landmarks.pth')
    write_component_file(path, 2)
    with pytest.raises(ValueError, match='has 2 entries for 3 images'):
        FFHQDegradationDataset(_dataset_opt(tmp_path, path))
    with pytest.raises(ValueError, match='component_path is not set'):
        FFHQDegradationDataset(_dataset_opt(tmp_path, None))


def test_flipped_read_no_longer_corrupts_stored_boxes(tmp_path):
    """GFP-GAN's get_component_coordinates swaps and mirrors the stored entry of a flipped image in place."""
    path = str(tmp_path / 'landmarks.pth')
    comp = write_component_file(path, 3)
    ds = FFHQDegradationDataset(_dataset_opt(tmp_path, path))
    unflipped = [t.clone() for t in ds.get_component_coordinates(0, [False])]
    flipped = ds.get_component_coordinates(0, [True])
    x_left = float(comp['00000000']['right_eye'][0])  # a flip makes the right eye the left one, mirrored
    assert flipped[0][0] == pytest.approx(64 - x_left - 1.4 * float(comp['00000000']['right_eye'][2]) + 1, abs=1e-4)
    again = ds.get_component_coordinates(0, [False])
    assert all(torch.equal(a, b) for a, b in zip(unflipped, again))
    # what GFP-GAN's plain dict did: the next unflipped read gets the mirrored boxes
    ds.components_list = {k: {p: list(v) for p, v in e.items()} for k, e in comp.items()}
    ds.get_component_coordinates(0, [True])
    corrupted = ds.get_component_coordinates(0, [False])
    assert not torch.equal(corrupted[0], unflipped[0])


def _vgg_file(folder, seed):
    torch.manual_seed(seed)
    folder.mkdir(parents=True, exist_ok=True)
    state = {f'features.{k}': v for k, v in vgg_features('vgg19', 'pool5').state_dict().items()}
    torch.save(state, folder / 'vgg19-dcbb9e9d.pth')
    return state


def test_perceptual_loss_vgg_from_weights_root_never_cwd_or_download(tmp_path, monkeypatch):
    from basicsr.losses.basic_loss import PerceptualLoss
    layers = {'conv1_2': 0.1, 'conv2_2': 0.1}
    wanted = _vgg_file(tmp_path / 'weights', 1)
    _vgg_file(tmp_path / 'cwd' / 'experiments' / 'pretrained_models', 2)  # basicsr's working-directory path
    monkeypatch.chdir(tmp_path / 'cwd')
    monkeypatch.setenv('PANINI_WEIGHTS_DIR', str(tmp_path / 'weights'))
    loss = PerceptualLoss(layers, vgg_type='vgg19', style_weight=50, range_norm=True)
    assert torch.equal(loss.vgg.vgg_net.conv1_1.weight, wanted['features.0.weight'])
    percep, style = loss(torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 16))
    assert percep > 0 and style > 0

    monkeypatch.setenv('PANINI_WEIGHTS_DIR', str(tmp_path / 'empty'))
    with pytest.raises(FileNotFoundError, match=r'vgg19-dcbb9e9d.pth.*download.pytorch.org'):
        PerceptualLoss(layers, vgg_type='vgg19')

    # without the patch basicsr reads the working directory's file or else downloads torchvision's weights
    def no_download(url, *args, **kwargs):
        raise OSError(f'download attempted: {url}')

    import torchvision.models._api as tv_api
    import torchvision.models.vgg as tv_vgg
    monkeypatch.setattr(tv_api, 'load_state_dict_from_url', no_download)
    monkeypatch.setattr(vgg_arch, 'vgg', tv_vgg)
    monkeypatch.setattr(vgg_arch, 'VGG_PRETRAIN_PATH', 'experiments/pretrained_models/vgg19-dcbb9e9d.pth')
    monkeypatch.chdir(tmp_path)
    with pytest.raises(OSError, match='download attempted: https://download.pytorch.org/models/vgg19'):
        PerceptualLoss(layers, vgg_type='vgg19')


def _optimizer_host():
    """A PaniniGFPGANModel with only what setup_optimizers reads (building the whole model is not needed)."""
    model = object.__new__(PaniniGFPGANModel)
    model.opt = {'train': {'optim_g': {'type': 'Adam', 'lr': 2e-3}, 'optim_d': {'type': 'Adam', 'lr': 2e-3}}}
    model.net_g, model.net_d = torch.nn.Linear(2, 2), torch.nn.Linear(2, 1)
    model.net_d_reg_every, model.use_facial_disc, model.optimizers = 16, False, []
    return model


def test_generator_adam_gets_float_betas(monkeypatch):
    model = _optimizer_host()
    GFPGANModel.setup_optimizers(model)
    assert model.optimizer_g.defaults['betas'] == (0.0, 0.99)
    monkeypatch.delattr(GFPGANModel, 'get_optimizer')  # GFP-GAN's own: betas (0**1, 0.99**1) = (0, 0.99)
    with pytest.raises(ValueError, match='betas must be either both floats or both Tensors'):
        GFPGANModel.setup_optimizers(_optimizer_host())


def _roi_host(out_size, b=2):
    model = object.__new__(PaniniGFPGANModel)
    model.opt = {'network_g': {'out_size': out_size}}
    model.device = torch.device('cpu')
    s = out_size / 64
    model.loc_left_eyes = torch.tensor([[16., 24., 27., 35.]] * b) * s
    model.loc_right_eyes = torch.tensor([[37., 24., 48., 35.]] * b) * s
    model.loc_mouths = torch.tensor([[24., 40., 40., 52.]] * b) * s
    gt = torch.zeros(b, 3, out_size, out_size)
    for c, box in enumerate((model.loc_left_eyes[0], model.loc_right_eyes[0], model.loc_mouths[0])):
        x0, y0, x1, y1 = box.long().tolist()
        gt[:, c, y0:y1, x0:x1] = 1  # left eye red, right eye green, mouth blue
    model.gt, model.output = gt, gt.clone()
    return model


def test_component_crops_below_512_pixels():
    model = _roi_host(64)
    GFPGANModel.get_roi_regions(model)  # GFP-GAN's own: crop sides 80 * int(64 / 512) = 0
    assert model.left_eyes.shape[-1] == 0
    with pytest.raises(RuntimeError, match="Kernel size can't be greater than actual input size"):
        FacialComponentDiscriminator()(model.left_eyes)
    model.get_roi_regions()
    assert model.left_eyes.shape == model.right_eyes_gt.shape == (2, 3, 10, 10)
    assert model.mouths.shape == (2, 3, 15, 15)
    means = [getattr(model, n).mean((0, 2, 3)) for n in ('left_eyes_gt', 'right_eyes', 'mouths')]
    for c, m in enumerate(means):  # each crop holds its own part (and the batch order is GFP-GAN's)
        assert m[c] > 0.5 and m.sum() - m[c] < 0.2, (c, m)
    big = _roi_host(512, b=1)
    big.get_roi_regions()  # GFP-GAN's own method at 512 px
    assert big.left_eyes.shape == (1, 3, 80, 80) and big.mouths.shape == (1, 3, 120, 120)


def test_ddp_wrap_on_cpu():
    import torch.distributed as dist
    model = object.__new__(PaniniGFPGANModel)
    model.opt = {'dist': True, 'num_gpu': 0, 'find_unused_parameters': True}
    model.device = torch.device('cpu')
    net = torch.nn.Linear(2, 2)
    with pytest.raises((RuntimeError, AssertionError)):  # basicsr's: device_ids=[torch.cuda.current_device()]
        BaseModel.model_to_device(model, net)
    dist.init_process_group('gloo', init_method=f'tcp://127.0.0.1:{free_port()}', rank=0, world_size=1)
    try:
        wrapped = model.model_to_device(net)
        assert isinstance(wrapped, torch.nn.parallel.DistributedDataParallel) and wrapped.device_ids is None
    finally:
        dist.destroy_process_group()


IMPORT_CHECKS = '''
import torch
from basicsr.archs import vgg_arch
from basicsr.utils.registry import ARCH_REGISTRY, DATASET_REGISTRY, MODEL_REGISTRY
from gfpgan.archs.gfpganv1_arch import GFPGANv1
from gfpgan.data.ffhq_degradation_dataset import FFHQDegradationDataset
from gfpgan.models.gfpgan_model import GFPGANModel
assert FFHQDegradationDataset.__init__._panininet_original
assert 'get_optimizer' in vars(GFPGANModel) and type(vgg_arch.vgg).__name__ == '_TorchvisionVGGFromWeightsRoot'
assert MODEL_REGISTRY.get('PaniniGFPGANModel') and MODEL_REGISTRY.get('PaniniModel')
assert ARCH_REGISTRY.get('GFPGANv1') and DATASET_REGISTRY.get('FFHQDegradationDataset')
net = GFPGANv1(32, num_style_feat=16, channel_multiplier=1, narrow=0.125, input_is_latent=True, different_w=True,
               sft_half=True)
out, rgbs = net(torch.rand(1, 3, 32, 32))
assert out.shape == (1, 3, 32, 32) and torch.isfinite(out).all()
print('OK')
'''
ORDERS = {
    'panininet_first': 'import panininet\nimport gfpgan\n',
    # torchvision < 0.17 had functional_tensor, so gfpgan could be imported first; emulate that, then panininet
    'gfpgan_first': ('import sys\nimport torchvision.transforms._functional_tensor as ft\n'
                     "sys.modules['torchvision.transforms.functional_tensor'] = ft\n"
                     'import gfpgan\nimport panininet\n'),
}


@pytest.mark.parametrize('order', sorted(ORDERS))
def test_gfpgan_importable_before_or_after_panininet(order):
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get('PYTHONPATH', ''), OMP_NUM_THREADS='1')
    proc = subprocess.run([sys.executable, '-c', ORDERS[order] + IMPORT_CHECKS], env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip().endswith('OK'), proc.stderr[-3000:]

