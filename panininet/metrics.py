"""Face-restoration metrics as the papers report them: PSNR, SSIM, LPIPS, FID, NIQE and the identity angle ("Deg.").

Every metric is an established implementation, wrapped so that its network weights come from a path we choose:

- PSNR, SSIM, NIQE: ``basicsr.metrics`` (NIQE ships its pristine parameters in the basicsr wheel). Images are
  uint8 BGR arrays (h, w, 3) as OpenCV reads them, RGB channels (not Y) and no border crop unless asked, as in
  GFP-GAN's tables. PSNR of identical images is ``inf`` (basicsr's convention; kept, and written to JSON as the
  string ``"inf"``).
- LPIPS: the ``lpips`` package (v0.1 linear layers ship in its wheel). Its trunk (VGG16 by default, as BasicSR's
  ``calculate_lpips.py``; AlexNet or SqueezeNet on request) is torchvision's ImageNet checkpoint, which ``lpips``
  would download on construction: here it is read from ``trunk_path`` or torch hub's cache instead.
- FID: ``basicsr.metrics.fid`` (the pytorch-fid port of the TF Inception, pool features, 2048-d, inputs resized to
  299 bilinearly). Weights ``pt_inception-2015-12-05-6726825d.pth`` come from ``weights_path`` or torch hub's cache.
  The reference statistics are computed from the GT images given, NOT from FFHQ: values are comparable only between
  methods evaluated on the same GT set, and FID of a few hundred images is strongly biased upwards.
- Identity angle: the ArcFace IR-SE50 network of facexlib (``recognition_arcface_ir_se50.pth``). An FFHQ-aligned
  face is cropped to the ArcFace field of view (the crop pSp's identity loss uses) and resized to 112x112; the
  metric is the angle in degrees between the normalised embeddings of the restored and GT faces,
  ``arccos(<e1, e2>) * 180 / pi`` (GFP-GAN's "Deg."; GFP-GAN used its own ResNet-18 ArcFace, so absolute values
  differ from its tables).

Weights: :func:`resolve_weights` uses an explicit path, else the file in torch hub's checkpoint folder
(``$TORCH_HOME/hub/checkpoints``), else downloads it there. Offline, or with ``download=False``, a missing file
raises :class:`FileNotFoundError` naming the file, the URL and how to pass it. Nothing here downloads in the tests:
they inject tiny networks through the ``model=`` / ``feature_net=`` arguments.
"""
import math
import os
import os.path as osp
import time

import cv2
import numpy as np
import torch
from basicsr.metrics.fid import calculate_fid
from basicsr.metrics.niqe import calculate_niqe
from basicsr.metrics.psnr_ssim import calculate_psnr, calculate_ssim
from basicsr.utils import get_root_logger
from torch.nn import functional as F

from panininet.fileio import write_bytes_atomic

IMG_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.webp')

FID_INCEPTION_URL = ('https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/'
                     'pt_inception-2015-12-05-6726825d.pth')
ARCFACE_URL = 'https://github.com/xinntao/facexlib/releases/download/v0.1.0/recognition_arcface_ir_se50.pth'
LPIPS_TRUNK_URLS = {
    'alex': 'https://download.pytorch.org/models/alexnet-owt-7be5be79.pth',
    'vgg': 'https://download.pytorch.org/models/vgg16-397923af.pth',
    'squeeze': 'https://download.pytorch.org/models/squeezenet1_1-b8a52dc0.pth',
}

# Column order of every results table (the golden header of tests/test_metrics.py).
METRIC_KEYS = ('psnr', 'ssim', 'lpips', 'fid', 'niqe', 'deg')
METRIC_TITLES = {
    'psnr': 'PSNR↑', 'ssim': 'SSIM↑', 'lpips': 'LPIPS↓', 'fid': 'FID↓', 'niqe': 'NIQE↓', 'deg': 'Deg.↓'
}
METRIC_FORMATS = {'psnr': '{:.2f}', 'ssim': '{:.4f}', 'lpips': '{:.4f}', 'fid': '{:.2f}', 'niqe': '{:.3f}',
                  'deg': '{:.2f}'}


# ---------------------------------------------------------------------------------------------------------------------
# weights and images
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
    try:
        state = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as err:
        raise RuntimeError(f'Could not read {what} weights from {path}: {err}') from err
    if isinstance(state, dict) and 'state_dict' in state and isinstance(state['state_dict'], dict):
        state = state['state_dict']
    return state


def list_images(folder):
    """Image files of a folder, sorted by name.

    Args:
        folder (str): A folder.

    Returns:
        dict[str, str]: stem (file name without extension) -> path.

    Raises:
        FileNotFoundError: The folder does not exist or holds no image.
        ValueError: Two files share a stem (e.g. ``1.png`` and ``1.jpg``).
    """
    if not osp.isdir(folder):
        raise FileNotFoundError(f'Image folder {folder} does not exist.')
    out = {}
    for name in sorted(os.listdir(folder)):
        stem, ext = osp.splitext(name)
        if ext.lower() not in IMG_EXTENSIONS:
            continue
        if stem in out:
            raise ValueError(f'{folder} holds two images named {stem!r} ({osp.basename(out[stem])}, {name}); '
                             'images are paired by name, keep one.')
        out[stem] = osp.join(folder, name)
    if not out:
        raise FileNotFoundError(f'{folder} holds no image ({", ".join(IMG_EXTENSIONS)}).')
    return out


def read_image(path, size=None):
    """Read an image as uint8 BGR (h, w, 3), gray and RGBA converted; optionally resized to ``size`` x ``size``.

    Args:
        path (str): Image file.
        size (int | None): Square output size (area interpolation when shrinking, bicubic when enlarging).

    Returns:
        ndarray: uint8, (h, w, 3), BGR.
    """
    img = cv2.imread(path, cv2.IMREAD_COLOR)
    if img is None:
        raise ValueError(f'Could not read image {path} (not an image, or unsupported format).')
    if size is not None and img.shape[:2] != (size, size):
        interp = cv2.INTER_AREA if img.shape[0] > size else cv2.INTER_CUBIC
        img = cv2.resize(img, (size, size), interpolation=interp)
    return img


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
# pixel and no-reference metrics (basicsr)
# ---------------------------------------------------------------------------------------------------------------------
def psnr(img, gt, crop_border=0, test_y_channel=False):
    """PSNR in dB of two uint8 (h, w, 3) images (BGR), peak 255. Identical images give ``inf``."""
    return float(calculate_psnr(img, gt, crop_border, input_order='HWC', test_y_channel=test_y_channel))


def ssim(img, gt, crop_border=0, test_y_channel=False):
    """SSIM (11x11 Gaussian window, sigma 1.5; mean over channels) of two uint8 (h, w, 3) images."""
    return float(calculate_ssim(img, gt, crop_border, input_order='HWC', test_y_channel=test_y_channel))


def niqe(img, crop_border=0):
    """NIQE (no reference; lower is better) of a uint8 BGR (h, w, 3) image, on its Y channel (MATLAB-compatible).

    Needs at least 2 x 2 blocks of 96 pixels after the border crop (basicsr's covariance is undefined otherwise).
    """
    h, w = img.shape[0] - 2 * crop_border, img.shape[1] - 2 * crop_border
    if min(h, w) < 192:
        raise ValueError(f'NIQE needs images of at least 192x192 pixels (96-pixel blocks), got {w}x{h}; '
                         'evaluate at a larger --size or drop niqe from --metrics.')
    return float(calculate_niqe(img, crop_border, input_order='HWC', convert_to='y'))


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
        if model is None:
            import lpips
            if net not in LPIPS_TRUNK_URLS:
                raise ValueError(f'LPIPS net must be one of {sorted(LPIPS_TRUNK_URLS)}, got {net!r}.')
            path = resolve_weights(trunk_path, LPIPS_TRUNK_URLS[net], f'LPIPS {net} trunk', '--lpips-trunk', download)
            # pretrained=True: LPIPS's linear heads, shipped inside the lpips wheel (no download);
            # pnet_rand=True: the trunk is NOT fetched from torchvision, it is loaded from `path` below
            model = lpips.LPIPS(net=net, pretrained=True, pnet_rand=True, verbose=False)
            load_lpips_trunk(model, path)
        self.model = model.to(self.device).eval()

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
        if feature_net is None:
            path = resolve_weights(weights_path, FID_INCEPTION_URL, 'FID Inception', '--inception', download)
            feature_net = build_fid_inception(path)
        self.net = feature_net.to(self.device).eval()
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


def build_arcface(weights_path):
    """facexlib's ArcFace IR-SE50 (input (b, 3, 112, 112) RGB in [-1, 1] -> (b, 512) unit vectors) on the CPU."""
    from facexlib.recognition.arcface_arch import Backbone

    net = Backbone(num_layers=50, drop_ratio=0.6, mode='ir_se')
    net.load_state_dict(_load_state_dict(weights_path, 'ArcFace'), strict=True)
    return net.eval()


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
        if model is None:
            path = resolve_weights(weights_path, ARCFACE_URL, 'ArcFace', '--arcface', download)
            model = build_arcface(path)
        self.model = model.to(self.device).eval()
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


# ---------------------------------------------------------------------------------------------------------------------
# folders -> table
# ---------------------------------------------------------------------------------------------------------------------
def pair_folders(gt_dir, restored_dirs):
    """Pair GT and restored images by file stem.

    Args:
        gt_dir (str): GT folder.
        restored_dirs (dict[str, str]): method name -> folder of its restorations.

    Returns:
        tuple[list[str], dict[str, str], dict[str, dict[str, str]]]: the stems every method restored (sorted),
        GT paths by stem, and restored paths by method and stem.

    Raises:
        ValueError: A restored image has no GT, or the methods share no image.
    """
    gt = list_images(gt_dir)
    restored = {name: list_images(folder) for name, folder in restored_dirs.items()}
    common = set(gt)
    for name, files in restored.items():
        orphans = sorted(set(files) - set(gt))
        if orphans:
            raise ValueError(f'{name}: {len(orphans)} image(s) in {restored_dirs[name]} have no GT of the same name '
                             f'in {gt_dir} (e.g. {orphans[0]!r}); images are paired by file name without extension.')
        common &= set(files)
    if not common:
        raise ValueError(f'No image is restored by every method ({", ".join(restored_dirs)}).')
    return sorted(common), gt, restored


def evaluate_folders(gt_dir, restored_dirs, metrics=METRIC_KEYS, size=None, lpips_metric=None, fid_metric=None,
                     identity_metric=None, crop_border=0, test_y_channel=False, progress=None):
    """Compute the metrics of each method's restorations against the GT folder.

    Args:
        gt_dir (str): GT folder.
        restored_dirs (dict[str, str]): method name -> folder (paired with GT by file stem).
        metrics (Sequence[str]): Subset of :data:`METRIC_KEYS`.
        size (int | None): Resize GT and restorations to ``size`` x ``size`` first. Without it, sizes must match.
        lpips_metric (LPIPSMetric | None): Needed when 'lpips' is asked for. Same for ``fid_metric`` ('fid') and
            ``identity_metric`` ('deg').
        crop_border (int): Border excluded from PSNR/SSIM/NIQE. Default: 0.
        test_y_channel (bool): PSNR/SSIM on the Y channel. Default: False (RGB).
        progress (callable | None): Called with a message per image.

    Returns:
        dict: {'gt_dir', 'n', 'images', 'size', 'metrics', 'methods': {name: {'dir', metric: mean,
        'per_image': {stem: {metric: value}}, 'runtime_s': {metric: seconds}}}}. FID's reference statistics are
        those of the same n GT images.
    """
    unknown = [m for m in metrics if m not in METRIC_KEYS]
    if unknown:
        raise ValueError(f'Unknown metric(s) {unknown}; choose from {list(METRIC_KEYS)}.')
    needed = {'lpips': lpips_metric, 'fid': fid_metric, 'deg': identity_metric}
    for key, obj in needed.items():
        if key in metrics and obj is None:
            raise ValueError(f'Metric {key!r} asked for but no {key} network given.')
    stems, gt_paths, restored = pair_folders(gt_dir, restored_dirs)
    if 'fid' in metrics and len(stems) < 2:
        raise ValueError(f'FID needs at least 2 images, the folders share {len(stems)}; drop fid (--metrics).')
    gts = {s: read_image(gt_paths[s], size) for s in stems}
    result = {'gt_dir': gt_dir, 'n': len(stems), 'images': stems, 'size': size, 'metrics': list(metrics),
              'methods': {}}
    gt_feats = None
    gt_fid_time = 0.0
    if 'fid' in metrics:
        t0 = time.perf_counter()
        gt_feats = fid_metric.features(gts[s] for s in stems)
        gt_fid_time = time.perf_counter() - t0

    for name, files in restored.items():
        per_image = {s: {} for s in stems}
        runtime = {m: 0.0 for m in metrics}
        imgs = {}
        for s in stems:
            img = read_image(files[s], size)
            if img.shape != gts[s].shape:
                raise ValueError(f'{name}: {files[s]} is {img.shape[1]}x{img.shape[0]} but its GT {gt_paths[s]} is '
                                 f'{gts[s].shape[1]}x{gts[s].shape[0]}; pass a common --size.')
            imgs[s] = img
            for key, fn in (('psnr', lambda a, b: psnr(a, b, crop_border, test_y_channel)),
                            ('ssim', lambda a, b: ssim(a, b, crop_border, test_y_channel)),
                            ('lpips', lpips_metric), ('deg', identity_metric),
                            ('niqe', lambda a, _b: niqe(a, crop_border))):
                if key in metrics:
                    t0 = time.perf_counter()
                    per_image[s][key] = fn(img, gts[s])
                    runtime[key] += time.perf_counter() - t0
            if progress is not None:
                progress(f'{name}: {s}')
        entry = {'dir': restored_dirs[name]}
        for key in metrics:
            if key == 'fid':
                t0 = time.perf_counter()
                entry['fid'] = FIDMetric.distance(fid_metric.features(imgs[s] for s in stems), gt_feats)
                runtime['fid'] += time.perf_counter() - t0 + gt_fid_time / max(len(restored), 1)
            else:
                entry[key] = float(np.mean([per_image[s][key] for s in stems]))
        entry['per_image'] = per_image
        entry['runtime_s'] = runtime
        result['methods'][name] = entry
    return result


def _fmt(key, value):
    if value is None:
        return '-'
    if isinstance(value, float) and math.isinf(value):
        return 'inf'
    return METRIC_FORMATS[key].format(value)


def table_header(metrics=METRIC_KEYS):
    """First two lines of the markdown results table."""
    titles = ['method', 'n'] + [METRIC_TITLES[m] for m in metrics]
    return '| ' + ' | '.join(titles) + ' |\n|' + '|'.join(['---'] * len(titles)) + '|'


def results_to_markdown(result):
    """Markdown table of :func:`evaluate_folders`' result: one row per method, columns in :data:`METRIC_KEYS`
    order (only those computed)."""
    metrics = [m for m in METRIC_KEYS if m in result['metrics']]
    lines = [table_header(metrics)]
    for name, entry in result['methods'].items():
        cells = [name, str(result['n'])] + [_fmt(m, entry.get(m)) for m in metrics]
        lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines) + '\n'


def json_safe(obj):
    """Replace non-finite floats by strings ('inf', '-inf', 'nan') so that the output is strict JSON."""
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return str(obj)
    return obj


def write_image_atomic(path, img):
    """Write a uint8 BGR image (format from ``path``'s extension) atomically."""
    ok, buf = cv2.imencode(osp.splitext(path)[1], img)
    if not ok:
        raise OSError(f'Could not encode image {path}.')
    write_bytes_atomic(path, buf.tobytes())

