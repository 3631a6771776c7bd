"""``panininet-web`` / ``python app.py``: start the page on 127.0.0.1 (``--host``, ``--port``; ``--share`` opt-in).

Prints the page's address and serves until Ctrl-C; the uploads, the results and Gradio's own cache live in one
temporary folder that is removed when the server stops. A flag it cannot work with: one ``Error:`` line, exit 2.
"""
import argparse
import os
import os.path as osp
import signal
import sys

from panininet.pipeline.face_detection import DETECTORS
from panininet.pipeline.image_io import DEFAULT_MAX_OUTPUT_PIXELS
from panininet.weights.releases import weights_root

EXIT_USAGE = 2


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog='panininet-web', description='Start the panininet web page (Gradio).',
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument('--host', default='127.0.0.1',
                   help='address to bind (0.0.0.0: every interface; the page then answers the whole network)')
    p.add_argument('--port', type=int, default=7860, help='port (0: any free port)')
    p.add_argument('--share', action='store_true', help="also open a public link through Gradio's share servers")
    p.add_argument('--model', action='append', default=[], metavar='VERSION=PATH',
                   help='offer this weights file as VERSION (e.g. mfr=my.pth; an .onnx file runs on onnxruntime); '
                        'repeatable; the release files present or downloadable are offered too')
    p.add_argument('--weights_dir', default=None,
                   help=f'weights folder (default: ${{PANINI_WEIGHTS_DIR}}, else {weights_root(None)})')
    p.add_argument('--no_download', action='store_true', help='never download weights')
    p.add_argument('--device', default='auto', choices=('auto', 'cpu', 'cuda', 'mps'))
    p.add_argument('--detector', default='retinaface_resnet50', choices=DETECTORS,
                   help="the page's default face detector")
    p.add_argument('--dlib_upsample', type=int, default=1, help='upsampling passes of the dlib detectors')
    p.add_argument('--batch_size', type=int, default=4, help='faces per network call')
    p.add_argument('--bg_tile', type=int, default=400, help='tile size of the background upsampler, 0: no tiles')
    p.add_argument('--max_upload_mb', type=float, default=200, help='largest uploaded file, in MB')
    p.add_argument('--max_output_pixels', type=float, default=DEFAULT_MAX_OUTPUT_PIXELS,
                   help='largest restored photo (width x height after upscale); a larger one gets a message')
    p.add_argument('--max_networks', type=int, default=2, help='networks kept loaded at once')
    p.add_argument('--temp_dir', default=None,
                   help='folder for the temporary folder of uploads and results (default: the system temp folder)')
    return p.parse_args(argv)


def check_args(args):
    """Refuse flags that cannot work (ValueError naming the flag)."""
    if not 0 <= args.port <= 65535:
        raise ValueError(f'--port {args.port}: give 0..65535.')
    for flag in ('batch_size', 'max_networks'):
        if getattr(args, flag) < 1:
            raise ValueError(f'--{flag} {getattr(args, flag)}: give at least 1.')
    for flag in ('max_upload_mb', 'max_output_pixels'):
        if not getattr(args, flag) > 0:
            raise ValueError(f'--{flag} {getattr(args, flag):g}: give a positive number.')
    if args.dlib_upsample < 0 or args.bg_tile < 0:
        raise ValueError('--dlib_upsample and --bg_tile: give 0 or more.')
    if args.temp_dir is not None and not osp.isdir(args.temp_dir):
        raise ValueError(f'--temp_dir {args.temp_dir}: no such folder.')


def build_service(args):
    """The :class:`~panininet.web.page.WebService` the flags ask for (ValueError when no network is available)."""
    import tempfile

    from panininet.web.jobs import RestorerCache, ServerConfig, Sessions, available_networks, parse_network_spec
    from panininet.web.page import WebService

    extra = [parse_network_spec(spec) for spec in args.model]
    networks = available_networks(extra, args.weights_dir, not args.no_download)
    if not networks:
        raise ValueError('no network to offer: give a weights file with --model VERSION=PATH, put a release file '
                         f'into {weights_root(args.weights_dir)}, or allow downloads (drop --no_download).')
    config = ServerConfig(device=args.device, weights_dir=args.weights_dir, allow_download=not args.no_download,
                          batch_size=args.batch_size, dlib_upsample=args.dlib_upsample, bg_tile=args.bg_tile,
                          max_output_pixels=args.max_output_pixels, max_upload_mb=args.max_upload_mb,
                          max_networks=args.max_networks)
    sessions = Sessions(tempfile.mkdtemp(prefix='panininet-web-', dir=args.temp_dir))
    return WebService(networks, RestorerCache(config), sessions, args.detector)


def start(argv=None):
    """Start the page without blocking (scripts, benchmarks): returns ``(page, service)``; ``page.local_url`` is
    its address; call :func:`stop` with both when done.

    Raises:
        ValueError: A flag it cannot work with, or no network to offer (the message is the user's line).
        OSError: The address cannot be served.
    """
    args = parse_args(argv)
    os.environ.setdefault('GRADIO_ANALYTICS_ENABLED', 'False')  # no calls home
    check_args(args)
    import panininet  # noqa: F401  (compat before basicsr)

    service = build_service(args)
    # Gradio's cache (uploads, files it serves) inside the server's own temporary folder, removed by stop()
    os.environ['GRADIO_TEMP_DIR'] = osp.join(service.sessions.root, 'gradio')
    try:
        from panininet.web.page import build_page, page_theme

        page = build_page(service)
        page.queue(default_concurrency_limit=8)
        page.launch(server_name=args.host, server_port=args.port or None, share=args.share, quiet=True,
                    prevent_thread_lock=True, show_error=False, theme=page_theme(),
                    max_file_size=int(args.max_upload_mb * 1e6), allowed_paths=[service.sessions.root])
    except BaseException:
        service.sessions.close()
        raise
    return page, service


def stop(page, service):
    """Close the server and remove its temporary folder."""
    try:
        page.close()
    finally:
        service.sessions.close()


def main(argv=None):
    args = parse_args(argv)
    try:
        page, service = start(argv)
    except ImportError as err:
        sys.stderr.write(f'Error: {err}; the page needs the [web] extra: pip install "panininet[web]".\n')
        return EXIT_USAGE
    except ValueError as err:
        sys.stderr.write(f'Error: {err}\n')
        return EXIT_USAGE
    except OSError:
        sys.stderr.write(f'Error: cannot serve on {args.host}:{args.port} (the port is taken, or the address is not '
                         "this machine's); choose another --port (0: any free one) or --host.\n")
        return EXIT_USAGE
    signal.signal(signal.SIGTERM, _interrupt)  # kill: stop and clean up, as Ctrl-C
    try:
        print(f'panininet web page: {page.local_url}', flush=True)
        if args.share and page.share_url:
            print(f'public link (anyone who has it can use the page): {page.share_url}', flush=True)
        print('Ctrl-C stops the server.', flush=True)
        page.block_thread()
    except KeyboardInterrupt:
        pass
    finally:
        stop(page, service)
    return 0


def _interrupt(signum, frame):
    raise KeyboardInterrupt(f'signal {signum}')


if __name__ == '__main__':
    sys.exit(main())
