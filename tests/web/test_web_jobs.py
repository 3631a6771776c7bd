"""panininet.web.jobs without a browser: the page's work equals the CLI's, bad inputs become notes, the network is
loaded once, one job per network, cancel, and the session folders go away."""
import os
import os.path as osp
import threading
import zipfile

import cv2
import numpy as np
import pytest

from panininet.web.jobs import (
    Network,
    PhotoSettings,
    RestorerCache,
    ServerConfig,
    Sessions,
    available_networks,
    parse_network_spec,
    restore_clip,
    restore_photos,
)

pytest.importorskip('dlib')

from web_helpers import CLI_FAST, clip_frames, probe_clip, write_clip  # noqa: E402

CONFIG = dict(device='cpu', allow_download=False, dlib_upsample=0)


@pytest.fixture(scope='module')
def network(tiny_model):
    return parse_network_spec(f'mfr={tiny_model}')


@pytest.fixture(scope='module')
def cache():
    return RestorerCache(ServerConfig(**CONFIG))


def settings(network, **kw):
    return PhotoSettings(network, **{'detector': 'dlib', 'weight': 0.8, **kw})


@pytest.fixture(scope='module')
def photos(face, tmp_path_factory):
    """One photo per form the CLI keeps (colour JPEG, gray, alpha, 16 bits) and one without a face."""
    folder = tmp_path_factory.mktemp('photos')
    cv2.imwrite(str(folder / 'color.jpg'), face)
    cv2.imwrite(str(folder / 'gray.png'), cv2.cvtColor(face, cv2.COLOR_BGR2GRAY))
    cv2.imwrite(str(folder / 'rgba.png'), np.dstack([face, np.full(face.shape[:2], 200, np.uint8)]))
    cv2.imwrite(str(folder / 'deep.png'), face.astype(np.uint16) * 257)
    cv2.imwrite(str(folder / 'noface.png'), np.full((50, 80, 3), 90, np.uint8))
    return folder


def unchanged(path):
    return cv2.imread(str(path), cv2.IMREAD_UNCHANGED)


def test_photos_equal_the_cli_in_every_form(cli, cache, network, photos, tiny_model, tmp_path):
    names = sorted(os.listdir(photos))
    out = tmp_path / 'cli'
    assert cli.main(['-i', str(photos), '-o', str(out), '--model_path', tiny_model, '-s', '2', '-w', '0.8',
                     *CLI_FAST]) == 0
    seen = []
    report = restore_photos(cache, settings(network), [(str(photos / n), n) for n in names], str(tmp_path / 'job'),
                            progress=lambda fraction, text: seen.append((fraction, text)))
    assert [r.name for r in report.results] == names
    for r in report.results:
        expected = unchanged(out / 'restored_imgs' / osp.basename(r.output))
        assert osp.basename(r.output) == r.name  # the input's own format and name
        got = unchanged(r.output)
        assert got.dtype == expected.dtype and got.shape == expected.shape
        assert np.array_equal(got, expected), r.name
        for f in r.faces:
            assert np.array_equal(unchanged(f), unchanged(out / 'restored_faces' / osp.basename(f)))
        before, after = cv2.imread(r.before, cv2.IMREAD_UNCHANGED), cv2.imread(r.after, cv2.IMREAD_UNCHANGED)
        assert before.shape == after.shape and before.dtype == after.dtype == np.uint8
    kept = {r.name: unchanged(r.output) for r in report.results}
    assert kept['rgba.png'].shape == (464, 350, 4) and kept['gray.png'].shape == (464, 350)
    assert kept['deep.png'].dtype == np.uint16
    assert report.notes == ['noface.png: no face found; the photo is returned as it came (only scaled by 2).']
    with zipfile.ZipFile(report.zip_path) as zf:
        listed = sorted(zf.namelist())
    assert listed == sorted([f'restored_imgs/{n}' for n in names]
                            + [f'restored_faces/{osp.splitext(n)[0]}_00.png' for n in names if n != 'noface.png'])
    texts = [t for _, t in seen]  # photos in groups of batch_size (4), as the CLI: 3 faces in the first
    assert texts.index('detect (photo 1 of 5)') < texts.index('restore (3 face(s))') < texts.index(
        'paste (photo 1 of 5)')  # detect -> restore -> paste
    assert [f for f, _ in seen] == sorted(f for f, _ in seen) and seen[-1] == (1.0, 'done')


def test_aligned_face(cli, cache, network, shared_dir, tiny_model, tmp_path):
    face = osp.join(shared_dir, 'testdata', 'cropped_faces', 'Julia_Roberts_crop.png')
    assert cli.main(['-i', face, '-o', str(tmp_path / 'cli'), '--model_path', tiny_model, '--aligned', '-w', '0.8',
                     *CLI_FAST]) == 0
    report = restore_photos(cache, settings(network, aligned=True), [(face, 'Julia_Roberts_crop.png')],
                            str(tmp_path / 'job'))
    assert not report.notes
    assert np.array_equal(unchanged(report.results[0].output),
                          unchanged(tmp_path / 'cli' / 'restored_faces' / 'Julia_Roberts_crop_00.png'))


def test_bad_inputs_are_notes(cache, network, face, tmp_path):
    good = tmp_path / 'good.png'
    cv2.imwrite(str(good), face)
    (tmp_path / 'cut.png').write_bytes(good.read_bytes()[:300])
    (tmp_path / 'empty.jpg').write_bytes(b'')
    (tmp_path / 'notes.txt').write_text('not an image')
    files = [(str(tmp_path / n), n) for n in ('cut.png', 'empty.jpg', 'notes.txt', 'good.png')]
    report = restore_photos(cache, settings(network), files, str(tmp_path / 'job'))
    assert [r.name for r in report.results] == ['good.png']  # one bad file costs only itself
    assert report.notes == ['cut.png: not an image (or a truncated or corrupt one); skipped.',
                            'empty.jpg: an empty file; skipped.',
                            'notes.txt: not an image (or a truncated or corrupt one); skipped.']
    small = RestorerCache(ServerConfig(**CONFIG, max_output_pixels=1e5, max_upload_mb=0.05))
    report = restore_photos(small, settings(network), [(str(good), 'good.png')], str(tmp_path / 'job2'))
    assert report.notes == ['good.png: 0 MB is over the upload limit of 0.05 MB; skipped.'] and not report.results
    small.config.max_upload_mb = 200
    report = restore_photos(small, settings(network), [(str(good), 'good.png')], str(tmp_path / 'job3'))
    assert report.notes == ['good.png: at upscale 2 the result would be 350 x 464 = 0 MP, over the limit of 0.1 MP; '
                            'skipped (lower the upscale).']
    assert restore_photos(cache, settings(network, weight=2), [(str(good), 'g.png')], str(tmp_path / 'j')).notes == [
        'Error: weight must be in [0, 1] (1 keeps the most of the input, 0 the most of the prior), got 2.0.']
    broken = tmp_path / 'broken.pth'
    broken.write_bytes(b'PK\x03\x04 not a checkpoint')
    report = restore_photos(cache, settings(Network('mfr', str(broken), 'pytorch', 'mfr: broken.pth')),
                            [(str(good), 'good.png')], str(tmp_path / 'job4'))
    assert len(report.notes) == 1 and report.notes[0].startswith('Error: ') and 'broken.pth' in report.notes[0]
    assert not report.results


def test_network_loaded_once_and_one_job_per_network(network, face, tmp_path):
    loads = []
    base = RestorerCache(ServerConfig(**CONFIG))

    def counting_loader(net, config):
        loads.append(net)
        return base.loader(net, config)

    cache = RestorerCache(ServerConfig(**CONFIG), loader=counting_loader)
    photo = tmp_path / 'p.png'
    cv2.imwrite(str(photo), face)
    for upscale in (1, 2, 1):
        assert restore_photos(cache, settings(network, upscale=upscale), [(str(photo), 'p.png')],
                              str(tmp_path / f'j{upscale}')).results
    assert loads == [network]  # three jobs, two restorers, one network
    _, lock, _ = cache.get(settings(network))
    cancel = threading.Event()
    waiting = []
    lock.acquire()  # a job is running on this network
    try:
        worker = threading.Thread(target=lambda: waiting.append(restore_photos(
            cache, settings(network), [(str(photo), 'p.png')], str(tmp_path / 'w'),
            progress=lambda f, t: waiting.append(t), cancel=cancel)))
        worker.start()
        while 'waiting: another job is running on this network' not in waiting:
            worker.join(0.05)
        cancel.set()
        worker.join(30)
    finally:
        lock.release()
    assert waiting[-1].notes == ['Cancelled before it started; nothing was restored.']


def test_cancel_between_steps(cache, network, photos, tmp_path):
    cancel = threading.Event()

    def press_cancel_after_detect(fraction, text):
        if text.startswith('detect'):
            cancel.set()

    files = [(str(photos / n), n) for n in ('color.jpg', 'gray.png')]
    report = restore_photos(cache, settings(network), files, str(tmp_path / 'job'), press_cancel_after_detect, cancel)
    assert report.notes == ['Cancelled: 0 photo(s) finished before, the rest was not restored.']
    assert not report.results and report.zip_path is None


def test_clip_with_sound_and_cancel_and_bad_codec(cache, network, face, tmp_path):
    pytest.importorskip('av')
    clip = write_clip(tmp_path / 'pan.mp4', clip_frames(face, 6))
    frames = []
    report = restore_clip(cache, settings(network), clip, 'pan.mp4', str(tmp_path / 'job'),
                          progress=lambda f, t: frames.append(t))
    assert report.output == str(tmp_path / 'job' / 'restored_videos' / 'pan.mp4')
    assert probe_clip(report.output) == (6, ['aac'])
    assert report.faces == 6 and frames[-1] == 'frame 6 of 6'
    cancel = threading.Event()

    def cancel_at_third(fraction, text):
        if text.startswith('frame 3'):
            cancel.set()

    report = restore_clip(cache, settings(network), clip, 'pan.mp4', str(tmp_path / 'job2'), cancel_at_third, cancel)
    assert report.notes == ['Cancelled after 3 frame(s); the partial clip was discarded.'] and report.output is None
    assert os.listdir(tmp_path / 'job2' / 'restored_videos') == []  # no partial file
    (tmp_path / 'x.mp4').write_bytes(b'\x00' * 100)
    report = restore_clip(cache, settings(network), str(tmp_path / 'x.mp4'), 'x.mp4', str(tmp_path / 'job3'))
    assert len(report.notes) == 1 and report.notes[0].startswith('x.mp4: not a readable video')
    assert str(tmp_path) not in report.notes[0]  # the user's name, not the server's path


def test_sessions_and_network_list(tmp_path, tiny_model):
    sessions = Sessions(str(tmp_path / 'root'))
    job, cancel = sessions.new_job('a')
    open(osp.join(job, 'x.png'), 'wb').close()
    job2, _ = sessions.new_job('a')
    assert not osp.exists(job) and osp.isdir(job2)  # one result at a time per session
    sessions.cancel('a')
    assert cancel.is_set()
    sessions.end('a')
    assert not osp.exists(sessions.folder('a'))
    sessions.new_job('b')
    sessions.close()
    assert not osp.exists(tmp_path / 'root')
    (tmp_path / 'w').mkdir()
    (tmp_path / 'w' / 'panini_sr_latest.pth').write_bytes(b'')
    labels = [n.label for n in available_networks([parse_network_spec(f'mmrb={tiny_model}')], str(tmp_path / 'w'),
                                                  allow_download=False)]
    assert labels == ['mmrb: tiny_panini.pth', 'sr16 (release file)']
    assert 'mfr (release, downloaded on first use)' in [n.label for n in available_networks([], str(tmp_path / 'w'))]
    onnx = tmp_path / 'm.onnx'
    onnx.write_bytes(b'')
    assert parse_network_spec(f'mfr={onnx}').backend == 'onnxruntime'
    for bad, message in (('mfr', 'give VERSION=PATH'), ('nope=x.pth', 'unknown version'),
                         (f'mfr={tmp_path}/none.pth', 'no such file')):
        with pytest.raises(ValueError, match=message):
            parse_network_spec(bad)


def test_server_flags_refused_in_one_line(capsys, tiny_model):
    from panininet.web.server import main

    assert main(['--port', '70000']) == 2
    assert main(['--model', 'mfr=/no/such.pth']) == 2
    assert main(['--no_download', '--weights_dir', '/no/such/folder']) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == ['Error: --port 70000: give 0..65535.', 'Error: --model mfr=/no/such.pth: no such file.',
                   'Error: no network to offer: give a weights file with --model VERSION=PATH, put a release file '
                   'into /no/such/folder, or allow downloads (drop --no_download).']


@pytest.mark.filterwarnings('ignore::ResourceWarning', 'ignore::UserWarning')  # the other thread's, outside the job
def test_notes_hold_only_our_warnings(network, face, tmp_path):
    """Warnings that other threads give while a job records its own (asyncio's 'unclosed event loop' when the
    garbage collector takes one of Gradio's loops, a library's UserWarning) are not the user's notes."""
    import warnings

    stop = threading.Event()

    def other_thread():  # warns all through the job, as the server's other threads may
        while not stop.is_set():
            warnings.warn_explicit('unclosed event loop <_UnixSelectorEventLoop>', ResourceWarning,
                                   osp.join(osp.dirname(os.__file__), 'asyncio', 'base_events.py'), 1)
            warnings.warn_explicit("The parameter 'pretrained' is deprecated", UserWarning,
                                   osp.join(osp.dirname(np.__file__), 'other.py'), 1)
            stop.wait(0.0005)

    rgba = np.dstack([face, np.full(face.shape[:2], 255, np.uint8)])
    cv2.imwrite(str(tmp_path / 'face.png'), rgba)
    thread = threading.Thread(target=other_thread)
    thread.start()
    try:  # a new cache: the restorer is built, and its notes recorded, while the other thread warns
        report = restore_photos(RestorerCache(ServerConfig(**CONFIG)), settings(network),
                                [(str(tmp_path / 'face.png'), 'face.jpg')], str(tmp_path / 'job'))
    finally:
        stop.set()
        thread.join()
    assert report.results
    assert report.notes == ['face.jpg: jpg cannot hold alpha; dropping it (use a PNG input to keep it).']
