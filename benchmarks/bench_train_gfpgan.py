"""Seconds per training iteration of GFP-GAN's own training (PaniniGFPGANModel = GFPGANModel on our engine), beside
PaniniModel's tiny MFR iteration in the same process.

    python benchmarks/bench_train_gfpgan.py                 # tests/models/options/train_gfpgan_v1_tiny.yml on CPU
    python benchmarks/bench_train_gfpgan.py --paper         # options/train_gfpgan_v1.yml (512 px) on a CUDA GPU

* Random weights in the released layouts are written to a temporary folder (StyleGAN2 decoder, ArcFace, VGG19
  features in the weights root), so the real loading code runs; the data pipeline is not timed: one fixed random
  batch (with template component boxes) goes through ``optimize_parameters`` after ``--warmup`` iterations.
* One iteration = everything of GFP-GAN's objective: pyramid, perceptual + style, global GAN (+ R1 every
  ``net_d_reg_every``), three component discriminators with their style loss, ArcFace identity; EMA.
* Median of ``--iters`` timed iterations (``bench_train.time_iterations``). CPU: ``--threads`` (default 1).
  Prints the machine load (``os.getloadavg``) with the figures.
"""
import argparse
import os
import os.path as osp
import tempfile

import bench_train  # the PaniniModel peer and the timing loop (median of --iters)
import torch
import yaml

import panininet  # noqa: F401  (compat before basicsr / gfpgan)
from panininet.models.losses import vgg_features

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
TEMPLATE_512 = {'left_eye': (188., 245., 24.), 'right_eye': (325., 245., 24.), 'mouth': (256., 370., 45.)}


def gfpgan_model(paper, folder, device, batch_size=None):
    """PaniniGFPGANModel from the (tiny or paper) options with random pre-trained files."""
    from basicsr.archs.stylegan2_arch import StyleGAN2Generator
    from basicsr.models import build_model
    from gfpgan.archs.arcface_arch import IRBlock, ResNetArcFace
    path = (osp.join(REPO, 'options', 'train_gfpgan_v1.yml') if paper else
            osp.join(REPO, 'tests', 'models', 'options', 'train_gfpgan_v1_tiny.yml'))
    with open(path) as f:
        opt = yaml.safe_load(f)
    g = opt['network_g']
    g['decoder_load_path'] = osp.join(folder, 'decoder.pth')
    torch.save({'params_ema': StyleGAN2Generator(g['out_size'], num_style_feat=g['num_style_feat'],
                                                 channel_multiplier=g['channel_multiplier'],
                                                 narrow=g['narrow']).state_dict()}, g['decoder_load_path'])
    ident = opt['network_identity']
    opt['path']['pretrain_network_identity'] = osp.join(folder, 'arcface.pth')
    torch.save(ResNetArcFace(IRBlock, ident['layers'], use_se=ident['use_se']).state_dict(),
               opt['path']['pretrain_network_identity'])
    torch.save({f'features.{k}': v for k, v in vgg_features('vgg19', 'pool5').state_dict().items()},
               osp.join(folder, 'vgg19-dcbb9e9d.pth'))
    os.environ['PANINI_WEIGHTS_DIR'] = folder
    opt.update(is_train=True, dist=False, rank=0, world_size=1, root_path=folder, auto_resume=False,
               num_gpu=1 if device.type == 'cuda' else 0)
    exp = osp.join(folder, 'experiments', opt['name'])
    opt['path'].update(experiments_root=exp, models=osp.join(exp, 'models'), log=exp,
                       training_states=osp.join(exp, 'training_states'), visualization=osp.join(exp, 'vis'))
    model = build_model(opt)
    size, b = g['out_size'], batch_size or opt['datasets']['train']['batch_size_per_gpu']
    batch = {'lq': torch.rand(b, 3, size, size) * 2 - 1, 'gt': torch.rand(b, 3, size, size) * 2 - 1}
    for part, (x, y, h) in TEMPLATE_512.items():
        s = size / 512
        h = h * s * (opt['datasets']['train'].get('eye_enlarge_ratio', 1) if 'eye' in part else 1)
        batch[f'loc_{part}'] = torch.tensor([[x * s - h + 1, y * s - h + 1, x * s + h, y * s + h]] * b)
    return model, batch


class FeedEachIteration:
    """A model whose every ``optimize_parameters`` first feeds a fresh copy of the batch, as the train loop does
    (GFP-GAN's R1 step sets ``requires_grad`` on the fed ground truth, so a batch cannot be reused as it is)."""

    def __init__(self, model, batch):
        self.model, self.batch = model, batch

    def feed_data(self, batch):
        self.batch = batch

    def optimize_parameters(self, current_iter):
        self.model.feed_data({k: v.clone() for k, v in self.batch.items()})
        self.model.optimize_parameters(current_iter)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--paper', action='store_true', help='options/train_gfpgan_v1.yml (512 px)')
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--threads', type=int, default=1)
    parser.add_argument('--batch', type=int, default=None, help="default: the options file's batch_size_per_gpu")
    parser.add_argument('--no-peer', action='store_true', help='skip the PaniniModel tiny MFR peer')
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument('--iters', type=int, default=4)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    with tempfile.TemporaryDirectory() as folder:
        model, batch = gfpgan_model(args.paper, folder, device, args.batch)
        gfpgan = bench_train.time_iterations(FeedEachIteration(model, batch), batch, device, args.warmup, args.iters)
        del model
        peer = None
        if not args.no_peer:
            opt, _ = bench_train.load_options('mfr', paper=False)  # PaniniModel's tiny MFR config, same process
            bench_train.write_random_weights(opt, folder)
            peer_model, peer_batch = bench_train.build(opt, folder, device,
                                                       opt['datasets']['train']['batch_size_per_gpu'])
            peer = bench_train.time_iterations(peer_model, peer_batch, device, args.warmup, args.iters)
    load = os.getloadavg()
    print(f'device {device}, {args.threads} thread(s), load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}')
    print(f'GFP-GAN v1 ({"paper" if args.paper else "tiny"} options, batch {batch["lq"].shape[0]}): '
          f'{gfpgan:.2f} s/iter')
    if peer is not None:
        print(f'PaniniModel tiny MFR: {peer:.2f} s/iter   (GFP-GAN / Panini: {gfpgan / peer:.1f}x)')


if __name__ == '__main__':
    main()
