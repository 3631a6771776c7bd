"""panininet/_old_paths.py: 0.1.0's import paths still work for one release, warn, and nothing of ours uses them."""
import ast
import importlib
import os
import os.path as osp
import sys

import pytest
from helpers import REPO_ROOT

from panininet import _old_paths

# one name each old module had, to check it resolves to the very object the new module holds
SAMPLE = {
    'panininet.allocator': 'reuse_freed_memory', 'panininet.checkpoint': 'load_checkpoint_file',
    'panininet.color': 'color_fix', 'panininet.compat': 'apply', 'panininet.compat_gfpgan': 'patch_vgg_weights',
    'panininet.export': 'export_onnx', 'panininet.face_detection': 'build_face_helper',
    'panininet.fileio': 'atomic_path', 'panininet.gpen': 'gpen_generator_to_prior', 'panininet.image_io': 'read_image',
    'panininet.losses': 'ArcFaceIdentityLoss', 'panininet.models.gan_prior': 'GANPriorPlugins',
    'panininet.official': 'convert_official_state_dict', 'panininet.ops': 'plain_ops', 'panininet.paste': 'paste_face',
    'panininet.probe': 'linear_probe', 'panininet.restorer': 'PaniniRestorer', 'panininet.tracking': 'FaceTracker',
    'panininet.variants': 'variant_kwargs', 'panininet.video': 'restore_video', 'panininet.video_io': 'import_av',
}


def test_every_old_module_is_sampled():
    assert sorted(SAMPLE) == sorted(_old_paths.MOVED)


@pytest.mark.parametrize('old', sorted(_old_paths.MOVED))
def test_old_module_path_warns_and_hands_on_the_same_object(old):
    sys.modules.pop(old, None)
    with pytest.warns(DeprecationWarning, match=rf'{old} moved to {_old_paths.MOVED[old][0]}'):
        module = importlib.import_module(old)
    name = SAMPLE[old]
    new = next(importlib.import_module(t) for t in _old_paths.MOVED[old] if hasattr(importlib.import_module(t), name))
    assert getattr(module, name) is getattr(new, name)
    assert name in dir(module)
    with pytest.raises(AttributeError, match='no attribute'):
        module.no_such_name  # noqa: B018


def test_names_of_a_split_module_come_from_each_new_home():
    sys.modules.pop('panininet.checkpoint', None)
    with pytest.warns(DeprecationWarning, match='panininet.checkpoint moved to panininet.weights.checkpoint'):
        from panininet.checkpoint import load_checkpoint_file, load_panini_weights
    from panininet.weights.checkpoint import load_checkpoint_file as reader
    from panininet.weights.panini_checkpoint import load_panini_weights as panini
    assert (load_checkpoint_file, load_panini_weights) == (reader, panini)


@pytest.mark.parametrize('module', sorted(_old_paths.NAMES_MOVED))
def test_names_that_left_a_module_that_still_exists(module):
    mod = importlib.import_module(module)
    for name, target in _old_paths.NAMES_MOVED[module].items():
        with pytest.warns(DeprecationWarning, match=rf'{module}\.{name} moved to {target}\.{name}'):
            value = getattr(mod, name)
        assert value is getattr(importlib.import_module(target), name)
    with pytest.raises(AttributeError, match='no attribute'):
        mod.no_such_name  # noqa: B018


def _python_files():
    for top in ('panininet', 'scripts', 'benchmarks', 'tests', 'inference_panini.py'):
        path = osp.join(REPO_ROOT, top)
        if path.endswith('.py'):
            yield path
        for folder, _, files in os.walk(path):
            yield from (osp.join(folder, f) for f in files if f.endswith('.py') and f != osp.basename(__file__))


def test_nothing_of_ours_imports_an_old_path():
    old = set(_old_paths.MOVED) | {f'{m}.{n}' for m, names in _old_paths.NAMES_MOVED.items() for n in names}
    found = []
    for path in _python_files():
        for node in ast.walk(ast.parse(open(path, encoding='utf-8').read())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names = [node.module] + [f'{node.module}.{a.name}' for a in node.names]
            else:
                continue
            found += [f'{osp.relpath(path, REPO_ROOT)}:{node.lineno} {n}' for n in names if n in old]
    assert not found
