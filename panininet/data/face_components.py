"""Eye and mouth regions of aligned faces, in GFP-GAN's component-landmarks format.

The local discriminators of MMRB-Net (Hu et al., Sec. III-D, eq. 12) and GFP-GAN's facial-component losses see
the left eye, the right eye and the mouth of each training face. GFP-GAN ships these regions for FFHQ as
``FFHQ_eye_mouth_landmarks_512.pth``; this module reads and writes that format, and gives the fixed boxes of the
FFHQ alignment template for aligned faces without a file.

The format (what GFP-GAN 1.3.8's ``scripts/parse_landmark.py`` writes and ``FFHQDegradationDataset`` reads):
a dict keyed by the **dataset index** of the image as 8 digits (``'00000000'`` is the first image of the sorted
list / meta_info), each value a dict ``{'left_eye': [x, y, half_len], 'right_eye': [...], 'mouth': [...]}``:
the mean of the 68-point landmarks of the part (dlib / FFHQ indices 36-41, 42-47, 48-67; ``left_eye`` is the eye on
the image's left) and half the larger side of their bounding box, at least 16, all in pixels of the 512x512 face
(pixel-index coordinates: pixel ``i`` has its centre at ``i``). GFP-GAN stores the numbers as numpy float64 scalars
(its dataset does ``mean - half_len`` on the list slice, which only works through numpy broadcasting), so
:func:`save_component_landmarks` writes them the same way; :func:`load_component_landmarks` reads through
:func:`panininet.weights.checkpoint.load_checkpoint_file` (``weights_only`` with the numpy-scalar allow-list).

The boxes a dataset hands to the models are GFP-GAN's (``(x - h + 1, y - h + 1, x + h, y + h)``, eyes swapped and x
mirrored on a flip): :meth:`panininet.data.data_util.ComponentLocations.locations`, which reads files through
:func:`load_component_landmarks` and takes :func:`template_entry` for aligned data without a file.
"""
import os.path as osp

import numpy as np

COMPONENTS = ('left_eye', 'right_eye', 'mouth')

#: 68-point landmark indices of each component (dlib / iBUG 300-W order, as FFHQ's json and GFP-GAN use).
LANDMARKS68 = {'left_eye': tuple(range(36, 42)), 'right_eye': tuple(range(42, 48)), 'mouth': tuple(range(48, 68))}

#: Smallest half side, in pixels of a 512 face (GFP-GAN's parse_landmark.py).
MIN_HALF_LEN_512 = 16.0

#: Fixed components of an FFHQ-aligned 512 face ``[x, y, half_len]``: the median over the five CelebA-HQ faces of
#: ``../shared/testdata/panini_examples/GT`` (resized to 512) of what :func:`components_from_landmarks68` gives on
#: dlib's 68 points (the GFP-GAN crops of ``cropped_faces`` are kept for testing; they lie within 5 px of these
#: centres and 5 px (eyes) / 10 px (mouth) of these half sides).
TEMPLATE_COMPONENTS_512 = {
    'left_eye': (192.5, 246.2, 23.5),
    'right_eye': (319.0, 247.2, 24.0),
    'mouth': (257.0, 374.2, 60.5),
}


def components_from_landmarks68(points, min_half_len=MIN_HALF_LEN_512):
    """One face's entry from its 68 landmarks.

    Args:
        points (np.ndarray): (68, 2) landmarks (x, y) in pixels of the 512 face.
        min_half_len (float): Smallest half side. Default: 16 (GFP-GAN).

    Returns:
        dict[str, list[np.float64]]: ``{'left_eye': [x, y, half_len], 'right_eye': ..., 'mouth': ...}``.
    """
    points = np.asarray(points, dtype=np.float64)
    if points.shape != (68, 2):
        raise ValueError(f'Expected (68, 2) landmarks, got shape {points.shape}.')
    entry = {}
    for part in COMPONENTS:
        pts = points[list(LANDMARKS68[part])]
        centre = pts.mean(0)
        half = max(float((pts.max(0) - pts.min(0)).max()) / 2, float(min_half_len))
        entry[part] = [np.float64(centre[0]), np.float64(centre[1]), np.float64(half)]
    return entry


def template_entry(size=512):
    """The FFHQ template's entry (:data:`TEMPLATE_COMPONENTS_512`) for a ``size`` face, in the file's layout.

    Args:
        size (int): Side of the face the numbers refer to. Default: 512.
    """
    scale = float(size) / 512
    return {part: [np.float64(v * scale) for v in TEMPLATE_COMPONENTS_512[part]] for part in COMPONENTS}


def _check_entry(key, entry, path):
    if not isinstance(entry, dict) or any(part not in entry for part in COMPONENTS):
        raise ValueError(f'{path}: entry {key!r} must be a dict with {list(COMPONENTS)}; got '
                         f'{sorted(entry) if isinstance(entry, dict) else type(entry).__name__}.')
    out = {}
    for part in COMPONENTS:
        try:
            values = np.asarray(entry[part], dtype=np.float64).reshape(-1)
        except (TypeError, ValueError):
            values = np.empty(0)
        if values.shape != (3,) or not np.all(np.isfinite(values)) or values[2] <= 0:
            raise ValueError(f'{path}: entry {key!r} {part} must be [x_center, y_center, half_len] (finite, '
                             f'half_len > 0); got {entry[part]!r}.')
        out[part] = values
    return out


def load_component_landmarks(path):
    """Read a component-landmarks file (GFP-GAN's ``FFHQ_eye_mouth_landmarks_512.pth`` format), safely.

    Args:
        path (str): The ``.pth`` file.

    Returns:
        dict[str, dict[str, np.ndarray]]: 8-digit index -> part -> (3,) float64 ``[x, y, half_len]`` (fresh arrays:
        callers may change them without touching the file's content).

    Raises:
        FileNotFoundError: No such file.
        ValueError: Not a dict of 8-digit keys with the three parts.
    """
    from panininet.weights.checkpoint import load_checkpoint_file

    if not osp.isfile(path):
        raise FileNotFoundError(f'Component landmarks file {path!r} does not exist (make one with '
                                'scripts/make_component_landmarks.py, or use GFP-GAN\'s '
                                'FFHQ_eye_mouth_landmarks_512.pth).')
    obj = load_checkpoint_file(path)
    if not isinstance(obj, dict) or not obj:
        raise ValueError(f'{path}: expected a non-empty dict keyed by 8-digit image indices, got '
                         f'{type(obj).__name__}.')
    bad = [k for k in obj if not (isinstance(k, str) and len(k) == 8 and k.isdigit())]
    if bad:
        raise ValueError(f'{path}: keys must be 8-digit image indices such as "00000000"; got {bad[:3]}.')
    return {key: _check_entry(key, entry, path) for key, entry in obj.items()}


def save_component_landmarks(entries, path):
    """Write entries in GFP-GAN's layout (lists of numpy float64), atomically.

    Args:
        entries (dict[str, dict]): 8-digit index -> ``{'left_eye': [x, y, h], ...}``.
        path (str): Output ``.pth`` file.
    """
    from panininet.atomic import torch_save_atomic

    out = {}
    for key, entry in entries.items():
        checked = _check_entry(key, entry, path)
        out[key] = {part: [np.float64(v) for v in checked[part]] for part in COMPONENTS}
    torch_save_atomic(out, path)


def index_key(index):
    """The file's key of dataset item ``index`` (``'00000042'``)."""
    if int(index) != index or not 0 <= index < 10**8:
        raise ValueError(f'Image index must be an integer in [0, 1e8), got {index!r}.')
    return f'{int(index):08d}'


__all__ = ['COMPONENTS', 'LANDMARKS68', 'MIN_HALF_LEN_512', 'TEMPLATE_COMPONENTS_512', 'components_from_landmarks68',
           'index_key', 'load_component_landmarks', 'save_component_landmarks', 'template_entry']
