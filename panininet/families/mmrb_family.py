"""MMRB-Net's family (``-v mmrb``, 512 -> 512): a trained MMRBNet file in our format.

The file is what training writes for ``net_g``: ``{'params_ema'|'params': state_dict, 'arch': {MMRBNet kwargs}}``
(the arguments of ``network_g`` without ``type`` and the ``*_load_path`` entries); the sizes are read off the shapes,
so a file without ``arch`` works too. MMRB-Net has no knob between
fidelity and prior, so ``supports_weight`` is False and the weight is ignored (as GFPGAN's).
"""
import inspect

from panininet.families.base import RestorationFamily, load_state_dict_strict, register_family
from panininet.weights.checkpoint import load_checkpoint_file, pick_params


def mmrb_arch_from_state(state_dict):
    """MMRBNet's size arguments read off the shapes of its state dict (None when it is not an MMRBNet's).

    Returns:
        dict | None: ``out_size``, ``num_style_feat``, ``num_mlp``, ``narrow``, ``channel_multiplier`` (2 when the
        widths do not tell, below 64x64) and ``num_mmrb_decoder``.
    """
    from panininet.archs.gpm import stylegan2_channels

    try:
        num_scales = len({k.split('.')[3] for k in state_dict if k.startswith('codec.decoder.to_rgbs.')})
        narrow = state_dict['prior.constant_input.weight'].shape[1] / 512
        widths = {2**(i + 2): state_dict[f'codec.decoder.to_rgbs.{i}.weight'].shape[1] for i in range(num_scales)}
        arch = {
            'out_size': 2**(num_scales + 1),
            'num_style_feat': state_dict['codec.latent.weight'].shape[0],
            'num_mlp': sum(1 for k in state_dict if k.startswith('prior.style_mlp.') and k.endswith('.weight')),
            'narrow': narrow,
            'num_mmrb_decoder': len({k.split('.')[4] for k in state_dict if k.startswith('codec.decoder.stages.0.')}),
        }
    except (KeyError, AttributeError, IndexError):
        return None
    arch['channel_multiplier'] = next(
        (cm for cm in (2, 1, 4) if all(stylegan2_channels(cm, narrow).get(r) == c for r, c in widths.items())), 2)
    return arch


def mmrb_arch_from_file(obj, state_dict, path='<checkpoint>'):
    """The MMRBNet constructor arguments of a file: read off its shapes, completed by its ``arch`` entry.

    Load paths (``prior_load_path``) and ``type`` are dropped: everything comes from the file itself.

    Raises:
        ValueError: Not an MMRBNet's state dict, or an ``arch`` entry naming an argument MMRBNet does not take.
    """
    from panininet.archs.mmrb_arch import MMRBNet

    arch = dict(obj.get('arch') or {}) if isinstance(obj, dict) else {}
    arch = {k: v for k, v in arch.items() if k != 'type' and not k.endswith('_load_path')}
    unknown = sorted(set(arch) - set(inspect.signature(MMRBNet).parameters))
    if unknown:
        raise ValueError(f'{path}: its arch entry has {unknown}, which MMRBNet does not take; is it an MMRB-Net file?')
    from_shapes = mmrb_arch_from_state(state_dict)
    if from_shapes is None:
        raise ValueError(f'{path} does not hold -v mmrb weights (no MMRBNet codec/prior entries); give a file '
                         'written by MMRB-Net training, or the -v that matches the file.')
    return dict(from_shapes, **arch)


@register_family('mmrb')
class MMRBFamily(RestorationFamily):
    """MMRBNet behind the family interface (in size = out size = the network's ``out_size``).

    Args:
        net (MMRBNet): The network.
        device, precision: See :class:`~panininet.families.base.RestorationFamily`.
    """

    @classmethod
    def from_file(cls, name, path, device=None, precision='fp32', weights_dir=None):
        from panininet.archs.mmrb_arch import MMRBNet

        obj = load_checkpoint_file(path)
        state_dict = pick_params(obj, path)
        net = MMRBNet(**mmrb_arch_from_file(obj, state_dict, path))
        load_state_dict_strict(net, state_dict, path, name)
        return cls(net, device, precision)

    @classmethod
    def with_random_weights(cls, name, device=None, precision='fp32', **arch):
        from panininet.archs.mmrb_arch import MMRBNet

        return cls(MMRBNet(**arch), device, precision)

    def forward(self, faces, weight):
        return self.net(faces)
