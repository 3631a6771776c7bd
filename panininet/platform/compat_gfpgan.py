"""Patches of GFP-GAN 1.3.8's training path for today's stack, applied by
:func:`panininet.platform.compat_basicsr.apply`.

gfpgan is optional (the ``[gfpgan]`` extra): without it these patches do nothing. ``import gfpgan`` needs the
torchvision alias of patch 1 (basicsr's import), so import it after panininet; if gfpgan was imported first
(an older torchvision), the patches below still reach its classes, which are patched in place.

* :func:`patch_gfpgan_component_file`: ``FFHQDegradationDataset`` reads ``component_path`` with a bare
  ``torch.load``. GFP-GAN's ``FFHQ_eye_mouth_landmarks_512.pth`` holds numpy float64 scalars, which PyTorch >= 2.6
  (``weights_only=True`` by default) refuses: ``_pickle.UnpicklingError: Weights only load failed ...
  Unsupported global: GLOBAL numpy._core.multiarray.scalar``. The file is read through
  ``panininet.weights.checkpoint.load_checkpoint_file`` instead (numpy scalars allowed, nothing callable), into a
  :class:`panininet.data.data_util.ComponentLocations`, whose look-ups return fresh arrays: GFP-GAN's
  ``get_component_coordinates`` edits the entry of a flipped image in place, which corrupted its stored boxes.
  With the disk backend the image list is sorted: basicsr's ``paths_from_folder`` lists a folder in ``os.scandir``
  order (file-system order), while entry ``f'{i:08d}'`` of the file is the i-th FFHQ image (sorted order), so
  boxes could silently land on other faces.
* :func:`patch_vgg_weights`: basicsr's ``VGGFeatureExtractor`` (GFP-GAN's perceptual and style loss) reads
  ``experiments/pretrained_models/vgg19-dcbb9e9d.pth`` relative to the working directory, for every VGG type, and
  otherwise downloads torchvision's weights (offline: ``urllib.error.URLError``). It now reads the torchvision
  file of its VGG type from the weights root (``$PANINI_WEIGHTS_DIR``, else ``~/.cache/panininet``) and refuses
  with a message naming the file and its URL when it is missing; nothing is downloaded.
* :func:`patch_gfpgan_adam_betas`: ``GFPGANModel.setup_optimizers`` gives the generator's Adam
  ``betas=(0**1, 0.99**1) == (0, 0.99)``, an int and a float, which today's ``torch.optim.Adam`` refuses:
  ``ValueError: betas must be either both floats or both Tensors``. Its ``get_optimizer`` now passes floats.
"""
import importlib.util
import os.path as osp


def _gfpgan_installed():
    return importlib.util.find_spec('gfpgan') is not None


def patch_gfpgan_component_file():
    """Make GFP-GAN's ``FFHQDegradationDataset`` read its component-landmarks file safely (see the module docstring).

    Returns:
        bool: False when gfpgan is not installed (nothing patched).
    """
    if not _gfpgan_installed():
        return False
    from gfpgan.data.ffhq_degradation_dataset import FFHQDegradationDataset
    if getattr(FFHQDegradationDataset.__init__, '_panininet_original', None) is not None:
        return True
    original = FFHQDegradationDataset.__init__

    def __init__(self, opt):
        original(self, dict(opt, crop_components=False))  # everything but the bare torch.load
        self.opt = opt
        if opt['io_backend'].get('type', 'disk') != 'lmdb':  # entry i is the i-th image: a fixed, sorted list
            self.paths = sorted(self.paths)
        self.crop_components = opt.get('crop_components', False)
        if self.crop_components:
            from panininet.data.data_util import ComponentLocations
            self.components_list = ComponentLocations.from_options(opt, len(self.paths))

    __init__._panininet_original = original
    __init__.__doc__ = original.__doc__
    FFHQDegradationDataset.__init__ = __init__
    return True


def patch_gfpgan_adam_betas():
    """Give ``torch.optim`` float betas from ``GFPGANModel``'s optimisers (see the module docstring).

    Returns:
        bool: False when gfpgan is not installed (nothing patched).
    """
    if not _gfpgan_installed():
        return False
    from gfpgan.models.gfpgan_model import GFPGANModel
    if 'get_optimizer' in vars(GFPGANModel):
        return True

    def get_optimizer(self, optim_type, params, lr, **kwargs):
        if 'betas' in kwargs:
            kwargs['betas'] = tuple(float(b) for b in kwargs['betas'])
        return super(GFPGANModel, self).get_optimizer(optim_type, params, lr, **kwargs)

    GFPGANModel.get_optimizer = get_optimizer
    return True


class _TorchvisionVGGFromWeightsRoot:
    """Stands in for ``torchvision.models.vgg`` inside ``basicsr.archs.vgg_arch``: ``vgg19(pretrained=True)``
    builds torchvision's VGG ``features`` and loads them from the weights root, never downloading."""

    def __getattr__(self, vgg_type):
        if not vgg_type.startswith('vgg'):
            raise AttributeError(vgg_type)
        return lambda pretrained=False, **kwargs: vgg_from_weights_root(vgg_type, pretrained)


def vgg_from_weights_root(vgg_type, pretrained=True):
    """torchvision's VGG ``features`` (the only part basicsr uses), loaded from the weights root.

    Args:
        vgg_type (str): 'vgg11', 'vgg13', 'vgg16', 'vgg19' or a '_bn' variant.
        pretrained (bool): Load the ImageNet weights (torchvision's file name, e.g. ``vgg19-dcbb9e9d.pth``, in
            ``$PANINI_WEIGHTS_DIR``, else ``~/.cache/panininet``; its ``features.*`` entries). Default: True.

    Returns:
        nn.Module: With a ``features`` attribute (torchvision's layers, same indices).
    """
    from torch import nn
    from torchvision.models import vgg as tv_vgg

    from panininet.weights.checkpoint import load_checkpoint_file
    from panininet.weights.releases import ENV_WEIGHTS_DIR, weights_root
    cfg = {'vgg11': 'A', 'vgg13': 'B', 'vgg16': 'D', 'vgg19': 'E'}[vgg_type.replace('_bn', '')]
    net = nn.Module()
    net.features = tv_vgg.make_layers(tv_vgg.cfgs[cfg], batch_norm=vgg_type.endswith('_bn'))
    if not pretrained:
        return net
    url = getattr(tv_vgg, f'{vgg_type.upper()}_Weights').IMAGENET1K_V1.url
    path = osp.join(weights_root(), osp.basename(url))
    if not osp.isfile(path):
        raise FileNotFoundError(f'The perceptual loss needs torchvision {vgg_type} weights, not found at {path}. '
                                f'Download {url} into ${ENV_WEIGHTS_DIR} (else ~/.cache/panininet); nothing is '
                                'downloaded during training.')
    state = load_checkpoint_file(path)
    features = {k[len('features.'):]: v for k, v in state.items() if k.startswith('features.')}
    try:
        net.features.load_state_dict(features, strict=True)
    except RuntimeError as err:
        raise RuntimeError(f'{path}: not torchvision {vgg_type} weights ({str(err).splitlines()[0]}).') from None
    return net


def patch_vgg_weights():
    """Point basicsr's ``VGGFeatureExtractor`` at :func:`vgg_from_weights_root` (see the module docstring)."""
    import basicsr.archs.vgg_arch as vgg_arch
    vgg_arch.VGG_PRETRAIN_PATH = ''  # never the working directory's experiments/pretrained_models
    vgg_arch.vgg = _TorchvisionVGGFromWeightsRoot()
