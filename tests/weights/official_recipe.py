"""The deterministic weight recipe of the official reference (``official_reference/README.md`` section 4).

Test-only material: the official-equivalence tests, ``test_ops``'s GPU check and ``benchmarks/bench_half.py`` build
official-layout weights from the reference manifests with it (nothing is downloaded). Benchmarks import it with
``tests/`` on ``sys.path``.
"""
import math
import zlib
from collections import OrderedDict

import torch

from panininet.weights.official import OFFICIAL_GENERATOR_PREFIX

K4 = (torch.outer(torch.tensor([1., 3., 3., 1.]), torch.tensor([1., 3., 3., 1.])) / 16).float()


def recipe_tensor(key, shape, keyset):
    """The reference recipe value of one ``generator.*`` entry (README section 4), float32 (int64 for counters).

    Args:
        key (str): Full official key, with the ``generator.`` prefix.
        shape (list[int]): Its shape.
        keyset (set[str]): All ``generator.*`` keys of the manifest.

    Returns:
        Tensor: The value.
    """
    base, leaf = key.rsplit('.', 1)
    if leaf == 'kernel':
        return K4.clone()
    if leaf == 'num_batches_tracked':
        return torch.tensor(0, dtype=torch.int64)
    g = torch.Generator()
    g.manual_seed(zlib.crc32(key.encode('utf-8')))
    r = torch.randn(shape, generator=g, dtype=torch.float32)
    fan_in = math.prod(shape[1:])
    if leaf == 'running_mean':
        return r * 0.1
    if leaf == 'running_var':
        return r.abs() * 0.1 + 1.0
    if leaf in ('weight', 'bias') and base + '.running_var' in keyset:
        return (r * 0.1 + 1.0) if leaf == 'weight' else r * 0.1
    if leaf.startswith('injected_noise_'):
        return r
    if leaf == 'weight_orig':
        return r * 0.3 if '.to_rgb' in key else r
    if key.endswith('.style_modulation.bias'):
        return r * 0.1 + 1.0
    if key.endswith('.noise_injector.weight'):
        return r * 0.1
    if key.endswith('.constant_input.input') or leaf == 'choice_vector':
        return r
    if key.endswith('.conv_body.weight'):
        prefix = key[:-len('conv_body.weight')] + 'body.'
        n_blocks = sum(1 for k in keyset if k.startswith(prefix) and k.endswith('.rdb1.conv1.weight'))
        return r * (math.sqrt(2) / math.sqrt(fan_in) * 1.2**(-n_blocks))
    if leaf == 'weight' and ('.ChannelGate.mlp.' in key or '.SpatialGate.spatial.conv.' in key):
        return r * (math.sqrt(2) / math.sqrt(fan_in) * 0.2)
    if leaf == 'weight' and len(shape) >= 2:
        return r * (math.sqrt(2) / math.sqrt(fan_in))
    if leaf == 'bias':
        return r * 0.1
    raise ValueError(f'recipe: no rule for {key} {shape}')


def make_recipe_state_dict(manifest):
    """The official-layout ``generator.*`` state dict of the reference recipe, in manifest order.

    Args:
        manifest (dict): ``manifest_panini_{mfr,sr}.json`` loaded with ``json``.

    Returns:
        OrderedDict: ``{'generator.<key>': tensor}``.
    """
    entries = [e for e in manifest['entries'] if e['key'].startswith(OFFICIAL_GENERATOR_PREFIX)]
    keyset = {e['key'] for e in entries}
    return OrderedDict((e['key'], recipe_tensor(e['key'], e['shape'], keyset)) for e in entries)
