"""Screenshot of the web page restoring a photo (docs/images/web_page.png).

    python scripts/screenshot_web.py [--out docs/images/web_page.png] [--model_path WEIGHTS]

The photo is scikit-image's bundled ``astronaut()`` (NASA portrait of Eileen Collins, public domain). Without
``--model_path`` the network is a tiny PaniniNet with random weights (no trained weights needed): its faces are
noise, softened by the wavelet colour fix the script selects, so the picture shows the page, not a restoration.
Runs the page in-process (:func:`panininet.web.server.start`) and Debian's chromium headless through Playwright.
"""
import argparse
import os
import os.path as osp
import sys
import tempfile

import cv2
import torch

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)

import panininet  # noqa: E402,F401  (compat before basicsr)
from panininet.web.server import start, stop  # noqa: E402

CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
                 '--disable-background-networking', '--disable-component-update', '--disable-sync']
TINY_ARCH = dict(in_size=64, out_size=128, narrow=0.25, channel_multiplier=1, num_style_feat=64, dre_num_feat=16,
                 dre_in_size=64)


def write_tiny_network(path):
    from panininet.archs.panini_arch import PaniniNet

    torch.manual_seed(0)
    torch.save({'params_ema': PaniniNet(**TINY_ARCH).state_dict(), 'arch': TINY_ARCH}, path)
    return path


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--out', default=osp.join(REPO_ROOT, 'docs', 'images', 'web_page.png'))
    p.add_argument('--model_path', default=None, help='mfr weights (default: a tiny random network)')
    p.add_argument('--chromium', default='/usr/bin/chromium')
    args = p.parse_args()
    from playwright.sync_api import sync_playwright
    from skimage import data

    with tempfile.TemporaryDirectory(prefix='panininet-shot-') as tmp:
        photo = osp.join(tmp, 'astronaut.png')
        cv2.imwrite(photo, cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR))
        model = args.model_path or write_tiny_network(osp.join(tmp, 'untrained_test_network.pth'))
        page, service = start(['--port', '0', '--model', f'mfr={model}', '--no_download', '--detector', 'dlib',
                               '--dlib_upsample', '0', '--temp_dir', tmp])
        try:
            with sync_playwright() as pw:
                context = pw.chromium.launch_persistent_context(
                    osp.join(tmp, 'profile'), executable_path=args.chromium, headless=True, args=CHROMIUM_ARGS,
                    viewport={'width': 1280, 'height': 900})
                tab = context.new_page()
                tab.goto(page.local_url)
                tab.wait_for_selector('#restore')
                tab.locator('#photos input[type=file]').set_input_files(photo)
                tab.wait_for_selector('#photos >> text=astronaut.png')
                tab.locator('#weight input[type=range]').fill('0.7')
                tab.get_by_label('wavelet', exact=True).check()
                tab.click('#restore')
                tab.wait_for_selector('#compare img[src$="astronaut_after.png"]', timeout=300_000)
                tab.wait_for_timeout(1000)  # images decoded and laid out
                shot = osp.join(tmp, 'shot.png')
                tab.screenshot(path=shot, full_page=True)
                context.close()
        finally:
            stop(page, service)
        os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
        img = cv2.imread(shot)
        from panininet.pipeline.image_io import write_image

        write_image(img, args.out, [cv2.IMWRITE_PNG_COMPRESSION, 9])
        print(f'wrote {args.out} ({img.shape[1]} x {img.shape[0]})')


if __name__ == '__main__':
    main()
