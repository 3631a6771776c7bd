"""Train with BasicSR's engine: ``python panininet/train.py -opt options/train_panini_mfr.yml``.

Experiments, logs and tb_logger folders go under the repository root (the parent of this package),
whatever the working directory, exactly as BasicSR and GFPGAN do.

GFP-GAN's own training (``-opt options/train_gfpgan_v1.yml``) needs the gfpgan package (the ``[gfpgan]`` extra);
without it the run stops at once with one line saying so.

Before BasicSR creates any folder, :mod:`panininet.preflight` checks the options (every input file, the output
places, the option values) and reports all that is missing or wrong in one message (exit status 2).
"""
import os.path as osp
import sys

import panininet  # noqa: F401  (applies compat, registers archs/datasets/models)

# registered names that come from the optional gfpgan package
GFPGAN_TYPES = ('PaniniGFPGANModel', 'GFPGANModel', 'GFPGANv1', 'GFPGANBilinear', 'GFPGANv1Clean',
                'FacialComponentDiscriminator', 'ResNetArcFace', 'FFHQDegradationDataset')


def missing_gfpgan(argv):
    """The gfpgan-provided type the ``-opt`` file names when gfpgan is not installed, else None."""
    from panininet.models import HAS_GFPGAN
    if HAS_GFPGAN or '-opt' not in argv[:-1]:
        return None
    path = argv[argv.index('-opt') + 1]
    if not osp.isfile(path):
        return None  # basicsr reports it
    with open(path) as f:
        text = f.read()
    return next((t for t in GFPGAN_TYPES if f'type: {t}' in text), None)


if __name__ == '__main__':
    # imported after panininet: ``import basicsr`` fails on today's torchvision until compat has run
    from basicsr.train import train_pipeline

    needed = missing_gfpgan(sys.argv[1:])
    if needed:
        print(f'error: {needed} (in the -opt file) comes from GFP-GAN: install the gfpgan extra, '
              'pip install --no-build-isolation -e ".[gfpgan]"', file=sys.stderr)
        sys.exit(2)
    root_path = osp.abspath(osp.join(__file__, osp.pardir, osp.pardir))
    from panininet.preflight import PreflightError, check_training_options
    try:
        check_training_options(sys.argv[1:], root_path)
    except PreflightError as err:
        print(err, file=sys.stderr)
        sys.exit(2)
    train_pipeline(root_path)
