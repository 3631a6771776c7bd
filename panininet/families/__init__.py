"""Restoration families keyed by the ``-v`` names: build from a weights file, in/out size, one batched call.

======================  ===================================================  ==============================
name                    network                                              module
======================  ===================================================  ==============================
``mfr``, ``sr16``       PaniniNet (512 -> 1024, 64 -> 1024)                  ``panini_family.py``
``gfpgan1.3``/``1.4``   GFPGANv1Clean (512 -> 512; needs the gfpgan package)  ``gfpgan_family.py``
                        or the GFP-GAN arch a trained file records
``gpen512``             GPENNet: GPEN-BFR-512 (512 -> 512)                   ``gpen_family.py``
``mmrb``                MMRBNet (512 -> 512; a trained file, no release)     ``mmrb_family.py``
======================  ===================================================  ==============================

Backends (``build_family(..., backend=)``, ``--backend``): 'pytorch' (the family's network, default) or
'onnxruntime' (an ``.onnx`` file written by ``scripts/export_onnx.py``, ``onnx_family.py``, needs the ``[onnx]``
extra).

API (see :mod:`panininet.families.base`): ``build_family(name, model_path, device, precision=..., weights_dir=...)``
returns a :class:`RestorationFamily` with ``in_size``, ``out_size``, ``supports_weight`` and the call
``family(faces, weight)``: (b, 3, in_size, in_size) RGB in [-1, 1] -> (b, 3, out_size, out_size) in [-1, 1].

Adding a family is one file: ``panininet/families/<name>_family.py`` holding one ``RestorationFamily`` subclass
decorated with ``@register_family('<-v name>', ...)`` (``from_file``, ``with_random_weights``, ``forward``; set
``in_size``/``out_size``/``supports_weight``). Every ``*_family.py`` here is imported below, as BasicSR imports
every ``*_arch.py``, so the new name appears in ``-v``'s choices, :func:`family_names` and ``VERSIONS``; give its
release file in :data:`panininet.weights.releases.RELEASES` when it has one.
"""
import importlib
import os.path as osp

from basicsr.utils import scandir

from panininet.families.base import (
    BACKENDS,
    DEFAULT_SIZE,
    FAMILIES,
    PRECISIONS,
    RestorationFamily,
    autocast,
    build_family,
    check_precision,
    family_class,
    family_names,
    load_state_dict_strict,
    random_family,
    register_backend,
    register_family,
    select_device,
    validate_weight,
)

# PaniniNet's families first (the -v choices list them first), then every other *_family.py by file name
_folder = osp.dirname(osp.abspath(__file__))
_names = ['panini_family'] + sorted(osp.splitext(osp.basename(v))[0] for v in scandir(_folder)
                                    if v.endswith('_family.py') and v != 'panini_family.py')
_modules = [importlib.import_module(f'panininet.families.{name}') for name in _names]

__all__ = ['BACKENDS', 'DEFAULT_SIZE', 'FAMILIES', 'PRECISIONS', 'RestorationFamily', 'autocast', 'build_family',
           'check_precision', 'family_class', 'family_names', 'load_state_dict_strict', 'random_family',
           'register_backend', 'register_family', 'select_device', 'validate_weight']
