"""The page in a real headless browser: Debian's chromium driven by Playwright, the server started as a user starts
it (``python app.py``, bound to 127.0.0.1) with a tiny random network.

Without chromium, Playwright or Gradio the module is skipped with one line; with ``PANINI_REQUIRE_BROWSER=1`` (set
by ``.ci/run``) it fails instead.
"""
import os
import os.path as osp
import queue
import signal
import subprocess
import sys
import threading
import urllib.request
import zipfile

import cv2
import numpy as np
import pytest

CHROMIUM = '/usr/bin/chromium'
CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
                 '--disable-background-networking', '--disable-component-update', '--disable-sync']


def _missing():
    missing = [] if osp.isfile(CHROMIUM) else [CHROMIUM]
    for module in ('playwright.sync_api', 'gradio', 'dlib', 'av'):
        try:
            __import__(module)
        except ImportError:
            missing.append(module.split('.')[0])
    return missing


if _missing():
    _msg = f'no browser for the web page tests ({", ".join(_missing())} missing)'
    if os.environ.get('PANINI_REQUIRE_BROWSER', '') not in ('', '0'):
        pytest.fail(f'{_msg} and PANINI_REQUIRE_BROWSER=1', pytrace=False)
    pytest.skip(_msg, allow_module_level=True)

from playwright.sync_api import sync_playwright  # noqa: E402
from web_helpers import CLI_FAST, REPO_ROOT, clip_frames, probe_clip, write_clip  # noqa: E402

TIMEOUT_MS = 120_000  # a job on 2 busy cores


def _ctrl_c_as_in_a_terminal():
    """In the server's process before it starts: SIGINT at its default, as in a terminal.

    A test run started in the background (``nohup``, ``&`` in a script) ignores SIGINT, the server would inherit
    that, and Python then never turns SIGINT into KeyboardInterrupt: the Ctrl-C this fixture sends would be lost.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.fixture(scope='module')
def server(tiny_model, tmp_path_factory):
    """``python app.py`` on 127.0.0.1 with the tiny network; yields its URL. On exit: Ctrl-C, and its temporary
    folder (uploads, results, Gradio's cache) must be gone."""
    temp = tmp_path_factory.mktemp('server_tmp')
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [REPO_ROOT, os.environ.get('PYTHONPATH')])),
               OMP_NUM_THREADS='1', GRADIO_ANALYTICS_ENABLED='False', PYTHONFAULTHANDLER='1')
    proc = subprocess.Popen([sys.executable, 'app.py', '--port', '0', '--model', f'mfr={tiny_model}', '--device',
                             'cpu', '--no_download', '--detector', 'retinaface_resnet50', '--dlib_upsample', '0',
                             '--temp_dir', str(temp)],
                            cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            preexec_fn=_ctrl_c_as_in_a_terminal)
    lines = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True).start()
    seen, url = [], None
    try:
        while url is None:
            line = lines.get(timeout=180)
            seen.append(line)
            if line.startswith('panininet web page: '):
                url = line.split(': ', 1)[1].strip()
    except queue.Empty:
        proc.kill()
        pytest.fail('the server did not start:\n' + ''.join(seen))
    assert url.startswith('http://127.0.0.1:')  # bound to the loopback only
    yield url
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:  # show where it hangs: faulthandler prints every thread's stack on SIGABRT
        proc.send_signal(signal.SIGABRT)
        proc.wait(30)
        rest = []
        try:
            while True:
                rest.append(lines.get(timeout=5))
        except queue.Empty:
            pass
        pytest.fail('the server did not stop within 60 s of Ctrl-C:\n' + ''.join(seen + rest)[-6000:])
    rest = []
    while not lines.empty():
        rest.append(lines.get())
    log = ''.join(seen + rest)
    assert 'Traceback' not in log, log
    assert os.listdir(temp) == [], 'the server left files behind'


@pytest.fixture(scope='module')
def browser(server, tmp_path_factory):
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp('profile')), executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS,
            accept_downloads=True)
        yield context
        context.close()


@pytest.fixture
def page(browser, server):
    """A fresh page (a new session) on the server, with the offline detector chosen."""
    page = browser.new_page()
    page.goto(server)
    page.wait_for_selector('#restore')
    page.get_by_label('dlib', exact=True).check()
    yield page
    page.close()


def fetch(url):
    with urllib.request.urlopen(url, timeout=60) as r:
        return r.read()


def decode(data):
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)


def upload(page, component, path):
    """Put ``path`` into the file input of ``component`` (e.g. '#photos') and wait until it is uploaded.

    Gradio lists an uploaded file as ``<span>stem</span> <span>.ext</span>`` (text 'face .png') with a download
    link named after the file; the link appears once the server holds it. (A text match on 'face.png' only meets
    the transient "uploading" line, which a fast upload may replace before it is seen.)
    """
    page.locator(f'{component} input[type=file]').set_input_files(str(path))
    page.wait_for_selector(f'{component} a[download="{osp.basename(str(path))}"]', timeout=TIMEOUT_MS)


def download(page, selector):
    with page.expect_download(timeout=TIMEOUT_MS) as info:
        page.locator(selector).first.click()
    return info.value.path()


def test_photo_equals_cli_with_downloads(page, cli, tiny_model, face, tmp_path):
    photo = tmp_path / 'face.png'
    cv2.imwrite(str(photo), face)
    out = tmp_path / 'cli'
    assert cli.main(['-i', str(photo), '-o', str(out), '--model_path', tiny_model, '-s', '2', '-w', '0.8',
                     *CLI_FAST]) == 0
    expected = cv2.imread(str(out / 'restored_imgs' / 'face.png'), cv2.IMREAD_UNCHANGED)

    upload(page, '#photos', photo)
    page.locator('#weight input[type=range]').fill('0.8')  # move the fidelity slider
    assert page.locator('#weight input[type=number]').input_value() == '0.8'
    page.click('#restore')
    page.wait_for_selector('#compare img[src$="face_after.png"]', timeout=TIMEOUT_MS)
    assert 'Restored 1 photo(s)' in page.inner_text('#notes')
    shown = decode(fetch(page.locator('#compare img[src$="face_after.png"]').get_attribute('src')))
    assert np.array_equal(shown, expected)  # the page shows the CLI's result
    before = decode(fetch(page.locator('#compare img[src$="face_before.png"]').get_attribute('src')))
    assert before.shape == expected.shape and not np.array_equal(before, expected)
    assert page.locator('#faces img').count() == 1  # the restored face in the gallery

    got = cv2.imread(download(page, '#downloads a[href$="/face.png"]'), cv2.IMREAD_UNCHANGED)
    assert np.array_equal(got, expected)  # the full-size file equals the CLI's
    with zipfile.ZipFile(download(page, '#downloads a[href$="/restored.zip"]')) as zf:
        assert sorted(zf.namelist()) == ['restored_faces/face_00.png', 'restored_imgs/face.png']
        assert np.array_equal(decode(zf.read('restored_imgs/face.png')), expected)
        assert np.array_equal(decode(zf.read('restored_faces/face_00.png')),
                              cv2.imread(str(out / 'restored_faces' / 'face_00.png')))


def test_broken_file_gets_a_message(page, face, tmp_path):
    _, png = cv2.imencode('.png', face)
    bad = tmp_path / 'broken.png'
    bad.write_bytes(png.tobytes()[:300])  # truncated
    upload(page, '#photos', bad)
    page.click('#restore')
    page.wait_for_selector('#notes >> text=broken.png', timeout=TIMEOUT_MS)
    assert page.inner_text('#notes').strip() == 'broken.png: not an image (or a truncated or corrupt one); skipped.'
    assert 'Traceback' not in page.content()


def test_clip_with_sound(page, face, tmp_path):
    clip = write_clip(tmp_path / 'pan.mp4', clip_frames(face, 6))
    page.get_by_role('tab', name='Video').click()
    upload(page, '#clip', clip)
    page.click('#restore_clip')
    page.wait_for_selector('#clip_file a[href$="/pan.mp4"]', timeout=TIMEOUT_MS)
    assert '6 frames, 6 face(s), audio: copied aac' in page.inner_text('#notes_clip')
    assert probe_clip(download(page, '#clip_file a[href$="/pan.mp4"]')) == (6, ['aac'])
    assert page.locator('#video video').count() == 1  # and the page plays it
