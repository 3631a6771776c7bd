"""Parameter counts of PaniniNet (MFR, 16x SR, Cat-Conv ablation), per part, next to the official generators; then
MMRB-Net (512, per part, one and zero decoder MMRBs per scale) and GPEN-BFR-512 (GPENNet).

The official counts are the ``generator_parameter_numel`` of the reference manifests
(../shared/official_reference/manifest_panini_{mfr,sr}.json). The paper gives no numbers, only that Cat-Conv
"costs more parameters" than DAFI (Table 3) and that Panini-Net has fewer parameters than GLEAN.
Networks are built on the ``meta`` device: nothing is allocated, it takes a second.

    python benchmarks/count_params.py
"""
import argparse
import json
import os.path as osp

import torch

import panininet  # noqa: F401  (compat before basicsr)
from panininet.archs.gpen_arch import GPENNet
from panininet.archs.mmrb_arch import MMRB, MMRBNet
from panininet.archs.panini_arch import PaniniNet
from panininet.families.variants import variant_kwargs

# name: (PaniniNet arguments, tag of the official manifest with the same network)
CONFIGS = {
    'MFR (paper default)': (variant_kwargs('mfr'), 'mfr'),
    'SR 16x': (variant_kwargs('sr16'), 'sr'),
    'SR 16x, Cat-Conv': (variant_kwargs('sr16', fusion='catconv'), None),
    'MFR, Cat-Conv': (variant_kwargs('catconv'), None),
}
PARTS = ('ife', 'lce', 'gpm', 'dafi', 'dre', 'catconv', 'learned_v_dr')


def count(module):
    return sum(p.numel() for p in module.parameters()) if module is not None else 0


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    default_ref = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), '..', 'shared', 'official_reference')
    parser.add_argument('--reference', default=default_ref, help='folder with the official manifests')
    args = parser.parse_args()
    rows = []
    for name, (opt, tag) in CONFIGS.items():
        with torch.device('meta'):
            net = PaniniNet(**opt)
        parts = {}
        for part in PARTS:
            obj = getattr(net, part, None)
            parts[part] = obj.numel() if isinstance(obj, torch.nn.Parameter) else count(obj)
        official = None
        manifest = osp.join(args.reference, f'manifest_panini_{tag}.json') if tag else None
        if manifest and osp.isfile(manifest):
            with open(manifest) as f:
                official = json.load(f)['counts']['generator_parameter_numel']
        rows.append((name, count(net), official, parts))
    for name, total, official, parts in rows:
        ref = f'official {official:,} ({"equal" if official == total else "DIFFERENT"})' if official else ''
        print(f'{name:22s} {total:>12,}  {ref}')
        print('    ' + ', '.join(f'{k} {v:,}' for k, v in parts.items() if v))
    no_mapping = {name: total - 8 * (512 * 512 + 512) for name, total, _, _ in rows}
    print('without the unused StyleGAN2 mapping network (8 x 512 x 512 + bias): ' +
          ', '.join(f'{k} {v:,}' for k, v in no_mapping.items()))
    print()
    count_mmrb()


def count_mmrb():
    """MMRB-Net at 512 per part (the paper gives no counts), and GPENNet (GPEN-BFR-512's generator)."""
    for num_dec in (1, 0):
        with torch.device('meta'):
            net = MMRBNet(num_mmrb_decoder=num_dec)
        groups = net.param_groups()
        enc, dec = net.codec.encoder, net.codec.decoder
        mmrbs = sum(count(m) for m in net.modules() if isinstance(m, MMRB))
        label = 'MMRB-Net (our default)' if num_dec == 1 else 'MMRB-Net, num_mmrb_decoder 0'
        print(f'{label:30s} {count(net):>12,}')
        print(f'    encoder {count(enc):,} ({num_dec + 1} MMRB/scale), decoder {count(dec):,} ({num_dec} MMRB/scale), '
              f'Z layer {count(net.codec.latent):,}, prior {sum(p.numel() for p in groups["prior"]):,}, '
              f'noise strengths {sum(p.numel() for p in groups["noise"])}; all MMRBs {mmrbs:,}')
    with torch.device('meta'):
        gpen = GPENNet()
    print(f'{"GPENNet (GPEN-BFR-512)":30s} {count(gpen):>12,}    encoder {count(gpen.encoder):,}, prior '
          f'{count(gpen.prior):,} (the same prior as MMRB-Net)')


if __name__ == '__main__':
    main()
