"""GFPGAN's released models (``gfpgan1.3``, ``gfpgan1.4``: GFPGANv1Clean, 512 -> 512), through the optional gfpgan
package, so that both methods run on the same photos through the same pipeline.

GFPGANv1Clean takes a ``weight`` argument and ignores it (GFPGANer passes it); it is not passed here, and
``supports_weight`` is False.

A file that records its ``arch`` (``{'type': ..., **kwargs}``) builds that architecture: a user's training of
``options/train_gfpgan_v1.yml`` (``net_g_*.pth`` of ``PaniniGFPGANModel``: ``GFPGANv1`` or ``GFPGANBilinear``) and
its conversion by ``scripts/convert_gfpgan_to_clean.py`` (``GFPGANv1Clean``), at any face size. Released files
record nothing: their architecture is read off the shapes.
"""
from panininet.families.base import RestorationFamily, load_state_dict_strict, register_family
from panininet.weights.checkpoint import load_checkpoint_file, pick_params

# GFPGANer's arguments for v1.3 / v1.4 (arch='clean', channel_multiplier=2); the shapes of a file refine them
RELEASED_ARCH = dict(out_size=512, num_style_feat=512, channel_multiplier=2, decoder_load_path=None,
                     fix_decoder=False, num_mlp=8, input_is_latent=True, different_w=True, narrow=1, sft_half=True)


# GFP-GAN generators a file may record as its ``arch['type']`` (all take the same constructor arguments)
GFPGAN_TYPES = ('GFPGANv1Clean', 'GFPGANv1', 'GFPGANBilinear')


def _gfpgan_class(name, arch_type='GFPGANv1Clean'):
    try:
        import gfpgan.archs  # noqa: F401  (registers GFP-GAN's archs)
        from basicsr.utils.registry import ARCH_REGISTRY
    except ImportError as err:
        raise ImportError(f'-v {name} needs the gfpgan package: pip install "panininet[gfpgan]" '
                          '(or pip install gfpgan)') from err
    return ARCH_REGISTRY.get(arch_type)


def _recorded_arch(obj, path):
    """The ``arch`` a file records (type + kwargs), or None; refuses a type that is not a GFP-GAN generator."""
    arch = obj.get('arch') if isinstance(obj, dict) else None
    if arch is None:
        return None
    arch = dict(arch)
    if arch.get('type', 'GFPGANv1Clean') not in GFPGAN_TYPES:
        raise ValueError(f'{path} records arch type {arch.get("type")!r}, not a GFP-GAN generator '
                         f'({", ".join(GFPGAN_TYPES)}).')
    return arch


def gfpgan_arch_from_state(state_dict, path='<checkpoint>'):
    """GFPGANv1Clean's constructor arguments read off the shapes of its state dict.

    Args:
        state_dict (dict): GFPGANv1Clean weights (GFPGAN's key names).
        path (str): For error messages.

    Returns:
        dict: Keyword arguments for ``GFPGANv1Clean`` (the released ones where the shapes do not tell).

    Raises:
        ValueError: Not a GFPGANv1Clean state dict.
    """
    try:
        num_levels = sum(1 for k in state_dict if k.startswith('toRGB.') and k.endswith('.weight'))
        num_style_feat = state_dict['stylegan_decoder.style_mlp.1.weight'].shape[0]
        narrow = state_dict['stylegan_decoder.constant_input.weight'].shape[1] / 512
        unet = state_dict['condition_scale.0.0.weight'].shape[0]
        sft = state_dict['condition_scale.0.2.weight'].shape[0]
        linear_out = state_dict['final_linear.weight'].shape[0]
    except KeyError as err:
        raise ValueError(f'{path} does not hold GFPGANv1Clean weights (no {err.args[0]!r}).') from None
    arch = dict(RELEASED_ARCH, out_size=2 ** (num_levels + 2), num_style_feat=num_style_feat, narrow=narrow,
                num_mlp=sum(1 for k in state_dict if k.startswith('stylegan_decoder.style_mlp.') and
                            k.endswith('.weight')),
                different_w=linear_out != num_style_feat, sft_half=sft == unet)
    level64 = state_dict.get('stylegan_decoder.to_rgbs.3.modulated_conv.weight')  # channels at 64: 256 * cm * narrow
    if level64 is not None:
        arch['channel_multiplier'] = round(level64.shape[2] / (256 * narrow))
    return arch


@register_family('gfpgan1.3', 'gfpgan1.4')
class GFPGANFamily(RestorationFamily):
    """GFPGANv1Clean behind the family interface.

    Args:
        net (GFPGANv1Clean): The network.
        device, precision: See :class:`~panininet.families.base.RestorationFamily`.
    """

    def __init__(self, net, device=None, precision='fp32'):
        super().__init__(net, device, precision)
        if hasattr(net, 'log_size'):
            self.in_size = self.out_size = 2 ** net.log_size

    @classmethod
    def from_file(cls, name, path, device=None, precision='fp32', weights_dir=None):
        """A GFPGAN file (``params_ema``, else ``params``): the recorded ``arch``, else read off the shapes."""
        obj = load_checkpoint_file(path)
        state_dict = pick_params(obj, path)
        arch = _recorded_arch(obj, path)
        if arch is None:
            net = _gfpgan_class(name)(**gfpgan_arch_from_state(state_dict, path))
        else:
            net_cls = _gfpgan_class(name, arch.pop('type', 'GFPGANv1Clean'))
            net = net_cls(**dict(arch, decoder_load_path=None, fix_decoder=False))
        load_state_dict_strict(net, state_dict, path, name)
        return cls(net, device, precision)

    @classmethod
    def with_random_weights(cls, name, device=None, precision='fp32', **arch):
        return cls(_gfpgan_class(name)(**dict(RELEASED_ARCH, **arch)), device, precision)

    def forward(self, faces, weight):
        # GFPGANer passes its ``weight`` to GFPGANv1Clean, which ignores it (GFPGANv1 / GFPGANBilinear take none)
        return self.net(faces, return_rgb=False)[0]
