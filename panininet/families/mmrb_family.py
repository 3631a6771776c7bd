"""MMRB-Net's family (``-v mmrb``, 512 -> 512): a trained MMRBNet file in our format.

The file is what training writes for ``net_g``: ``{'params_ema'|'params': state_dict, 'arch': {MMRBNet kwargs}}``
(the arguments of ``network_g`` without ``type`` and the ``*_load_path`` entries). MMRB-Net has no knob between
fidelity and prior, so ``supports_weight`` is False and the weight is ignored (as GFPGAN's).
"""
import inspect

from panininet.checkpoint import load_checkpoint_file, pick_params
from panininet.families.base import RestorationFamily, load_state_dict_strict, register_family


def mmrb_arch_from_file(obj, path='<checkpoint>'):
    """The MMRBNet constructor arguments a file records (its ``arch`` entry; the paper's 512 setting where absent).

    Load paths (``prior_load_path``) and ``type`` are dropped: everything comes from the file itself.

    Raises:
        ValueError: ``arch`` names an argument MMRBNet does not have.
    """
    from panininet.archs.mmrb_arch import MMRBNet

    arch = dict(obj.get('arch') or {}) if isinstance(obj, dict) else {}
    arch = {k: v for k, v in arch.items() if k != 'type' and not k.endswith('_load_path')}
    known = set(inspect.signature(MMRBNet).parameters)
    unknown = sorted(set(arch) - known)
    if unknown:
        raise ValueError(f'{path}: its arch entry has {unknown}, which MMRBNet does not take; is it an MMRB-Net file?')
    return arch


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
        net = MMRBNet(**mmrb_arch_from_file(obj, path))
        load_state_dict_strict(net, state_dict, path, name)
        return cls(net, device, precision)

    @classmethod
    def with_random_weights(cls, name, device=None, precision='fp32', **arch):
        from panininet.archs.mmrb_arch import MMRBNet

        return cls(MMRBNet(**arch), device, precision)

    def forward(self, faces, weight):
        return self.net(faces)
