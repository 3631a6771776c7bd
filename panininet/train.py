"""Train with BasicSR's engine: ``python panininet/train.py -opt options/train_panini_mfr.yml``.

Experiments, logs and tb_logger folders go under the repository root (the parent of this package),
whatever the working directory, exactly as BasicSR and GFPGAN do.
"""
import os.path as osp

import panininet  # noqa: F401  (applies compat, registers archs/datasets/models)

if __name__ == '__main__':
    # imported after panininet: ``import basicsr`` fails on today's torchvision until compat has run
    from basicsr.train import train_pipeline

    root_path = osp.abspath(osp.join(__file__, osp.pardir, osp.pardir))
    train_pipeline(root_path)
