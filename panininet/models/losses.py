"""Losses of Panini-Net fine-tuning that basicsr 1.4.2 does not provide as needed.

:class:`VGGPerceptualLoss` is the perceptual term of the paper (Johnson et al. 2016) as the official config sets it
(VGG16, layer ``conv4_3`` before its ReLU, MSE, weight 1e-2), with two differences from basicsr's
``PerceptualLoss``:

* the VGG weights come from a file named in the options (``vgg_load_path``); basicsr's ``VGGFeatureExtractor``
  reads a path relative to the working directory and otherwise downloads torchvision's weights;
* the value range is explicit. Our images are RGB in [-1, 1]. With ``range_norm=True`` (default) they are mapped to
  [0, 1] before the ImageNet mean/std normalisation that the torchvision VGG was trained with. The official code
  (MMEditing ``PerceptualLoss(norm_img=False)``) feeds the [-1, 1] images straight into that normalisation, which
  assumes [0, 1]: ``range_norm=False`` reproduces it.

It registers in basicsr's ``LOSS_REGISTRY`` (``type: VGGPerceptualLoss``); the model modules import this file.
"""
import os.path as osp
from collections import OrderedDict

import torch
from basicsr.archs.vgg_arch import NAMES
from basicsr.utils.registry import LOSS_REGISTRY
from torch import nn
from torch.nn import functional as F

from panininet.metrics.networks import ARCFACE_CROP, build_arcface
from panininet.weights.checkpoint import load_checkpoint_file, strip_prefix

# torchvision's layer configurations (``torchvision.models.vgg.cfgs``): output channels, 'M' = max pooling
_VGG_CFGS = {
    'vgg16': [64, 64, 'M', 128, 128, 'M', 256, 256, 256, 'M', 512, 512, 512, 'M', 512, 512, 512, 'M'],
    'vgg19': [64, 64, 'M', 128, 128, 'M', 256, 256, 256, 256, 'M', 512, 512, 512, 512, 'M', 512, 512, 512, 512, 'M'],
}


def vgg_features(vgg_type, last_layer):
    """torchvision's VGG ``features`` up to ``last_layer`` (same indices, so its state-dict keys load).

    Args:
        vgg_type (str): 'vgg16' or 'vgg19'.
        last_layer (str): Name of the last layer kept, e.g. 'conv4_3' (see ``basicsr.archs.vgg_arch.NAMES``).

    Returns:
        nn.Sequential: ``features[:index(last_layer) + 1]``.
    """
    layers = []
    in_ch = 3
    for v in _VGG_CFGS[vgg_type]:
        if v == 'M':
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            # ReLU not in place, so that pre-ReLU features (conv4_3) are kept
            layers += [nn.Conv2d(in_ch, v, kernel_size=3, padding=1), nn.ReLU()]
            in_ch = v
    return nn.Sequential(*layers[:NAMES[vgg_type].index(last_layer) + 1])


def load_vgg_features(features, load_path, option='vgg_load_path'):
    """Load torchvision VGG weights (e.g. ``vgg16-397923af.pth``) into ``features``.

    Accepts a torchvision checkpoint (keys ``features.<i>.weight``, classifier keys ignored) or a bare ``features``
    state dict (keys ``<i>.weight``). Layers past the last kept one are ignored.

    Args:
        features (nn.Sequential): From :func:`vgg_features`.
        load_path (str): The weights file.
        option (str): Option name shown in error messages. Default: 'vgg_load_path'.
    """
    if load_path is None:
        raise ValueError(f'{option} is not set: the perceptual loss needs torchvision VGG weights (nothing is '
                         'downloaded). Download https://download.pytorch.org/models/vgg16-397923af.pth and set '
                         f'{option} to its path.')
    if not osp.isfile(load_path):
        raise FileNotFoundError(f'VGG weights {load_path!r} ({option}) do not exist. Download '
                                'https://download.pytorch.org/models/vgg16-397923af.pth (VGG16) and fix the path.')
    state = load_checkpoint_file(load_path)
    if any(k.startswith('features.') for k in state):
        state = strip_prefix(state, 'features.', only=True)
    wanted = features.state_dict().keys()
    missing = [k for k in wanted if k not in state]
    if missing:
        raise KeyError(f'VGG weights {load_path!r} ({option}) lack {missing[:4]}...: not a torchvision VGG '
                       'checkpoint of this vgg_type.')
    features.load_state_dict(OrderedDict((k, state[k]) for k in wanted), strict=True)


@LOSS_REGISTRY.register()
class VGGPerceptualLoss(nn.Module):
    """Perceptual loss: weighted distance between frozen VGG features of output and ground truth.

    ``loss = loss_weight * sum_l layer_weights[l] * criterion(phi_l(x), phi_l(gt))``.

    Args:
        vgg_load_path (str): torchvision VGG weights file (``vgg16-397923af.pth``). Required: nothing is downloaded.
        layer_weights (dict): Layer name -> weight. Default: {'conv4_3': 1.0} (official: layer '21', before ReLU).
        vgg_type (str): 'vgg16' or 'vgg19'. Default: 'vgg16'.
        use_input_norm (bool): Subtract the ImageNet mean and divide by its std. Default: True.
        range_norm (bool): Map inputs from [-1, 1] to [0, 1] first. Default: True (correct for our [-1, 1] images);
            False is the official behaviour (``norm_img=False``).
        criterion (str): 'mse' (official) or 'l1'. Default: 'mse'.
        loss_weight (float): Overall weight. Default: 1e-2 (official ``perceptual_weight``).
    """

    def __init__(self, vgg_load_path=None, layer_weights=None, vgg_type='vgg16', use_input_norm=True, range_norm=True,
                 criterion='mse', loss_weight=1e-2):
        super().__init__()
        self.layer_weights = dict(layer_weights or {'conv4_3': 1.0})
        if vgg_type not in _VGG_CFGS:
            raise ValueError(f'vgg_type must be one of {sorted(_VGG_CFGS)}, got {vgg_type!r}.')
        names = NAMES[vgg_type]
        unknown = [k for k in self.layer_weights if k not in names]
        if unknown:
            raise ValueError(f'Unknown VGG layer(s) {unknown}; {vgg_type} has {names}.')
        if criterion not in ('mse', 'l1'):
            raise ValueError(f"criterion must be 'mse' or 'l1', got {criterion!r}.")
        self.names = names
        self.use_input_norm = use_input_norm
        self.range_norm = range_norm
        self.criterion = F.mse_loss if criterion == 'mse' else F.l1_loss
        self.loss_weight = loss_weight
        last = max(self.layer_weights, key=names.index)
        self.vgg = vgg_features(vgg_type, last)
        load_vgg_features(self.vgg, vgg_load_path)
        self.vgg.eval()
        self.vgg.requires_grad_(False)
        self.register_buffer('mean', torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer('std', torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1), persistent=False)

    def train(self, mode=True):
        super().train(mode)
        self.vgg.eval()  # frozen feature extractor (no dropout/BN in VGG, but keep it explicit)
        return self

    def features(self, x):
        """VGG features of the requested layers.

        Args:
            x (Tensor): RGB images, (b, 3, h, w), in [-1, 1] (or as the official code with ``range_norm=False``).

        Returns:
            dict[str, Tensor]: Layer name -> (b, c_l, h_l, w_l).
        """
        if self.range_norm:
            x = (x + 1) / 2
        if self.use_input_norm:
            x = (x - self.mean) / self.std
        out = {}
        for name, layer in zip(self.names, self.vgg):
            x = layer(x)
            if name in self.layer_weights:
                out[name] = x
        return out

    def forward(self, x, gt):
        """Perceptual loss.

        Args:
            x (Tensor): Output images, (b, 3, h, w).
            gt (Tensor): Ground truth, (b, 3, h, w).

        Returns:
            Tensor: Scalar loss.
        """
        fx = self.features(x)
        with torch.no_grad():
            fg = self.features(gt.detach())
        loss = sum(self.layer_weights[k] * self.criterion(fx[k], fg[k]) for k in self.layer_weights)
        return loss * self.loss_weight


# ---------------------------------------------------------------------------------------------------------------------
# Identity ("face preserving") loss on ArcFace embeddings: MMRB-Net eq. (15)
# ---------------------------------------------------------------------------------------------------------------------
@LOSS_REGISTRY.register()
class ArcFaceIdentityLoss(nn.Module):
    """Face-preserving loss ``L_FP = lambda_FP * || phi(X) - phi(X') ||_1`` (MMRB-Net eq. 15), phi = ArcFace.

    The paper names the ArcFace embedding and the L1 norm; we take the mean absolute difference over the 512
    embedding values (as GFP-GAN's identity loss, whose weight 10 the paper also uses), facexlib's IR-SE50 (the
    network of our identity metric), and its input as the identity metric prepares it: the FFHQ-aligned face cropped
    to ArcFace's field of view (:data:`panininet.metrics.ARCFACE_CROP`) and area-resized to 112x112, RGB in [-1, 1].

    Args:
        arcface_load_path (str): facexlib ArcFace weights (``recognition_arcface_ir_se50.pth``). Required.
        num_layers (int): ArcFace depth. Default: 50.
        mode (str): 'ir_se' or 'ir'. Default: 'ir_se'.
        crop (bool): Crop to the ArcFace field of view first. Default: True.
        loss_weight (float): lambda_FP. Default: 10 (paper).
    """

    def __init__(self, arcface_load_path=None, num_layers=50, mode='ir_se', crop=True, loss_weight=10.0):
        super().__init__()
        self.arcface = build_arcface(arcface_load_path, num_layers, mode)
        self.crop_box = ARCFACE_CROP if crop else None  # (top, bottom, left, right) fractions of the side
        self.loss_weight = loss_weight

    def train(self, mode=True):
        super().train(mode)
        self.arcface.eval()  # frozen: BatchNorm statistics and dropout stay as trained
        return self

    def embed(self, x):
        """ArcFace embeddings.

        Args:
            x (Tensor): Aligned faces, (b, 3, h, w), RGB in [-1, 1].

        Returns:
            Tensor: (b, 512) unit vectors.
        """
        if self.crop_box is not None:
            h, w = x.shape[-2:]
            top, bottom, left, right = self.crop_box
            x = x[..., round(top * h):round(bottom * h), round(left * w):round(right * w)]
        return self.arcface(F.interpolate(x, size=(112, 112), mode='area'))

    def forward(self, x, gt):
        """Identity loss.

        Args:
            x (Tensor): Restored faces, (b, 3, h, w), RGB in [-1, 1].
            gt (Tensor): Ground truth, (b, 3, h, w).

        Returns:
            Tensor: Scalar loss (0 when ``x`` equals ``gt``).
        """
        with torch.no_grad():
            target = self.embed(gt.detach())
        return F.l1_loss(self.embed(x), target) * self.loss_weight
