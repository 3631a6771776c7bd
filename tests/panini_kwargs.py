"""Test helper: compare PaniniNet argument sets by the network they build (defaults filled in)."""
import inspect

from panininet.archs.panini_arch import PaniniNet

# PaniniNet arguments that say where weights come from and what trains, not which network it is
NOT_ARCHITECTURE = {'decoder_load_path', 'dre_load_path', 'fix_dre', 'fix_decoder'}


def architecture(kwargs):
    """Every architecture argument of PaniniNet, defaults filled in."""
    params = inspect.signature(PaniniNet).parameters
    unknown = set(kwargs) - set(params)
    assert not unknown, f'not PaniniNet arguments: {unknown}'
    full = {k: p.default for k, p in params.items() if k not in NOT_ARCHITECTURE}
    full.update({k: v for k, v in kwargs.items() if k not in NOT_ARCHITECTURE})
    return full
