"""PEP 517 build backend: basicsr 1.4.2's released sdist from PyPI, built with one fix to its version reading.

basicsr 1.4.2 (its only release) cannot be built on Python >= 3.13: its ``setup.py`` reads the version with ::

    exec(compile(f.read(), version_file, 'exec'))
    return locals()['__version__']

and since Python 3.13 (PEP 667) ``locals()`` in a function returns a fresh snapshot each call, so the name that
``exec`` wrote is gone (``KeyError: '__version__'``, "metadata generation failed"). This backend

1. takes the released sdist ``basicsr-1.4.2.tar.gz``: the file named by ``$PANINI_BASICSR_SDIST`` (offline
   installs), else the copy cached by an earlier build, else a download from the package index
   (``$PIP_INDEX_URL``, else PyPI); the file must have the sha256 PyPI lists for it;
2. unpacks it into a temporary folder and replaces that one function (:func:`fix_setup_py`, which refuses any
   other ``setup.py``), so ``exec`` writes into a dict of its own;
3. hands the hook to setuptools' own backend (``setuptools.build_meta``, which is what pip uses for the sdist)
   inside that folder.

Nothing else of basicsr changes: the wheel holds the released sources. pip uses it because the README's install
command names this folder (``./third_party/basicsr``) next to ``-e ".[test]"``; ``--no-build-isolation`` there
lets the build see the torch installed first, as with basicsr's own sdist. Drop the folder once basicsr releases
a fixed version. This module uses the standard library and setuptools only (it runs before anything else is
installed).
"""
import contextlib
import hashlib
import html.parser
import os
import shutil
import sys
import tarfile
import tempfile
import urllib.parse
import urllib.request

NAME = 'basicsr'
VERSION = '1.4.2'
SDIST = f'{NAME}-{VERSION}.tar.gz'
# sha256 of basicsr-1.4.2.tar.gz as listed by https://pypi.org/simple/basicsr/
SDIST_SHA256 = 'b89b595a87ef964cda9913b4d99380ddb6554c965577c0c10cb7b78e31301e87'
ENV_SDIST = 'PANINI_BASICSR_SDIST'
DEFAULT_INDEX = 'https://pypi.org/simple'

# basicsr 1.4.2's setup.py, verbatim, and its replacement (the one fix; the same as basicsr's open PRs)
BROKEN_GET_VERSION = """def get_version():
    with open(version_file, 'r') as f:
        exec(compile(f.read(), version_file, 'exec'))
    return locals()['__version__']
"""
FIXED_GET_VERSION = """def get_version():
    namespace = {}
    with open(version_file, 'r') as f:
        exec(compile(f.read(), version_file, 'exec'), namespace)
    return namespace['__version__']
"""


class BuildError(RuntimeError):
    """The released sdist could not be found, verified or fixed; the message says what to do."""


def fix_setup_py(text):
    """Replace basicsr 1.4.2's ``get_version`` (``locals()`` after ``exec``) by one that reads a dict of its own.

    Args:
        text (str): The contents of basicsr 1.4.2's ``setup.py``.

    Returns:
        str: The same text with only ``get_version`` replaced.

    Raises:
        BuildError: If the function does not occur exactly once (not the released 1.4.2 ``setup.py``).
    """
    count = text.count(BROKEN_GET_VERSION)
    if count != 1:
        raise BuildError(f'basicsr setup.py: expected get_version() of basicsr {VERSION} once, found it {count} '
                         'times; this backend only fixes the released 1.4.2 sdist.')
    return text.replace(BROKEN_GET_VERSION, FIXED_GET_VERSION)


def cache_dir():
    """Where a downloaded sdist is kept: ``$XDG_CACHE_HOME/panininet/sdist``, else ``~/.cache/panininet/sdist``."""
    root = os.environ.get('XDG_CACHE_HOME') or os.path.join(os.path.expanduser('~'), '.cache')
    return os.path.join(root, 'panininet', 'sdist')


def sha256_of(path):
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()


def verify(path, sha256=SDIST_SHA256):
    """Raise :class:`BuildError` unless ``path`` has the expected sha256."""
    got = sha256_of(path)
    if got != sha256:
        raise BuildError(f'{path}: sha256 {got} is not that of the released {SDIST} ({sha256}); '
                         f'delete it (or point ${ENV_SDIST} at the file from PyPI) and install again.')


class _Links(html.parser.HTMLParser):
    """The ``href`` of every ``<a>`` of a PEP 503 simple-index page."""

    def __init__(self):
        super().__init__()
        self.hrefs = []

    def handle_starttag(self, tag, attrs):
        if tag == 'a':
            self.hrefs += [v for k, v in attrs if k == 'href' and v]


def index_url():
    """The package index pip is told to use (``$PIP_INDEX_URL``), else PyPI's simple index."""
    return (os.environ.get('PIP_INDEX_URL') or DEFAULT_INDEX).rstrip('/')


def sdist_url(index=None):
    """The address of ``basicsr-1.4.2.tar.gz`` on a PEP 503 simple index (PyPI's by default)."""
    page = f'{index or index_url()}/{NAME}/'
    parts = urllib.parse.urlsplit(page)
    if parts.scheme == 'file' and os.path.isdir(urllib.request.url2pathname(parts.path)):
        page += 'index.html'  # a local index folder, as pip reads it
    with urllib.request.urlopen(page, timeout=60) as response:
        parser = _Links()
        parser.feed(response.read().decode('utf-8', 'replace'))
    for href in parser.hrefs:
        if urllib.parse.urlsplit(href).path.rsplit('/', 1)[-1] == SDIST:
            return urllib.parse.urljoin(page, href.split('#', 1)[0])
    raise BuildError(f'{page} lists no {SDIST}; download it from https://pypi.org/project/{NAME}/{VERSION}/#files '
                     f'and set ${ENV_SDIST} to its path.')


def fetch_sdist(sha256=SDIST_SHA256):
    """The released sdist, verified: ``$PANINI_BASICSR_SDIST``, else the cached copy, else downloaded into the cache.

    Returns:
        str: Path of ``basicsr-1.4.2.tar.gz``.
    """
    given = os.environ.get(ENV_SDIST)
    if given:
        if not os.path.isfile(given):
            raise BuildError(f'${ENV_SDIST}={given}: no such file; point it at {SDIST} from PyPI.')
        verify(given, sha256)
        return given
    cached = os.path.join(cache_dir(), SDIST)
    if os.path.isfile(cached):
        verify(cached, sha256)
        return cached
    url = sdist_url()
    os.makedirs(cache_dir(), exist_ok=True)
    fd, part = tempfile.mkstemp(prefix=SDIST + '.', suffix='.part', dir=cache_dir())
    try:
        with os.fdopen(fd, 'wb') as out, urllib.request.urlopen(url, timeout=180) as response:
            shutil.copyfileobj(response, out)
        verify(part, sha256)
        os.replace(part, cached)  # atomic: a cached file is always complete and verified
    finally:
        if os.path.exists(part):
            os.remove(part)
    return cached


def unpack_fixed(sdist, dest):
    """Unpack ``sdist`` into ``dest`` and apply :func:`fix_setup_py`.

    Returns:
        str: The source folder (``dest/basicsr-1.4.2``).
    """
    with tarfile.open(sdist, 'r:gz') as tar:
        top = f'{NAME}-{VERSION}'
        for member in tar.getmembers():
            if not (member.name == top or member.name.startswith(top + '/')) or '..' in member.name.split('/'):
                raise BuildError(f'{sdist}: unexpected member {member.name!r}; not the released {SDIST}.')
        if sys.version_info >= (3, 12):
            tar.extractall(dest, filter='data')
        else:
            tar.extractall(dest)  # members checked above
    source = os.path.join(dest, top)
    setup_py = os.path.join(source, 'setup.py')
    with open(setup_py, encoding='utf-8') as f:
        text = f.read()
    with open(setup_py, 'w', encoding='utf-8') as f:
        f.write(fix_setup_py(text))
    return source


@contextlib.contextmanager
def _in_fixed_source():
    """Run the body inside a fixed copy of the released sources (cwd and ``sys.path[0]``), then clean up."""
    sdist = fetch_sdist()
    old_cwd = os.getcwd()
    with tempfile.TemporaryDirectory(prefix='basicsr-fixed-') as tmp:
        source = unpack_fixed(sdist, tmp)
        os.chdir(source)
        sys.path.insert(0, source)
        try:
            yield
        finally:
            sys.path.remove(source)
            os.chdir(old_cwd)


def _delegate(hook, *dirs, **kwargs):
    import setuptools.build_meta
    dirs = [os.path.abspath(d) for d in dirs]  # the frontend's folders, before we change directory
    with _in_fixed_source():
        return getattr(setuptools.build_meta, hook)(*dirs, **kwargs)


# ---------------------------------------------------------------------------------------------------------------------
# PEP 517 hooks: setuptools' own, run in the fixed sources
# ---------------------------------------------------------------------------------------------------------------------
def get_requires_for_build_wheel(config_settings=None):
    return _delegate('get_requires_for_build_wheel', config_settings=config_settings)


def get_requires_for_build_sdist(config_settings=None):
    return _delegate('get_requires_for_build_sdist', config_settings=config_settings)


def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):
    return _delegate('prepare_metadata_for_build_wheel', metadata_directory, config_settings=config_settings)


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    # the metadata folder of an earlier call lies in that call's (deleted) temporary sources: build afresh
    return _delegate('build_wheel', wheel_directory, config_settings=config_settings)


def build_sdist(sdist_directory, config_settings=None):
    return _delegate('build_sdist', sdist_directory, config_settings=config_settings)
