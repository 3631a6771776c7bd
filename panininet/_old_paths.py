"""The import paths of panininet 0.1.0, kept working for one release (removed in 0.3).

One table: :data:`MOVED` maps each old module to the modules that now hold its names (searched in order), and
:data:`NAMES_MOVED` maps a module that still exists to the names that left it and where they went (the module's
``__getattr__`` is :func:`old_names_getattr`). Removed outright: ``panininet.losses.ARCFACE_FILE`` (the file name is
the end of :data:`panininet.metrics.networks.ARCFACE_URL`). ``panininet/__init__.py`` installs
:class:`OldPathFinder`, so ``import panininet.restorer`` or ``from panininet.checkpoint import load_checkpoint_file``
still work and warn with a :class:`DeprecationWarning` that names the new path. Nothing here is imported until an
old path is used, and no new code imports an old path.
"""
import importlib
import importlib.abc
import importlib.util
import sys
import types
import warnings

REMOVED_IN = '0.3'

MOVED = {
    'panininet.allocator': ('panininet.platform.allocator',),
    'panininet.checkpoint': ('panininet.weights.checkpoint', 'panininet.weights.panini_checkpoint'),
    'panininet.color': ('panininet.pipeline.color',),
    'panininet.compat': ('panininet.platform.compat_basicsr',),
    'panininet.compat_gfpgan': ('panininet.platform.compat_gfpgan',),
    'panininet.export': ('panininet.platform.onnx_export',),
    'panininet.face_detection': ('panininet.pipeline.face_detection',),
    'panininet.fileio': ('panininet.atomic',),
    'panininet.gpen': ('panininet.weights.gpen_checkpoint',),
    'panininet.image_io': ('panininet.pipeline.image_io',),
    'panininet.losses': ('panininet.models.losses', 'panininet.metrics.networks'),
    'panininet.models.gan_prior': ('panininet.models.finetune_plugins',),
    'panininet.official': ('panininet.weights.official',),
    'panininet.ops': ('panininet.platform.native_ops',),
    'panininet.paste': ('panininet.pipeline.paste',),
    'panininet.probe': ('panininet.metrics.probe',),
    'panininet.restorer': ('panininet.pipeline.restorer',),
    'panininet.tracking': ('panininet.pipeline.tracking',),
    'panininet.variants': ('panininet.families.variants',),
    'panininet.video': ('panininet.pipeline.video',),
    'panininet.video_io': ('panininet.pipeline.video_io',),
}

# modules that still exist under their old name, and where the names that left them went
NAMES_MOVED = {
    'panininet.data.degradations': dict.fromkeys(
        ('PRESETS', 'TABLE4_RATES', 'TABLE4_FIXED', 'DegradationSampler', 'make_lq', 'seeded_rng'),
        'panininet.data.degradation_sampler'),
    'panininet.weights': {  # 0.1.0's panininet/weights.py, now the package
        **dict.fromkeys(('DEFAULT_WEIGHTS_DIR', 'ENV_WEIGHTS_DIR', 'FACEXLIB_RELEASES', 'REALESRGAN_X2', 'RELEASES',
                         'Release', 'WeightsNotFoundError', 'download_release', 'missing_message',
                         'resolve_model_path', 'resolve_release_file', 'sha256sum', 'verify_recorded_checksum',
                         'weights_root'), 'panininet.weights.releases'),
        'prepare_model_file': 'panininet.weights.panini_checkpoint',
    },
}


def _find(old, targets, name):
    for target in targets:
        module = importlib.import_module(target)
        if hasattr(module, name):
            return getattr(module, name)
    raise AttributeError(f'module {old!r} has no attribute {name!r} (its names moved to {", ".join(targets)})')


def _warn(old, targets, stacklevel):
    warnings.warn(f'{old} moved to {" / ".join(targets)}; the old path goes in panininet {REMOVED_IN}.',
                  DeprecationWarning, stacklevel=stacklevel)


class OldModule(types.ModuleType):
    """An old module path: every attribute is looked up in the modules that now hold it."""

    def __getattr__(self, name):
        if name.startswith('__'):
            raise AttributeError(name)
        return _find(self.__name__, MOVED[self.__name__], name)

    def __dir__(self):
        return sorted({n for t in MOVED[self.__name__] for n in dir(importlib.import_module(t))})


class OldPathFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Meta-path finder that answers the old module paths of :data:`MOVED` (and nothing else)."""

    def find_spec(self, fullname, path=None, target=None):
        return importlib.util.spec_from_loader(fullname, self) if fullname in MOVED else None

    def create_module(self, spec):
        return OldModule(spec.name)

    def exec_module(self, module):
        _warn(module.__name__, MOVED[module.__name__], stacklevel=4)


def old_names_getattr(module_name):
    """A module ``__getattr__`` that hands on the names of :data:`NAMES_MOVED` ``[module_name]`` with a warning."""
    moved = NAMES_MOVED[module_name]

    def __getattr__(name):
        if name not in moved:
            raise AttributeError(f'module {module_name!r} has no attribute {name!r}')
        _warn(f'{module_name}.{name}', (f'{moved[name]}.{name}',), stacklevel=3)
        return getattr(importlib.import_module(moved[name]), name)

    return __getattr__


def install():
    """Put :class:`OldPathFinder` first on ``sys.meta_path``, once.

    First, so that an old path always means the new module: no file of this package bears an old name any more, and
    a stale copy elsewhere (an editable install of an older checkout) must not answer instead.
    """
    if not any(isinstance(f, OldPathFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, OldPathFinder())
