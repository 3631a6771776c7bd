"""Official Panini-Net checkpoints (MMEditing GLEAN layout, MoCo) -> panininet state dicts.

Official Panini checkpoints (``panini_mfr_latest.pth``, ``panini_sr_latest.pth``) are mmcv training checkpoints
``{'meta', 'state_dict', 'optimizer'}``; the network is the ``generator.*`` part of ``state_dict`` (the rest is the
discriminator and the frozen VGG of the perceptual loss). The DRE of the MFR model was initialised from the MoCo
file ``moco_checkpoint_0199.pth.tar`` (``{'epoch', 'arch', 'state_dict', 'optimizer'}``, keys ``module.*``).

Key mapping (official key without ``generator.`` -> ours):

- ``choice_vector`` -> ``learned_v_dr``
- ``generator.injected_noise_i`` -> ``gpm.noises.noise{i}``
- ``generator.style_mapping.j.{bias,linear.weight_orig}`` -> ``gpm.style_mlp.j.{bias,weight}`` (same lr_mul rule)
- ``generator.constant_input.input`` -> ``gpm.constant_input.weight``
- ``generator.{conv1,convs.i,to_rgb1,to_rgbs.i}.*`` -> ``gpm.{style_conv1,style_convs.i,to_rgb1,to_rgbs.i}.*`` with
  ``conv.weight_orig`` -> ``modulated_conv.weight``, ``conv.style_modulation.{bias,linear.weight_orig}`` ->
  ``modulated_conv.modulation.{bias,weight}``, ``conv.blur.kernel`` -> ``modulated_conv.smooth.kernel``,
  ``noise_injector.weight`` -> ``weight``; ``activate.bias``, ``upsample.kernel`` and ``bias`` keep their names
- ``deg_encoder.*`` -> ``dre.*``
- ``encoder.0.0.*`` (RRDB feature extractor) -> ``ife.*`` (``conv_first``, ``body``, ``conv_body``)
- ``encoder.0.1.{fea_preprocess,ChannelGate,SpatialGate.spatial}`` ->
  ``ife.cbam.{fea_preprocess,channel_gate,spatial_gate}``
- ``encoder.0.n`` (n >= 2) -> ``ife.stem.{n-2}``; ``encoder.i.0`` (1 <= i < L) -> ``ife.downs.{i-1}.0``
- ``encoder.L.0`` / ``encoder.L.3`` -> ``lce.conv`` / ``lce.fc`` (L = number of fused levels, 5)
- ``AFS_maskGen.mapping.*`` -> ``dafi.mapping.*``
- ``fusion_out.k`` (used at resolution 4 * 2^k) -> ``ife.h_convs.k``

Equalised-lr weights are stored unscaled by both codes (``weight_orig`` vs BasicSR's ``weight``; both multiply by
``sqrt(1 / fan_in) * lr_mul`` in the forward), so values are copied unchanged.
"""
import re
from collections import OrderedDict

from panininet.weights.checkpoint import strip_prefix

OFFICIAL_GENERATOR_PREFIX = 'generator.'
MOCO_QUERY_PREFIX = 'module.encoder_q.'

# (official suffix inside a StyleGAN layer, our suffix)
_STYLE_LAYER_RULES = [
    ('conv.weight_orig', 'modulated_conv.weight'),
    ('conv.style_modulation.bias', 'modulated_conv.modulation.bias'),
    ('conv.style_modulation.linear.weight_orig', 'modulated_conv.modulation.weight'),
    ('conv.blur.kernel', 'modulated_conv.smooth.kernel'),
    ('noise_injector.weight', 'weight'),
    ('activate.bias', 'activate.bias'),
    ('upsample.kernel', 'upsample.kernel'),
    ('bias', 'bias'),
]


def is_official_panini_checkpoint(obj):
    """Whether ``obj`` (a loaded file) is an official MMEditing Panini checkpoint (or its bare ``state_dict``)."""
    sd = obj.get('state_dict', obj) if isinstance(obj, dict) else None
    return isinstance(sd, dict) and any(k.startswith('generator.encoder.') for k in sd)


def is_official_moco_checkpoint(obj):
    """Whether ``obj`` is an official UDRL MoCo checkpoint (``state_dict`` keys ``module.encoder_q.*``)."""
    sd = obj.get('state_dict') if isinstance(obj, dict) else None
    return isinstance(sd, dict) and any(k.startswith(MOCO_QUERY_PREFIX) for k in sd)


def _style_layer_key(rest):
    for src, dst in _STYLE_LAYER_RULES:
        if rest == src:
            return dst
    return None


def convert_generator_key(key, num_levels):
    """Our key for one official generator key (``generator.`` prefix already removed).

    Args:
        key (str): e.g. ``'generator.convs.0.conv.weight_orig'``.
        num_levels (int): Number of fused levels L (5 in the official nets; ``encoder.L`` is the LCE).

    Returns:
        str: Our state-dict key.

    Raises:
        KeyError: For a key the official Panini generator does not have.
    """
    m = re.fullmatch(r'generator\.injected_noise_(\d+)', key)
    if m:
        return f'gpm.noises.noise{m.group(1)}'
    m = re.fullmatch(r'generator\.style_mapping\.(\d+)\.(bias|linear\.weight_orig)', key)
    if m:
        return f'gpm.style_mlp.{m.group(1)}.' + ('bias' if m.group(2) == 'bias' else 'weight')
    if key == 'generator.constant_input.input':
        return 'gpm.constant_input.weight'
    m = re.fullmatch(r'generator\.(conv1|convs\.\d+|to_rgb1|to_rgbs\.\d+)\.(.+)', key)
    if m:
        layer = m.group(1).replace('convs.', 'style_convs.').replace('conv1', 'style_conv1')
        rest = _style_layer_key(m.group(2))
        if rest is not None:
            return f'gpm.{layer}.{rest}'
    if key == 'choice_vector':
        return 'learned_v_dr'
    if key.startswith('deg_encoder.'):
        return 'dre.' + key[len('deg_encoder.'):]
    if key.startswith('encoder.0.0.'):
        return 'ife.' + key[len('encoder.0.0.'):]
    m = re.fullmatch(r'encoder\.0\.1\.(fea_preprocess|ChannelGate|SpatialGate\.spatial)\.(.+)', key)
    if m:
        part = {'fea_preprocess': 'fea_preprocess', 'ChannelGate': 'channel_gate',
                'SpatialGate.spatial': 'spatial_gate'}[m.group(1)]
        return f'ife.cbam.{part}.{m.group(2)}'
    m = re.fullmatch(r'encoder\.(\d+)\.(\d+)\.(weight|bias)', key)
    if m:
        block, idx, leaf = int(m.group(1)), int(m.group(2)), m.group(3)
        if block == 0 and idx >= 2:
            return f'ife.stem.{idx - 2}.{leaf}'
        if 1 <= block < num_levels and idx == 0:
            return f'ife.downs.{block - 1}.0.{leaf}'
        if block == num_levels and idx in (0, 3):
            return f'lce.{"conv" if idx == 0 else "fc"}.{leaf}'
    m = re.fullmatch(r'AFS_maskGen\.mapping\.(\d+)\.(weight|bias)', key)
    if m:
        return f'dafi.mapping.{m.group(1)}.{m.group(2)}'
    m = re.fullmatch(r'fusion_out\.(\d+)\.(weight|bias)', key)
    if m:
        return f'ife.h_convs.{m.group(1)}.{m.group(2)}'
    raise KeyError(f'unexpected key in an official Panini generator: {key!r}')


def _generator_entries(state_dict):
    out = strip_prefix(state_dict, OFFICIAL_GENERATOR_PREFIX, only=True)
    if not out:
        raise ValueError('no "generator.*" entries: not an official Panini checkpoint')
    return out


def infer_arch_opt(gen_sd):
    """PaniniNet keyword arguments that reproduce an official generator, read from its shapes.

    Args:
        gen_sd (dict): Official generator entries, ``generator.`` prefix removed.

    Returns:
        dict: e.g. ``{'in_size': 512, 'out_size': 1024, 'condition': 'dre', 'rrdb_channels': 8, ...}``.
    """
    num_levels = max(int(m.group(1)) for k in gen_sd for m in [re.match(r'encoder\.(\d+)\.', k)] if m)
    stem_convs = sorted({int(m.group(1)) for k in gen_sd for m in [re.fullmatch(r'encoder\.0\.(\d+)\.weight', k)] if m})
    n_down = len(stem_convs) - 1
    top_res = 4 * 2**(num_levels - 1)
    num_style_feat = gen_sd['generator.conv1.conv.style_modulation.linear.weight_orig'].shape[1]
    num_latent = gen_sd[f'encoder.{num_levels}.3.weight'].shape[0] // num_style_feat
    out_size = 2**((num_latent + 2) // 2)
    rrdb_channels = gen_sd['encoder.0.0.conv_first.weight'].shape[0]
    num_rrdbs = len({k.split('.')[4] for k in gen_sd if k.startswith('encoder.0.0.body.')})
    opt = {
        'in_size': top_res * 2**n_down,
        'out_size': out_size,
        'num_style_feat': num_style_feat,
        'rrdb_channels': rrdb_channels,
        'num_rrdbs': num_rrdbs,
        'rrdb_growth': gen_sd['encoder.0.0.body.0.rdb1.conv1.weight'].shape[0],
        'cbam_reduction': rrdb_channels // gen_sd['encoder.0.1.ChannelGate.mlp.1.weight'].shape[0],
        'condition': 'learned' if 'choice_vector' in gen_sd else 'dre',
        'fusion': 'dafi',
    }
    narrow = gen_sd['generator.constant_input.input'].shape[1] / 512
    if out_size >= 128:
        opt['channel_multiplier'] = round(gen_sd['generator.to_rgbs.4.conv.weight_orig'].shape[2] / (128 * narrow))
    if narrow != 1:
        opt['narrow'] = narrow
    cond_dim = gen_sd['AFS_maskGen.mapping.0.weight'].shape[1]  # length of v_DR = 4 * dre_num_feat
    if 'deg_encoder.E.0.weight' in gen_sd or cond_dim != 256:
        opt['dre_num_feat'] = cond_dim // 4
    return opt


def convert_official_state_dict(state_dict):
    """Official GLEAN ``state_dict`` -> (our PaniniNet state dict, PaniniNet kwargs).

    Args:
        state_dict (dict): ``checkpoint['state_dict']`` of an official file (keys ``generator.*``,
            ``discriminator.*``, ``perceptual_loss.*``; only ``generator.*`` is used).

    Returns:
        tuple[OrderedDict, dict]: state dict for ``PaniniNet(**arch_opt)`` and ``arch_opt``.
    """
    gen_sd = _generator_entries(state_dict)
    num_levels = max(int(m.group(1)) for k in gen_sd for m in [re.match(r'encoder\.(\d+)\.', k)] if m)
    out = OrderedDict()
    for k, v in gen_sd.items():
        out[convert_generator_key(k, num_levels)] = v
    return out, infer_arch_opt(gen_sd)


def convert_official_checkpoint(ckpt):
    """Loaded official Panini file (``{'meta', 'state_dict', 'optimizer'}`` or a bare state dict) -> (sd, arch_opt)."""
    return convert_official_state_dict(ckpt.get('state_dict', ckpt))


def moco_to_dre_state(moco_ckpt, target_state):
    """DRE weights from an official MoCo checkpoint by the official copy rule.

    ``Panini_MFR.__init__`` walks the MoCo keys from index 2 (after ``queue`` and ``queue_ptr``) and the DRE
    state dict in order, copying while shapes match. The official code silently keeps random weights on a
    mismatch; here a mismatch is an error.

    Args:
        moco_ckpt (dict): The loaded ``moco_checkpoint_*.pth.tar`` (or its ``state_dict``).
        target_state (dict): ``DegradationEncoder().state_dict()`` (gives the order and shapes).

    Returns:
        OrderedDict: DegradationEncoder state dict (``E.*``, ``mlp.*``).
    """
    sd = moco_ckpt.get('state_dict', moco_ckpt)
    keys = list(sd)
    out, i = OrderedDict(), 2
    for k, v in target_state.items():
        if i < len(keys) and tuple(sd[keys[i]].shape) == tuple(v.shape):
            out[k] = sd[keys[i]]
            i += 1
        else:
            got = keys[i] if i < len(keys) else 'end of file'
            raise ValueError(f'MoCo checkpoint does not fit the DRE: {k} {tuple(v.shape)} vs {got}; '
                             'check dre_num_feat.')
    return out
