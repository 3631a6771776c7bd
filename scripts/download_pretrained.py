"""Download the pre-trained networks the training options read, under the names they expect, and verify them.

    python scripts/download_pretrained.py stylegan2_ffhq_1024 vgg16    # Panini-Net (MFR, SR16)
    python scripts/download_pretrained.py gpen512 vgg19 arcface_ir_se50 gfpgan_train   # MMRB-Net
    python scripts/download_pretrained.py gfpgan_train                 # GFP-GAN v1 (+ vgg19 --dir <weights root>)
    python scripts/download_pretrained.py stylegan2_ffhq_1024 --check  # verify, download nothing

Files go to ``--dir`` (default: ``experiments/pretrained_models`` under the repository root, where the options
look, relative to the root as the training resolves them). The StyleGAN2 FFHQ prior is BasicSR's conversion of
the official config-f 1024 networks, from BasicSR's model zoo (its ``scripts/download_pretrained_models.py
StyleGAN``), under the names the options use: ``stylegan2_ffhq_config_f_1024_official-3ab41b38.pth`` (generator,
``params_ema``) and ``stylegan2_ffhq_config_f_1024_discriminator_official-a386354a.pth``. Downloads are atomic and
a file already there is not fetched again. The 8 hex digits in BasicSR's and torchvision's file names are the start
of the file's SHA-256: ``--check`` compares them (other files: against the SHA-256 recorded at their download,
``<file>.sha256``), prints one line per file and exits 1 when one is missing or differs.

basicsr's own ``PerceptualLoss`` (GFP-GAN's options) reads ``vgg19-dcbb9e9d.pth`` from the weights root
(``$PANINI_WEIGHTS_DIR``, else ``~/.cache/panininet``): ``vgg19 --dir ~/.cache/panininet`` for it.
"""
import argparse
import os
import os.path as osp
import re
import sys

from panininet.weights.releases import Release, WeightsNotFoundError, download_release, sha256sum

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
DEFAULT_DIR = osp.join(REPO, 'experiments', 'pretrained_models')
_GFPGAN = 'https://github.com/TencentARC/GFPGAN/releases/download/v0.1.0/'


def _drive(name, file_id):
    return Release(name, f'https://drive.google.com/uc?export=download&id={file_id}', file_id)


def _url(url):
    return Release(osp.basename(url), url)


# name -> the files (ids and URLs: BasicSR's scripts/download_pretrained_models.py, torchvision, facexlib 0.3.0,
# GFP-GAN's v0.1.0 release, GPEN's README)
GROUPS = {
    'stylegan2_ffhq_1024': [
        _drive('stylegan2_ffhq_config_f_1024_official-3ab41b38.pth', '1qtdsT1FrvKQsFiW3OqOcIb-VS55TVy1g'),
        _drive('stylegan2_ffhq_config_f_1024_discriminator_official-a386354a.pth', '1nPqCxm8TkDU3IvXdHCzPUxlBwR5Pd78G'),
    ],
    'vgg16': [_url('https://download.pytorch.org/models/vgg16-397923af.pth')],
    'vgg19': [_url('https://download.pytorch.org/models/vgg19-dcbb9e9d.pth')],
    'arcface_ir_se50': [_url('https://github.com/xinntao/facexlib/releases/download/v0.1.0/'
                             'recognition_arcface_ir_se50.pth')],
    'gfpgan_train': [_url(_GFPGAN + 'StyleGAN2_512_Cmul1_FFHQ_B12G4_scratch_800k.pth'),
                     _url(_GFPGAN + 'arcface_resnet18.pth'),
                     _url(_GFPGAN + 'FFHQ_eye_mouth_landmarks_512.pth')],
    'gpen512': [_url('https://public-vigen-video.oss-cn-shanghai.aliyuncs.com/robin/models/GPEN-BFR-512.pth')],
}
_HASH_IN_NAME = re.compile(r'-([0-9a-f]{8})\.pth$')


def verify(path):
    """(ok, text) for one file: present, and matching the SHA-256 its name or its ``.sha256`` record gives."""
    if not osp.isfile(path):
        return False, 'missing'
    match = _HASH_IN_NAME.search(osp.basename(path))
    record = path + '.sha256'
    if match or osp.isfile(record):
        digest = sha256sum(path)
        if match:
            expected, what = match.group(1), 'the SHA-256 prefix in its name'
        else:
            with open(record, encoding='utf-8') as f:
                expected, what = f.read().split()[0], f'the SHA-256 recorded in {osp.basename(record)}'
        if not digest.startswith(expected):
            return False, f'differs from {what} ({digest[:8]} != {expected[:8]}): delete it and download again'
        return True, f'ok (matches {what})'
    return True, 'present (no checksum to compare)'


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('names', nargs='+', metavar='NAME', help=f'what to get: {", ".join(GROUPS)}')
    p.add_argument('--dir', default=DEFAULT_DIR, help=f'destination folder (default: {DEFAULT_DIR})')
    p.add_argument('--check', action='store_true', help='verify the files; download nothing')
    args = p.parse_args(argv)
    unknown = [n for n in args.names if n not in GROUPS]
    if unknown:
        print(f'Error: unknown name(s) {", ".join(unknown)}; choose from {", ".join(GROUPS)}.', file=sys.stderr)
        return 2
    folder = osp.abspath(osp.expanduser(args.dir))
    releases = [r for n in dict.fromkeys(args.names) for r in GROUPS[n]]
    failed = 0
    for release in releases:
        path = osp.join(folder, release.file_name)
        fresh = not args.check and not osp.isfile(path)
        if fresh:
            try:
                download_release(release, folder, model_path_hint=False)
            except WeightsNotFoundError as err:
                reason = next((line for line in str(err).splitlines() if line.startswith('It could not')), '')
                print(f'Error: {release.file_name}: {reason or err} Download {release.url} by hand into {folder}, '
                      'or run the same command again (files already there are kept).', file=sys.stderr)
                return 2
        ok, text = verify(path)
        if fresh and not ok:  # a download that is not the release's file: not kept
            for bad in (path, path + '.sha256'):
                if osp.isfile(bad):
                    os.remove(bad)
            text += ' (the download was removed)'
        failed += not ok
        print(f'{path}: {text}')
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
