"""Panini-Net's families: ``mfr`` (512 -> 1024 restoration) and ``sr16`` (64 -> 1024 face super-resolution).

The fidelity weight reaches the network as the DAFI ``mask_bias`` (:func:`weight_to_mask_bias`).
"""
from panininet.families.base import RestorationFamily, load_state_dict_strict, register_family, validate_weight
from panininet.families.variants import variant_kwargs
from panininet.weights.panini_checkpoint import prepare_model_file

# mask_bias reached at weight 0 (most prior) and, negated, at weight 1 (most input); see weight_to_mask_bias
MASK_BIAS_RANGE = 4.0


def weight_to_mask_bias(weight):
    """Map the user's fidelity weight to PaniniNet's ``mask_bias``.

    ``weight`` 1.0 keeps the most of the input (every DAFI mask pushed toward the input features,
    ``mask_bias = -MASK_BIAS_RANGE``); 0.0 takes the most from the GAN prior (``+MASK_BIAS_RANGE``); 0.5 (GFPGAN's
    default) and None leave the network as trained (``mask_bias = 0``). Linear in between.

    Args:
        weight (float | None): In [0, 1], or None.

    Returns:
        float: mask_bias.

    Raises:
        ValueError: weight outside [0, 1].
    """
    weight = validate_weight(weight)
    if weight is None:
        return 0.0
    return MASK_BIAS_RANGE * (1.0 - 2.0 * weight)


@register_family('mfr', 'sr16')
class PaniniFamily(RestorationFamily):
    """PaniniNet (MFR or SR16) behind the family interface.

    Args:
        net (PaniniNet | torch.nn.Module): A PaniniNet, or any network with ``in_size``/``out_size`` attributes
            taking ``(x, mask_bias=...)``.
        device, precision: See :class:`~panininet.families.base.RestorationFamily`.

    The weight acts when the network fuses with DAFI (``fusion='dafi'``, or a network that does not say its
    fusion); a Cat-Conv network refuses any weight but 0.5 / None.
    """

    def __init__(self, net, device=None, precision='fp32'):
        super().__init__(net, device, precision)
        self.fusion = getattr(net, 'fusion', 'dafi')
        self.supports_weight = self.fusion == 'dafi'

    @classmethod
    def from_file(cls, name, path, device=None, precision='fp32', weights_dir=None):
        """Our weights file or an official MMEditing checkpoint (converted once, cached under ``weights_dir``).

        The file's recorded architecture (official files: derived from the shapes) completes the arguments of the
        variant ``name`` (:func:`panininet.families.variants.variant_kwargs`), which stand for a file that records none.
        """
        from panininet.archs.panini_arch import PaniniNet

        state_dict, arch = prepare_model_file(path, weights_dir)
        # everything comes from this file: no separate decoder / DRE weights
        opt = variant_kwargs(name, **(arch or {}))
        opt.update(decoder_load_path=None, dre_load_path=None)
        net = PaniniNet(**opt)
        load_state_dict_strict(net, state_dict, path, name)
        return cls(net, device, precision)

    @classmethod
    def with_random_weights(cls, name, device=None, precision='fp32', **arch):
        from panininet.archs.panini_arch import PaniniNet

        return cls(PaniniNet(**variant_kwargs(name, **arch)), device, precision)

    def check_weight(self, weight):
        if weight_to_mask_bias(weight) != 0 and not self.supports_weight:
            raise ValueError(f'weight (-w) acts on the DAFI masks; this model has none (fusion={self.fusion!r}). '
                             'Leave -w at 0.5.')

    def forward(self, faces, weight):
        return self.net(faces, mask_bias=weight_to_mask_bias(weight))
