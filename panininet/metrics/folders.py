"""Folders of restorations -> a results table: pixel metrics, pairing by file name, the evaluation loop, markdown
and JSON output. See :mod:`panininet.metrics` for what each metric is.
"""
import math
import os
import os.path as osp
import time

import numpy as np
from basicsr.metrics.niqe import calculate_niqe
from basicsr.metrics.psnr_ssim import calculate_psnr, calculate_ssim

from panininet.metrics.networks import FIDMetric
from panininet.pipeline import image_io
from panininet.pipeline.image_io import IMAGE_EXTENSIONS, is_image_file, resize_square, to_bgr8, write_image

# Column order of every results table (a golden header in the tests pins it).
METRIC_KEYS = ('psnr', 'ssim', 'lpips', 'fid', 'niqe', 'deg')
METRIC_TITLES = {
    'psnr': 'PSNR↑', 'ssim': 'SSIM↑', 'lpips': 'LPIPS↓', 'fid': 'FID↓', 'niqe': 'NIQE↓', 'deg': 'Deg.↓'
}
METRIC_FORMATS = {'psnr': '{:.2f}', 'ssim': '{:.4f}', 'lpips': '{:.4f}', 'fid': '{:.2f}', 'niqe': '{:.3f}',
                  'deg': '{:.2f}'}


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
# images and folders
# ---------------------------------------------------------------------------------------------------------------------
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
        if not is_image_file(name):
            continue
        if stem in out:
            raise ValueError(f'{folder} holds two images named {stem!r} ({osp.basename(out[stem])}, {name}); '
                             'images are paired by name, keep one.')
        out[stem] = osp.join(folder, name)
    if not out:
        raise FileNotFoundError(f'{folder} holds no image ({", ".join(IMAGE_EXTENSIONS)}).')
    return out


def read_image(path, size=None):
    """Read an image as uint8 BGR (h, w, 3), gray and RGBA converted; optionally resized to ``size`` x ``size``.

    Read by :func:`panininet.pipeline.image_io.read_image` (EXIF orientation applied) and
    :func:`~panininet.pipeline.image_io.to_bgr8`.

    Args:
        path (str): Image file.
        size (int | None): Square output size (area interpolation when shrinking, bicubic when enlarging).

    Returns:
        ndarray: uint8, (h, w, 3), BGR.

    Raises:
        ValueError: Not a readable image.
    """
    img = image_io.read_image(path)
    if img is None:
        raise ValueError(f'Could not read image {path} (not an image, or unsupported format).')
    img = to_bgr8(img)
    return img if size is None else resize_square(img, size)


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
    """Write a uint8 BGR image atomically, format from ``path``'s extension
    (:func:`panininet.pipeline.image_io.write_image`)."""
    write_image(img, path)
