"""CPU efficiency against GFPGAN before/after the channels_last IFE, in one process (README "CPU efficiency").

    python benchmarks/bench_ife_layout.py --rounds 3

PaniniNet MFR (512 -> 1024, random weights) with the IFE forward as it was (everything NCHW: ``nchw_ife_forward``
below) and as it is (``IFE.forward``: channels_last inside), and GFPGANv1Clean (512 -> 512, random weights, needs the
gfpgan package), batch 1, timed in alternating rounds so that load from other processes hits all three alike; best
round each. Prints the max |difference| of the two PaniniNet outputs, per-round bests with the 1-minute load, and
ms/face, GFLOP/s (FLOPs as ``bench_network.py`` counts them: 448.2 / 396.0 GFLOP per face) and the GFLOP/s ratio.
"""
import argparse
import os
import time

import torch

import panininet  # noqa: F401  (compat before basicsr)
from panininet.archs.panini_arch import IFE, PaniniNet

GFLOP = {'panini': 448.2, 'gfpgan': 396.0}  # per face, benchmarks/bench_network.py's FlopCounterMode count


def nchw_ife_forward(self, x):
    """The IFE forward before the channels_last change (the reference)."""
    fea = self.conv_first(x)
    fea = fea + self.conv_body(self.body(fea))
    fea = self.stem(self.cbam(fea))
    pre = [fea]
    for down in self.downs:
        pre.append(down(pre[-1]))
    pre = pre[::-1]
    feats = [conv(f) for conv, f in zip(self.h_convs, pre)]
    return pre, feats


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--rounds', type=int, default=3)
    parser.add_argument('--threads', type=int, default=2)
    args = parser.parse_args()
    from gfpgan.archs.gfpganv1_clean_arch import GFPGANv1Clean

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    net = PaniniNet().eval()
    gfpgan = GFPGANv1Clean(out_size=512, num_style_feat=512, channel_multiplier=2, decoder_load_path=None,
                           fix_decoder=False, num_mlp=8, input_is_latent=True, different_w=True, narrow=1,
                           sft_half=True).eval()
    x = torch.rand(1, 3, 512, 512) * 2 - 1
    channels_last_forward = IFE.forward

    def before():
        IFE.forward = nchw_ife_forward
        try:
            return net(x)
        finally:
            IFE.forward = channels_last_forward

    runs = {'before': before, 'after': lambda: net(x), 'gfpgan': lambda: gfpgan(x, return_rgb=False)}
    with torch.no_grad():
        print(f'max |after - before| {(runs["after"]() - before()).abs().max().item():.1e}')
        runs['gfpgan']()
        best = dict.fromkeys(runs, float('inf'))
        for r in range(args.rounds):
            for name, fn in runs.items():
                t0 = time.perf_counter()
                fn()
                best[name] = min(best[name], time.perf_counter() - t0)
            print(f'round {r}: ' + ', '.join(f'{k} {v:.2f} s' for k, v in best.items()) +
                  f'; load {os.getloadavg()[0]:.1f}', flush=True)
    gfp = GFLOP['gfpgan'] / best['gfpgan']
    print(f'\n{args.threads} threads, {os.cpu_count()} CPUs, best of {args.rounds} alternating rounds')
    print('| network | ms/face | GFLOP/s | GFLOP/s vs GFPGAN |\n|---|---:|---:|---:|')
    for name, label in (('before', 'PaniniNet MFR, IFE in NCHW'), ('after', 'PaniniNet MFR, IFE in channels_last')):
        rate = GFLOP['panini'] / best[name]
        print(f'| {label} | {best[name] * 1e3:.0f} | {rate:.1f} | {rate / gfp:.2f} |')
    print(f'| GFPGANv1Clean 512->512 | {best["gfpgan"] * 1e3:.0f} | {gfp:.1f} | 1 |')


if __name__ == '__main__':
    main()
