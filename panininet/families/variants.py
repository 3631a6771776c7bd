"""Named PaniniNet variants, each defined once (as timm's named model configs).

Every place that needs the arguments of a variant (the restorer's fallback for a weights file that does not record
its architecture, the options, the benchmarks, the tests) reads them from :data:`VARIANTS` through
:func:`variant_kwargs`, so the sr16 or Cat-Conv settings are spelled out in this file only.

* ``mfr``: multi-degradation face restoration, 512 -> 1024 (the official ``Panini_MFR`` class defaults, which are
  :class:`~panininet.archs.panini_arch.PaniniNet`'s defaults).
* ``sr16``: 16x face super-resolution, 64 -> 1024, with a learned constant v_DR instead of the DRE (the official
  ``Panini_SR`` class defaults).
* ``catconv``: the Cat-Conv ablation of the paper's Table 3 on the MFR setting (concatenation + conv instead of
  DAFI).
"""
import copy

VARIANTS = {
    'mfr': {},
    'sr16': {'in_size': 64, 'condition': 'learned', 'rrdb_channels': 64, 'num_rrdbs': 23, 'cbam_reduction': 8},
    'catconv': {'fusion': 'catconv'},
}


def variant_kwargs(name, **overrides):
    """The PaniniNet keyword arguments of a named variant.

    Args:
        name (str): A key of :data:`VARIANTS` ('mfr', 'sr16', 'catconv').
        **overrides: Arguments that replace or extend the variant's (e.g. ``narrow=1/16`` for a tiny network).

    Returns:
        dict: Keyword arguments for :class:`~panininet.archs.panini_arch.PaniniNet` (a fresh copy).

    Raises:
        KeyError: ``name`` is not a known variant (the message lists the known ones).
    """
    if name not in VARIANTS:
        raise KeyError(f'unknown PaniniNet variant {name!r}; known: {", ".join(sorted(VARIANTS))}')
    kwargs = copy.deepcopy(VARIANTS[name])
    kwargs.update(overrides)
    return kwargs
