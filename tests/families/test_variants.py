"""The named PaniniNet variants (panininet/families/variants.py) are what the options files and the arch build."""
import os.path as osp

import pytest
import yaml
from helpers import REPO_ROOT as REPO  # noqa: E402
from panini_kwargs import architecture

from panininet.families.variants import VARIANTS, variant_kwargs


@pytest.mark.parametrize(('options', 'variant'), [('train_panini_mfr.yml', 'mfr'), ('train_panini_sr16.yml', 'sr16')])
def test_options_network_g_is_the_variant(options, variant):
    with open(osp.join(REPO, 'options', options)) as f:
        network_g = yaml.safe_load(f)['network_g']
    assert network_g.pop('type') == 'PaniniNet'
    assert architecture(network_g) == architecture(variant_kwargs(variant))


def test_variants_differ_where_the_paper_says():
    mfr, sr16, cat = (architecture(variant_kwargs(n)) for n in ('mfr', 'sr16', 'catconv'))
    assert mfr == architecture({})  # MFR is PaniniNet's defaults
    assert {k for k in mfr if mfr[k] != sr16[k]} == {'in_size', 'condition', 'rrdb_channels', 'num_rrdbs',
                                                     'cbam_reduction'}
    assert {k for k in mfr if mfr[k] != cat[k]} == {'fusion'}


def test_variant_kwargs_copies_overrides_and_refuses_unknown_names():
    kw = variant_kwargs('sr16', narrow=0.125)
    assert kw['narrow'] == 0.125 and 'narrow' not in VARIANTS['sr16']
    kw['in_size'] = 1
    assert variant_kwargs('sr16')['in_size'] == 64
    with pytest.raises(KeyError, match='known: catconv, mfr, sr16'):
        variant_kwargs('sr8')
