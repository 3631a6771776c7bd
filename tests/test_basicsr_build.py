"""The packaging step that builds basicsr 1.4.2's released sdist with its version reading fixed (Python >= 3.13).

``third_party/basicsr`` is named by the README's install command; its backend is loaded from the repo as pip loads
it (``backend-path``). The end-to-end build runs on a miniature sdist laid out as basicsr's (nothing downloads in a
test); the real released file is checked wherever an install left it in the cache.
"""
import hashlib
import importlib.util
import io
import os
import subprocess
import sys
import tarfile
import textwrap
import zipfile

import pytest
from helpers import REPO_ROOT

BACKEND_DIR = os.path.join(REPO_ROOT, 'third_party', 'basicsr')


def _load_backend():
    spec = importlib.util.spec_from_file_location('basicsr_release_backend',
                                                  os.path.join(BACKEND_DIR, 'basicsr_release_backend.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


backend = _load_backend()

# basicsr 1.4.2's setup.py around the broken function, reduced to what a wheel build needs
MINI_SETUP_PY = """from setuptools import find_packages, setup

version_file = 'basicsr/version.py'


{get_version}

if __name__ == '__main__':
    setup(name='basicsr', version=get_version(), packages=find_packages(), install_requires=['addict'])
"""


def _run_get_version(source, tmp_path):
    """Execute a ``get_version`` definition as basicsr's setup.py does (module level, a version file in cwd)."""
    (tmp_path / 'basicsr').mkdir(exist_ok=True)
    (tmp_path / 'basicsr' / 'version.py').write_text("__version__ = '1.4.2'\n")
    namespace = {'version_file': str(tmp_path / 'basicsr' / 'version.py')}
    exec(compile(source, 'setup.py', 'exec'), namespace)
    return namespace['get_version']()


def test_the_released_get_version_breaks_on_313_and_the_fix_reads_it_everywhere(tmp_path):
    fixed = backend.fix_setup_py('import os\n\n\n' + backend.BROKEN_GET_VERSION + '\nX = 1\n')
    assert fixed == 'import os\n\n\n' + backend.FIXED_GET_VERSION + '\nX = 1\n'  # nothing else changes
    assert _run_get_version(fixed, tmp_path) == '1.4.2'
    if sys.version_info >= (3, 13):  # PEP 667: locals() is a fresh snapshot, exec's name is lost
        with pytest.raises(KeyError, match='__version__'):
            _run_get_version(backend.BROKEN_GET_VERSION, tmp_path)
    else:
        assert _run_get_version(backend.BROKEN_GET_VERSION, tmp_path) == '1.4.2'


@pytest.mark.parametrize('text', ['', 'def get_version():\n    return "1.4.3"\n', backend.BROKEN_GET_VERSION * 2])
def test_fix_refuses_any_other_setup_py(text):
    with pytest.raises(backend.BuildError, match='only fixes the released 1.4.2'):
        backend.fix_setup_py(text)


def _mini_sdist(tmp_path, top='basicsr-1.4.2'):
    buf = io.BytesIO()
    files = {f'{top}/setup.py': MINI_SETUP_PY.format(get_version=backend.BROKEN_GET_VERSION),
             f'{top}/basicsr/__init__.py': 'from .version import __version__\n',
             f'{top}/basicsr/version.py': "__version__ = '1.4.2'\n"}
    with tarfile.open(fileobj=buf, mode='w:gz') as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    path = tmp_path / 'basicsr-1.4.2.tar.gz'
    path.write_bytes(buf.getvalue())
    return path, hashlib.sha256(buf.getvalue()).hexdigest()


def _call_hook(hook, out_dir, sdist, sha256, env=None):
    """Call a PEP 517 hook of the backend in a fresh interpreter (as pip does), the pinned sha256 replaced."""
    code = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {BACKEND_DIR!r})
        import basicsr_release_backend as b
        b.SDIST_SHA256 = {sha256!r}
        fetch = b.fetch_sdist
        b.fetch_sdist = lambda sha256=None: fetch(b.SDIST_SHA256)
        print('RESULT', b.{hook}({str(out_dir)!r}))
    """)
    env = dict(os.environ, PANINI_BASICSR_SDIST=str(sdist), **(env or {}))
    return subprocess.run([sys.executable, '-c', code], cwd=str(out_dir), env=env, capture_output=True, text=True,
                          timeout=300)


def test_backend_builds_a_wheel_of_the_fixed_sources(tmp_path):
    sdist, sha = _mini_sdist(tmp_path)
    out = tmp_path / 'wheels'
    out.mkdir()
    proc = _call_hook('build_wheel', out, sdist, sha)
    assert proc.returncode == 0, proc.stderr[-3000:]
    name = proc.stdout.split('RESULT ')[-1].strip()
    assert name.startswith('basicsr-1.4.2-') and name.endswith('.whl')
    with zipfile.ZipFile(out / name) as whl:
        metadata = whl.read('basicsr-1.4.2.dist-info/METADATA').decode()
        assert 'Name: basicsr' in metadata and 'Version: 1.4.2' in metadata and 'Requires-Dist: addict' in metadata
        assert whl.read('basicsr/version.py') == b"__version__ = '1.4.2'\n"  # the released sources, as they were
    # the input is left as it was; the build folder holds only the wheel (sources unpacked in a temporary folder)
    assert hashlib.sha256(sdist.read_bytes()).hexdigest() == sha
    assert sorted(os.listdir(out)) == [name]


def test_backend_refuses_a_file_that_is_not_the_release(tmp_path, monkeypatch):
    sdist, _ = _mini_sdist(tmp_path)
    out = tmp_path / 'wheels'
    out.mkdir()
    proc = _call_hook('build_wheel', out, sdist, '0' * 64)
    assert proc.returncode != 0 and 'is not that of the released basicsr-1.4.2.tar.gz' in proc.stderr
    assert os.listdir(out) == []
    monkeypatch.setenv(backend.ENV_SDIST, str(tmp_path / 'absent.tar.gz'))
    with pytest.raises(backend.BuildError, match='no such file'):
        backend.fetch_sdist()


def test_backend_refuses_an_archive_with_other_members(tmp_path):
    sdist, _ = _mini_sdist(tmp_path, top='other-1.0')
    with pytest.raises(backend.BuildError, match="unexpected member 'other-1.0"):
        backend.unpack_fixed(str(sdist), str(tmp_path / 'src'))


def test_index_page_is_read_for_the_sdist_link(tmp_path):
    page = tmp_path / 'simple' / 'basicsr'
    page.mkdir(parents=True)
    (page / 'index.html').write_text('<html><body><a href="../../files/basicsr-1.4.1.tar.gz#sha256=aa">x</a>'
                                     '<a href="../../files/basicsr-1.4.2.tar.gz#sha256=bb">y</a></body></html>')
    index = (tmp_path / 'simple').as_uri()
    assert backend.sdist_url(index) == (tmp_path / 'files' / 'basicsr-1.4.2.tar.gz').as_uri()
    (page / 'index.html').write_text('<a href="basicsr-1.4.1.tar.gz">x</a>')
    with pytest.raises(backend.BuildError, match='lists no basicsr-1.4.2.tar.gz'):
        backend.sdist_url(index)


def test_the_released_sdist_in_the_cache_is_the_one_fixed(tmp_path, monkeypatch):
    """The file an install downloaded (PyPI's basicsr-1.4.2.tar.gz) has the pinned hash and the function fixed."""
    cached = os.path.join(backend.cache_dir(), backend.SDIST)
    if not os.path.isfile(cached):
        pytest.skip(f'{cached} absent (made by the README install, which builds through third_party/basicsr)')
    backend.verify(cached)
    source = backend.unpack_fixed(cached, str(tmp_path))
    with open(os.path.join(source, 'setup.py'), encoding='utf-8') as f:
        text = f.read()
    assert backend.FIXED_GET_VERSION in text and backend.BROKEN_GET_VERSION not in text
    start = text.index('def get_version():')
    monkeypatch.chdir(source)  # basicsr's version_file is relative to its source folder
    namespace = {}
    exec(compile("version_file = 'basicsr/version.py'\n" + text[start:text.index('\n\n\n', start)], 'setup.py',
                 'exec'), namespace)
    assert namespace['get_version']() == '1.4.2'
