"""GPEN-BFR-512's family (``-v gpen512``, 512 -> 512): GPEN's released ``GPEN-BFR-512.pth`` (or a GPEN training
checkpoint's ``g_ema``) converted on the fly, or a GPENNet file in our format (``scripts/convert_gpen.py``).

GPENNet (``panininet/archs/gpen_arch.py``) is GPEN's ``FullGenerator`` from BasicSR's modules with MMRB-Net's
concatenated-noise prior; GPEN has no fidelity knob, so ``supports_weight`` is False and the weight is ignored.
"""
from panininet.families.base import RestorationFamily, load_state_dict_strict, register_family
from panininet.weights import gpen_checkpoint as gpen
from panininet.weights.checkpoint import load_checkpoint_file, pick_params

RELEASED_ARCH = dict(out_size=512, num_style_feat=512, num_mlp=8, channel_multiplier=2, narrow=1.0)


@register_family('gpen512')
class GPENFamily(RestorationFamily):
    """GPENNet behind the family interface.

    Args:
        net (GPENNet): The network.
        device, precision: See :class:`~panininet.families.base.RestorationFamily`.
    """

    @classmethod
    def from_file(cls, name, path, device=None, precision='fp32', weights_dir=None):
        from panininet.archs.gpen_arch import GPENNet

        obj = load_checkpoint_file(path)
        try:
            theirs = gpen.pick_gpen_generator(obj, path)
        except ValueError:
            theirs = None
        if theirs is not None:
            net, _ = GPENNet.from_gpen_state(theirs, path)
        else:
            arch = obj.get('arch') if isinstance(obj, dict) else None
            net = GPENNet(**dict(RELEASED_ARCH, **(arch or {})))
            load_state_dict_strict(net, pick_params(obj, path), path, name)
        return cls(net, device, precision)

    @classmethod
    def with_random_weights(cls, name, device=None, precision='fp32', **arch):
        from panininet.archs.gpen_arch import GPENNet

        return cls(GPENNet(**dict(RELEASED_ARCH, **arch)), device, precision)

    def forward(self, faces, weight):
        return self.net(faces)
