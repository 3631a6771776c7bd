"""GFPGAN's released models (``gfpgan1.3``, ``gfpgan1.4``: GFPGANv1Clean, 512 -> 512), through the optional gfpgan
package, so that both methods run on the same photos through the same pipeline.

GFPGANv1Clean takes a ``weight`` argument and ignores it; it is passed as GFPGANer passes it, and
``supports_weight`` is False.
"""
from panininet.checkpoint import load_checkpoint_file, pick_params
from panininet.families.base import RestorationFamily, load_state_dict_strict, register_family

# GFPGANer's arguments for v1.3 / v1.4 (arch='clean', channel_multiplier=2); the shapes of a file refine them
RELEASED_ARCH = dict(out_size=512, num_style_feat=512, channel_multiplier=2, decoder_load_path=None,
                     fix_decoder=False, num_mlp=8, input_is_latent=True, different_w=True, narrow=1, sft_half=True)


def _gfpgan_class(name):
    try:
        from gfpgan.archs.gfpganv1_clean_arch import GFPGANv1Clean
    except ImportError as err:
        raise ImportError(f'-v {name} needs the gfpgan package: pip install "panininet[gfpgan]" '
                          '(or pip install gfpgan)') from err
    return GFPGANv1Clean


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
        """A GFPGAN release file (``params_ema``, else ``params``), its architecture read off the shapes."""
        net_cls = _gfpgan_class(name)
        state_dict = pick_params(load_checkpoint_file(path), path)
        net = net_cls(**gfpgan_arch_from_state(state_dict, path))
        load_state_dict_strict(net, state_dict, path, name)
        return cls(net, device, precision)

    @classmethod
    def with_random_weights(cls, name, device=None, precision='fp32', **arch):
        return cls(_gfpgan_class(name)(**dict(RELEASED_ARCH, **arch)), device, precision)

    def forward(self, faces, weight):
        return self.net(faces, return_rgb=False, weight=0.5 if weight is None else weight)[0]
