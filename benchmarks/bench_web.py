"""The web page's overhead against the CLI on the same photo: seconds per restored photo, and their ratio.

    python benchmarks/bench_web.py [--photo PATH] [--rounds 1] [--tiny]

* CLI: ``inference_panini.py`` in this process on the photo, timed from its network being built to its end
  (reading, detection, network, paste, writing every output, as its ``Done: ... s`` figure; the network load is not
  counted, as the page loads its network once; its whole wall time is printed too);
* page: the page served by this process (:func:`panininet.web.server.start`), driven by Debian's chromium through
  Playwright: the photo is uploaded, then the time from pressing Restore to the restored image being shown (the
  queue, the same pipeline, the views, the zip, the files served to the browser), after one warm-up restore that
  loads the network; the server's own seconds for the job (the page's note) are printed too.

Both run the same settings: ``-v mfr`` with a PaniniNet at its released size and random weights (the time does not
depend on the values; ``--tiny``: a tiny network, for a quick check), upscale 2, fidelity 0.5, dlib's detector. The
photo defaults to scikit-image's public-domain ``astronaut()`` (512 x 512, one face). Rounds alternate page / CLI.
"""
import argparse
import contextlib
import importlib.util
import io
import os.path as osp
import platform
import re
import sys
import tempfile
import time

import cv2
import torch
from report import print_results

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)

import panininet  # noqa: E402,F401  (compat before basicsr)
from panininet.web.server import start, stop  # noqa: E402

CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
                 '--disable-background-networking', '--disable-component-update', '--disable-sync']
TINY_ARCH = dict(in_size=64, out_size=128, narrow=0.25, channel_multiplier=1, num_style_feat=64, dre_num_feat=16,
                 dre_in_size=64)
SETTINGS = ['-s', '2', '-w', '0.5', '--detector', 'dlib', '--device', 'cpu', '--no_download']


def write_network(path, tiny):
    from panininet.archs.panini_arch import PaniniNet
    from panininet.families.variants import variant_kwargs

    torch.manual_seed(0)
    arch = TINY_ARCH if tiny else variant_kwargs('mfr')
    arch = {k: v for k, v in arch.items() if k not in ('decoder_load_path', 'dre_load_path')}
    torch.save({'params_ema': PaniniNet(**arch).state_dict(), 'arch': arch}, path)
    return path


def load_cli():
    spec = importlib.util.spec_from_file_location('inference_panini', osp.join(REPO_ROOT, 'inference_panini.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def time_cli(cli, photo, model, out):
    """Seconds of the CLI's run after its network is built (what its ``Done: ... s`` figure counts, to the
    microsecond), and its whole wall time with the network load."""
    build, loaded = cli.build_restorer, []

    def timed_build(args):
        restorer = build(args)
        loaded.append(time.perf_counter())
        return restorer

    cli.build_restorer = timed_build
    t = time.perf_counter()
    try:
        with contextlib.redirect_stdout(io.StringIO()) as buf, contextlib.redirect_stderr(io.StringIO()):
            rc = cli.main(['-i', photo, '-o', out, '--model_path', model, *SETTINGS])
    finally:
        cli.build_restorer = build
    end = time.perf_counter()
    if rc != 0:
        raise RuntimeError(f'the CLI failed ({rc}): {buf.getvalue()}')
    return end - loaded[0], end - t


def time_page(context, url, photo):
    """(upload seconds, seconds from Restore to the restored image shown) in a fresh page (a new session)."""
    tab = context.new_page()
    tab.goto(url)
    tab.wait_for_selector('#restore')
    tab.get_by_label('dlib', exact=True).check()
    t = time.perf_counter()
    tab.locator('#photos input[type=file]').set_input_files(photo)
    tab.wait_for_selector(f'#photos >> text={osp.basename(photo)}')
    upload = time.perf_counter() - t
    t = time.perf_counter()
    tab.click('#restore')
    stem = osp.splitext(osp.basename(photo))[0]
    tab.wait_for_selector(f'#compare img[src$="{stem}_after.png"]', timeout=900_000)
    tab.wait_for_function('(img) => img.complete && img.naturalWidth > 0',
                          arg=tab.locator(f'#compare img[src$="{stem}_after.png"]').element_handle())
    seconds = time.perf_counter() - t
    job = float(re.search(r'Restored 1 photo\(s\) in ([\d.]+) s', tab.inner_text('#notes')).group(1))
    tab.close()
    return upload, seconds, job


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--photo', default=None, help="a photo (default: scikit-image's astronaut)")
    p.add_argument('--rounds', type=int, default=1)
    p.add_argument('--tiny', action='store_true', help='a tiny network (quick check; the ratio means little)')
    p.add_argument('--chromium', default='/usr/bin/chromium')
    p.add_argument('--json', default=None)
    args = p.parse_args()
    from playwright.sync_api import sync_playwright

    cli = load_cli()
    with tempfile.TemporaryDirectory(prefix='panininet-bench-web-') as tmp:
        photo = args.photo
        if photo is None:
            from skimage import data

            photo = osp.join(tmp, 'astronaut.png')
            cv2.imwrite(photo, cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR))
        h, w = cv2.imread(photo).shape[:2]
        model = write_network(osp.join(tmp, 'mfr_random.pth'), args.tiny)
        time_cli(cli, photo, model, osp.join(tmp, 'warm'))  # warm-up (and the CLI's allocator setting, for both)
        page, service = start(['--port', '0', '--model', f'mfr={model}', '--no_download', '--device', 'cpu',
                               '--detector', 'dlib', '--temp_dir', tmp])
        try:
            with sync_playwright() as pw:
                context = pw.chromium.launch_persistent_context(osp.join(tmp, 'profile'),
                                                                executable_path=args.chromium, headless=True,
                                                                args=CHROMIUM_ARGS)
                time_page(context, page.local_url, photo)  # warm-up: loads the network once
                cli_s, cli_wall, page_s, upload_s, job_s = [], [], [], [], []
                for r in range(args.rounds):
                    up, seconds, job = time_page(context, page.local_url, photo)
                    page_s.append(seconds)
                    upload_s.append(up)
                    job_s.append(job)
                    own, wall = time_cli(cli, photo, model, osp.join(tmp, f'cli{r}'))
                    cli_s.append(own)
                    cli_wall.append(wall)
                context.close()
        finally:
            stop(page, service)
    results = {
        'machine': f'{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads',
        'photo': f'{osp.basename(photo)} {w} x {h}, upscale 2, {"tiny" if args.tiny else "released-size"} mfr',
        'rounds': args.rounds,
        'cli_seconds': min(cli_s),
        'cli_wall_with_network_load_seconds': min(cli_wall),
        'page_seconds_restore_to_shown': min(page_s),
        'page_job_seconds_on_the_server': min(job_s),
        'page_upload_seconds': min(upload_s),
        'page_over_cli_ratio': min(page_s) / min(cli_s),
    }
    print_results(results, args.json)


if __name__ == '__main__':
    main()
