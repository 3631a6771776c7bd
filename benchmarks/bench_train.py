"""Seconds per training iteration of PaniniModel / MMRBModel (G step + D step(s), all losses, EMA) and peak memory.

    python benchmarks/bench_train.py                       # tiny CI config on CPU (tests/models/options/*_tiny.yml)
    python benchmarks/bench_train.py --paper --batch 8     # paper config (512 -> 1024, batch 8) on a CUDA GPU

* ``--config mfr|sr16|mmrb``: which options file; tiny = ``tests/models/options/train_panini_<config>_tiny.yml`` (mmrb:
  ``train_mmrb_tiny.yml``), ``--paper`` = ``options/train_panini_<config>.yml`` (``train_mmrb.yml``).
* Networks get random weights written to a temporary folder in the layouts the options expect (StyleGAN2 G/D,
  DRE, torchvision VGG16/VGG19, facexlib ArcFace), so the real loading code runs and speed does not depend on the
  values. MMRB-Net's prior starts random (``prior_load_path`` unset), its batches carry the FFHQ template's eye and
  mouth boxes.
* The model is built with ``basicsr.models.build_model`` and ``optimize_parameters`` is timed on one fixed random
  batch after ``--warmup`` iterations (the data pipeline is not included; see benchmarks/bench_degradation.py).
* CPU: ``--threads`` (default: 1 and the machine's count). GPU: peak ``torch.cuda.max_memory_allocated``.

Prints a table and, with ``--json``, writes the figures.
"""
import argparse
import json
import os
import os.path as osp
import platform
import tempfile
import time

import torch
import yaml

import panininet  # compat before basicsr (basicsr is imported inside the functions below)
from panininet.archs.dre_arch import DegradationEncoder
from panininet.models.losses import vgg_features

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))


def load_options(config, paper):
    name = 'train_mmrb' if config == 'mmrb' else f'train_panini_{config}'
    tiny = osp.join(REPO, 'tests', 'models', 'options', f'{name}_tiny.yml')
    path = osp.join(REPO, 'options', f'{name}.yml') if paper else tiny
    with open(path) as f:
        return yaml.safe_load(f), path


def write_random_weights(opt, folder):
    """Random pre-trained files for the options (StyleGAN2 G/D, DRE, VGG, ArcFace); fills their paths in ``opt``."""
    from basicsr.archs.stylegan2_arch import StyleGAN2Discriminator, StyleGAN2Generator
    g, d = opt['network_g'], opt['network_d']
    if g['type'] == 'MMRBNet':
        return _write_mmrb_weights(opt, folder)
    gen = StyleGAN2Generator(g['out_size'], num_style_feat=g.get('num_style_feat', 512),
                             channel_multiplier=g.get('channel_multiplier', 2), narrow=g.get('narrow', 1.0))
    g['decoder_load_path'] = osp.join(folder, 'g.pth')
    torch.save({'params_ema': gen.state_dict()}, g['decoder_load_path'])
    if g.get('condition', 'dre') == 'dre':
        g['dre_load_path'] = osp.join(folder, 'dre.pth')
        torch.save({'params': DegradationEncoder(g.get('dre_num_feat', 64)).state_dict()}, g['dre_load_path'])
    disc = StyleGAN2Discriminator(d['out_size'], channel_multiplier=d.get('channel_multiplier', 2),
                                  narrow=d.get('narrow', 1))
    opt['path']['pretrain_network_d'] = osp.join(folder, 'd.pth')
    torch.save({'params': disc.state_dict()}, opt['path']['pretrain_network_d'])
    vgg = osp.join(folder, 'vgg16.pth')
    torch.save({f'features.{k}': v for k, v in vgg_features('vgg16', 'pool5').state_dict().items()}, vgg)
    opt['train']['perceptual_opt']['vgg_load_path'] = vgg


def _write_mmrb_weights(opt, folder):
    from basicsr.archs.stylegan2_arch import StyleGAN2Discriminator
    from basicsr.archs.vgg_arch import NAMES
    from facexlib.recognition.arcface_arch import Backbone
    d, train = opt['network_d'], opt['train']
    opt['network_g']['prior_load_path'] = None
    disc = StyleGAN2Discriminator(d['out_size'], channel_multiplier=d.get('channel_multiplier', 2),
                                  narrow=d.get('narrow', 1))
    opt['path']['pretrain_network_d'] = osp.join(folder, 'd.pth')
    torch.save({'params': disc.state_dict()}, opt['path']['pretrain_network_d'])
    percep = train['perceptual_opt']
    vgg = osp.join(folder, f'{percep["vgg_type"]}.pth')
    last = max(percep['layer_weights'], key=NAMES[percep['vgg_type']].index)
    torch.save({f'features.{k}': v for k, v in vgg_features(percep['vgg_type'], last).state_dict().items()}, vgg)
    percep['vgg_load_path'] = vgg
    if train.get('identity_opt'):
        train['identity_opt']['arcface_load_path'] = osp.join(folder, 'arcface.pth')
        torch.save(Backbone(50, 0.6, 'ir_se').state_dict(), train['identity_opt']['arcface_load_path'])


def build(opt, folder, device, batch):
    from basicsr.models import build_model
    opt = dict(opt)
    opt.update(is_train=True, dist=False, rank=0, world_size=1, root_path=folder, auto_resume=False,
               num_gpu=1 if device.type == 'cuda' else 0)
    opt['path'] = dict(opt['path'], experiments_root=folder, models=folder, training_states=folder, log=folder,
                       visualization=folder)
    opt['path']['pretrain_network_g'] = None
    model = build_model(opt)
    g = opt['network_g']
    in_size = g.get('in_size', g['out_size'])
    x = torch.rand(batch, 3, in_size, in_size) * 2 - 1
    y = torch.rand(batch, 3, g['out_size'], g['out_size']) * 2 - 1
    data = {'lq': x, 'gt': y}
    if opt['datasets']['train'].get('crop_components'):
        from panininet.data.data_util import ComponentLocations
        boxes = ComponentLocations.template(1).locations(0, g['out_size'], coord_size=512)
        data.update({k: v.expand(batch, 4) for k, v in boxes.items()})
    return model, data


def sync(device):
    if device.type == 'cuda':
        torch.cuda.synchronize()


def time_iterations(model, batch, device, warmup, iters):
    """Median seconds per ``optimize_parameters`` call on a fixed batch."""
    model.feed_data(batch)
    for i in range(1, warmup + 1):
        model.optimize_parameters(i)
    sync(device)
    if device.type == 'cuda':
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    for i in range(warmup + 1, warmup + iters + 1):
        t = time.perf_counter()
        model.optimize_parameters(i)
        sync(device)
        times.append(time.perf_counter() - t)
    return sorted(times)[len(times) // 2]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--config', choices=['mfr', 'sr16', 'mmrb'], default='mfr')
    parser.add_argument('--paper', action='store_true', help='options/train_panini_<config>.yml (full size)')
    parser.add_argument('--batch', type=int, default=None, help='default: the options file\'s batch_size_per_gpu')
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--threads', type=int, nargs='*', default=None, help='CPU thread counts to try')
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument('--iters', type=int, default=10)
    parser.add_argument('--json', default=None, help='write the figures to this file')
    parser.add_argument('--no-identity', action='store_true', help='mmrb: without the ArcFace identity loss')
    args = parser.parse_args()

    device = torch.device(args.device)
    opt, path = load_options(args.config, args.paper)
    if args.no_identity:
        opt['train'].pop('identity_opt', None)
    batch = args.batch or opt['datasets']['train']['batch_size_per_gpu']
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        write_random_weights(opt, folder)
        threads = [None] if device.type == 'cuda' else (args.threads or sorted({1, os.cpu_count() or 1}))
        for n in threads:
            if n is not None:
                torch.set_num_threads(n)
            torch.manual_seed(0)
            model, data = build(opt, folder, device, batch)
            sec = time_iterations(model, data, device, args.warmup, args.iters)
            row = dict(config=args.config, options=osp.relpath(path, REPO), batch=batch, device=str(device),
                       threads=n, sec_per_iter=round(sec, 4),
                       peak_mem_gib=(round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
                                     if device.type == 'cuda' else None))
            if device.type == 'cuda':
                row['gpu'] = torch.cuda.get_device_name(device)
            rows.append(row)
            del model
    print(f'{"options":38s} {"batch":>5s} {"device":>8s} {"threads":>7s} {"s/iter":>8s} {"peak GiB":>8s}')
    for r in rows:
        print(f'{r["options"]:38s} {r["batch"]:5d} {r["device"]:>8s} {str(r["threads"]):>7s} '
              f'{r["sec_per_iter"]:8.4f} {str(r["peak_mem_gib"]):>8s}')
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(dict(rows=rows, platform=platform.platform(), torch=torch.__version__,
                           op_path=panininet.OP_PATH), f, indent=2)


if __name__ == '__main__':
    main()
