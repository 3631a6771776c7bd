"""The metric networks (LPIPS, FID's Inception, ArcFace) and where their weights come from.

See :mod:`panininet.metrics` for what each metric is and how it is computed.
"""
import functools
import math
import os
import os.path as osp

import numpy as np
import torch
from basicsr.metrics.fid import calculate_fid
from basicsr.utils import get_root_logger
from torch.nn import functional as F

from panininet.weights.checkpoint import load_checkpoint_file, pick_params

FID_INCEPTION_URL = ('https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/'
                     'pt_inception-2015-12-05-6726825d.pth')
ARCFACE_URL = 'https://github.com/xinntao/facexlib/releases/download/v0.1.0/recognition_arcface_ir_se50.pth'
LPIPS_TRUNK_URLS = {
    'alex': 'https://download.pytorch.org/models/alexnet-owt-7be5be79.pth',
    'vgg': 'https://download.pytorch.org/models/vgg16-397923af.pth',
    'squeeze': 'https://download.pytorch.org/models/squeezenet1_1-b8a52dc0.pth',
}


# ---------------------------------------------------------------------------------------------------------------------
# weights
# ---------------------------------------------------------------------------------------------------------------------
def weights_cache_dir():
    """Folder where downloaded weights are kept: torch hub's ``checkpoints`` folder (honours ``$TORCH_HOME``)."""
    return osp.join(torch.hub.get_dir(), 'checkpoints')


def resolve_weights(path, url, what, flag, download=True):
    """Local file of a network's weights: ``path``, else the cached download, else download it (if allowed).

    Args:
        path (str | None): Explicit file. When given it must exist (no fallback).
        url (str): Where the file is published; its basename is the cached file name.
        what (str): Human name of the weights, for messages (e.g. 'FID Inception').
        flag (str): Command-line flag that sets ``path``, for messages (e.g. '--inception').
        download (bool): Download into the cache when the file is absent. Default: True.

    Returns:
        str: Path of an existing file.

    Raises:
        FileNotFoundError: ``path`` is missing, or the file is not cached and may not / could not be downloaded.
    """
    if path is not None:
        if not osp.isfile(path):
            raise FileNotFoundError(f'{what} weights not found at {path} (given by {flag}).')
        return path
    cached = osp.join(weights_cache_dir(), osp.basename(url))
    if osp.isfile(cached):
        return cached
    hint = (f'Download {url} on a machine with internet access and pass it with {flag} PATH, '
            f'or put it at {cached}.')
    if not download:
        raise FileNotFoundError(f'{what} weights are not cached at {cached} and downloading is disabled. {hint}')
    os.makedirs(osp.dirname(cached), exist_ok=True)
    get_root_logger().info(f'Downloading {what} weights: {url} -> {cached}')
    try:
        torch.hub.download_url_to_file(url, cached, progress=True)
    except Exception as err:  # URLError, HTTPError, socket timeouts, ...: all mean "no file"
        raise FileNotFoundError(f'Could not download {what} weights from {url} ({err!r}); offline? {hint}') from err
    return cached


def _load_state_dict(path, what):
    """A metric network's state dict (``state_dict`` entry when there is one), read by panininet.weights.checkpoint."""
    try:
        state = load_checkpoint_file(path)
    except Exception as err:
        raise RuntimeError(f'Could not read {what} weights from {path}: {err}') from err
    if isinstance(state, dict) and 'state_dict' in state and isinstance(state['state_dict'], dict):
        state = state['state_dict']
    return state


def metric_network(net, device, weights_path, url, what, flag, download, build):
    """A metric's network on ``device`` in eval mode: ``net`` when given (tests inject tiny ones), else ``build(file)``.

    Args:
        net (torch.nn.Module | None): A ready network.
        device (torch.device): Where it runs.
        weights_path, url, what, flag, download: As :func:`resolve_weights` (used only when ``net`` is None).
        build (callable): weights file -> network.

    Returns:
        torch.nn.Module
    """
    if net is None:
        net = build(resolve_weights(weights_path, url, what, flag, download))
    return net.to(device).eval()


def bgr_to_tensor(imgs):
    """uint8 BGR images -> float RGB tensor in [-1, 1].

    Args:
        imgs (ndarray | list[ndarray]): One (h, w, 3) image or a list of same-size images.

    Returns:
        Tensor: (b, 3, h, w), float32, RGB, in [-1, 1].
    """
    if isinstance(imgs, np.ndarray):
        imgs = [imgs]
    arr = np.stack([img[..., ::-1] for img in imgs]).astype(np.float32) / 127.5 - 1.0
    return torch.from_numpy(np.ascontiguousarray(arr)).permute(0, 3, 1, 2).contiguous()


# ---------------------------------------------------------------------------------------------------------------------
# LPIPS
# ---------------------------------------------------------------------------------------------------------------------
def load_lpips_trunk(model, trunk_path):
    """Copy a torchvision ImageNet checkpoint (``features.*``) into an ``lpips.LPIPS`` trunk built with
    ``pnet_rand=True``.

    lpips splits torchvision's ``features`` Sequential into slices whose children keep the original indices, so
    ``features.{i}.weight`` goes to ``slice{k}.{i}.weight``.

    Args:
        model (lpips.LPIPS): LPIPS model.
        trunk_path (str): torchvision checkpoint of the trunk (alexnet / vgg16 / squeezenet1_1).
    """
    state = _load_state_dict(trunk_path, 'LPIPS trunk')
    target = {}
    for slice_name, part in model.net.named_children():
        for idx, module in part.named_children():
            for pname in module.state_dict():
                target[f'features.{idx}.{pname}'] = f'{slice_name}.{idx}.{pname}'
    missing = [k for k in target if k not in state]
    if missing:
        raise ValueError(f'{trunk_path} is not a torchvision {model.pnet_type} checkpoint: it lacks {missing[:3]}...')
    model.net.load_state_dict({dst: state[src] for src, dst in target.items()}, strict=True)


class LPIPSMetric:
    """LPIPS distance (lower is better) between restored and GT images.

    Args:
        net (str): Trunk: 'vgg' (default, as BasicSR's calculate_lpips.py) | 'alex' | 'squeeze'.
        model (nn.Module | None): A ready LPIPS-like network ``(x, y) -> (b, 1, 1, 1)`` taking RGB in [-1, 1]
            (tests pass one with a random trunk). When given, ``net``/``trunk_path``/``download`` are unused.
        trunk_path (str | None): torchvision ImageNet checkpoint of the trunk. Default: torch hub's cache.
        download (bool): Download the trunk into the cache if absent. Default: True.
        device (str | torch.device): Default: 'cpu'.
    """

    def __init__(self, net='vgg', model=None, trunk_path=None, download=True, device='cpu'):
        self.device = torch.device(device)
        if model is None and net not in LPIPS_TRUNK_URLS:
            raise ValueError(f'LPIPS net must be one of {sorted(LPIPS_TRUNK_URLS)}, got {net!r}.')

        def build(path):
            import lpips

            # pretrained=True: LPIPS's linear heads, shipped inside the lpips wheel (no download);
            # pnet_rand=True: the trunk is NOT fetched from torchvision, it is loaded from `path` below
            lpips_model = lpips.LPIPS(net=net, pretrained=True, pnet_rand=True, verbose=False)
            load_lpips_trunk(lpips_model, path)
            return lpips_model

        self.model = metric_network(model, self.device, trunk_path, LPIPS_TRUNK_URLS.get(net), f'LPIPS {net} trunk',
                                    '--lpips-trunk', download, build)

    @torch.no_grad()
    def __call__(self, img, gt):
        """LPIPS of two uint8 BGR (h, w, 3) images (same size). Returns a float."""
        x = bgr_to_tensor(img).to(self.device)
        y = bgr_to_tensor(gt).to(self.device)
        return float(self.model(x, y).mean())


# ---------------------------------------------------------------------------------------------------------------------
# FID
# ---------------------------------------------------------------------------------------------------------------------
def build_fid_inception(weights_path):
    """basicsr's FID InceptionV3 (pool3, 2048-d; resizes inputs to 299; expects RGB in [-1, 1]) from a local file.

    basicsr builds it through ``fid_inception_v3``, which reads a working-directory-relative file or downloads;
    both lookups are redirected to ``weights_path`` while it is built.
    """
    from basicsr.archs import inception as inc

    state = _load_state_dict(weights_path, 'FID Inception')
    saved = inc.load_url, inc.LOCAL_FID_WEIGHTS
    inc.load_url = lambda *args, **kwargs: state
    inc.LOCAL_FID_WEIGHTS = osp.join(osp.dirname(osp.abspath(weights_path)), '.panininet-not-a-file')
    try:
        net = inc.InceptionV3([3], resize_input=True, normalize_input=False)
    finally:
        inc.load_url, inc.LOCAL_FID_WEIGHTS = saved
    return net.eval()


class FIDMetric:
    """Fréchet Inception Distance between two image sets.

    Args:
        feature_net (nn.Module | None): Maps (b, 3, h, w) RGB in [-1, 1] to features (b, d) (or a list whose first
            item is (b, d, ...), as basicsr's InceptionV3 returns). Default: basicsr's FID InceptionV3.
        weights_path (str | None): FID Inception weights. Default: torch hub's cache.
        download (bool): Download the weights into the cache if absent. Default: True.
        device (str | torch.device): Default: 'cpu'.
        batch_size (int): Images per forward. Default: 8.
    """

    def __init__(self, feature_net=None, weights_path=None, download=True, device='cpu', batch_size=8):
        self.device = torch.device(device)
        self.net = metric_network(feature_net, self.device, weights_path, FID_INCEPTION_URL, 'FID Inception',
                                  '--inception', download, build_fid_inception)
        self.batch_size = batch_size

    @torch.no_grad()
    def features(self, imgs):
        """Features of uint8 BGR images (any sizes; batched by size order of arrival).

        Args:
            imgs (Iterable[ndarray]): (h, w, 3) uint8 BGR images.

        Returns:
            ndarray: (n, d) float64.
        """
        feats, batch = [], []

        def flush():
            out = self.net(bgr_to_tensor(batch).to(self.device))
            if isinstance(out, (list, tuple)):
                out = out[0]
            feats.append(out.reshape(out.shape[0], -1).double().cpu().numpy())
            batch.clear()

        for img in imgs:
            if batch and img.shape != batch[0].shape:
                flush()
            batch.append(img)
            if len(batch) == self.batch_size:
                flush()
        if batch:
            flush()
        if not feats:
            raise ValueError('FID needs images; got none.')
        return np.concatenate(feats)

    @staticmethod
    def statistics(feats):
        """Mean (d,) and covariance (d, d) of features (n, d); n >= 2."""
        if feats.shape[0] < 2:
            raise ValueError(f'FID needs at least 2 images per set, got {feats.shape[0]}.')
        return feats.mean(axis=0), np.cov(feats, rowvar=False)

    @staticmethod
    def distance(feats1, feats2):
        """FID between two feature sets (n1, d) and (n2, d). Returns a float (0 for identical sets, up to
        numerical error of the matrix square root)."""
        mu1, sigma1 = FIDMetric.statistics(feats1)
        mu2, sigma2 = FIDMetric.statistics(feats2)
        return float(calculate_fid(mu1, sigma1, mu2, sigma2))


# ---------------------------------------------------------------------------------------------------------------------
# identity angle (ArcFace)
# ---------------------------------------------------------------------------------------------------------------------
# ArcFace field of view inside an FFHQ-aligned face, as fractions of its side (pSp's crop [35:223, 32:220] of 256).
ARCFACE_CROP = (35 / 256, 223 / 256, 32 / 256, 220 / 256)


def build_arcface(load_path, num_layers=50, mode='ir_se', option='arcface_load_path'):
    """facexlib's ArcFace ``Backbone`` (IR-SE50 as ``init_recognition_model('arcface')``) with weights from a file.

    The one builder of ArcFace: the identity metric (:class:`IdentityMetric`) and MMRB-Net's identity loss
    (:class:`panininet.models.losses.ArcFaceIdentityLoss`) use the same network.

    Args:
        load_path (str | None): The state dict (``recognition_arcface_ir_se50.pth``: ``Backbone`` keys, optionally
            under ``params`` / ``state_dict`` or with a ``module.`` prefix).
        num_layers (int): 50, 100 or 152. Default: 50.
        mode (str): 'ir_se' or 'ir'. Default: 'ir_se'.
        option (str): Option name for the error messages. Default: 'arcface_load_path'.

    Returns:
        nn.Module: The network in eval mode, frozen; input (b, 3, 112, 112) RGB in [-1, 1], output (b, 512) unit
        vectors.
    """
    from facexlib.recognition.arcface_arch import Backbone

    url = ARCFACE_URL
    if load_path is None:
        raise ValueError(f'{option} is not set: the identity loss needs facexlib\'s ArcFace weights (nothing is '
                         f'downloaded). Download {url} and set {option} to its path.')
    if not osp.isfile(load_path):
        raise FileNotFoundError(f'ArcFace weights {load_path!r} ({option}) do not exist. Download {url} and fix '
                                'the path.')
    obj = load_checkpoint_file(load_path)
    if isinstance(obj, dict) and isinstance(obj.get('state_dict'), dict):
        obj = obj['state_dict']
    net = Backbone(num_layers=num_layers, drop_ratio=0.6, mode=mode)
    try:
        net.load_state_dict(pick_params(obj, load_path), strict=True)
    except (RuntimeError, ValueError) as e:
        raise ValueError(f'ArcFace weights {load_path!r} ({option}) do not fit facexlib\'s Backbone({num_layers}, '
                         f'mode={mode!r}): {str(e).splitlines()[0]}') from None
    net.eval()
    net.requires_grad_(False)
    return net


class IdentityMetric:
    """Identity distance "Deg." (GFP-GAN): angle in degrees between ArcFace embeddings of restored and GT faces.

    Args:
        model (nn.Module | None): Maps (b, 3, input_size, input_size) RGB in [-1, 1] to embeddings (b, d).
            Default: facexlib's ArcFace IR-SE50.
        weights_path (str | None): ArcFace weights. Default: torch hub's cache.
        download (bool): Download the weights into the cache if absent. Default: True.
        device (str | torch.device): Default: 'cpu'.
        input_size (int): Side of the network input. Default: 112.
        crop (bool): Crop an FFHQ-aligned face to the ArcFace field of view first (:data:`ARCFACE_CROP`).
            Default: True.
    """

    def __init__(self, model=None, weights_path=None, download=True, device='cpu', input_size=112, crop=True):
        self.device = torch.device(device)
        self.model = metric_network(model, self.device, weights_path, ARCFACE_URL, 'ArcFace', '--arcface', download,
                                    functools.partial(build_arcface, option='--arcface'))
        self.input_size = input_size
        self.crop = crop

    @torch.no_grad()
    def embed(self, img):
        """Unit-norm embedding (d,) of one uint8 BGR face image (h, w, 3)."""
        x = bgr_to_tensor(img).to(self.device)
        if self.crop:
            h, w = x.shape[-2:]
            top, bottom, left, right = ARCFACE_CROP
            x = x[..., round(top * h):round(bottom * h), round(left * w):round(right * w)]
        x = F.interpolate(x, size=(self.input_size, self.input_size), mode='area').contiguous()
        e = self.model(x).reshape(1, -1).double()
        return F.normalize(e, dim=1)[0].cpu().numpy()

    def __call__(self, img, gt):
        """Angle in degrees (0..180) between the embeddings of two faces."""
        cos = float(np.clip(np.dot(self.embed(img), self.embed(gt)), -1.0, 1.0))
        return math.degrees(math.acos(cos))
