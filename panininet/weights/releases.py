"""Where model weights come from: resolution, download of the authors' release, offline messages.

Resolution order for the restoration network (:func:`resolve_model_path`):

1. an explicit ``model_path`` (our format, or an official MMEditing checkpoint: converted once and cached under
   ``<weights root>/converted/``, see :func:`panininet.weights.panini_checkpoint.prepare_model_file`);
2. the release file in the weights root: ``weights_dir`` argument, else env ``PANINI_WEIGHTS_DIR``, else
   ``~/.cache/panininet`` (:func:`weights_root`);
3. a download of the authors' Google Drive release into that root (``allow_download=True``). The SHA-256 of the
   downloaded file is recorded beside it (``<file>.sha256``) and checked whenever the file is used again.

facexlib's detector / parsing weights live in ``<weights root>/facexlib`` (never in the working directory or in
site-packages). When a file is missing and cannot be downloaded, :class:`WeightsNotFoundError` names the file, the
URL and the folder to put it in; the CLI prints that message and exits with status 2 (no traceback).
"""
import hashlib
import os
import os.path as osp
import urllib.error
import urllib.request
from dataclasses import dataclass

from panininet.atomic import atomic_path

ENV_WEIGHTS_DIR = 'PANINI_WEIGHTS_DIR'
DEFAULT_WEIGHTS_DIR = osp.join('~', '.cache', 'panininet')


class WeightsNotFoundError(RuntimeError):
    """A weights file is missing and could not be downloaded. ``str(err)`` is the message for the user."""


@dataclass(frozen=True)
class Release:
    """A released weights file.

    Attributes:
        file_name (str): Name of the file in the weights root.
        url (str): Where to download it by hand.
        gdrive_id (str | None): Google Drive file id (the authors' release), None for a plain URL.
    """
    file_name: str
    url: str
    gdrive_id: str = None


def _gdrive(file_id):
    return f'https://drive.google.com/uc?export=download&id={file_id}'


# The authors' release (ids from the official README). The files are official MMEditing checkpoints.
RELEASES = {
    'mfr': Release('panini_mfr_latest.pth', _gdrive('1gGxbIi6oGScxvHjJvmlE4uGPKusq746F'),
                   '1gGxbIi6oGScxvHjJvmlE4uGPKusq746F'),
    'sr16': Release('panini_sr_latest.pth', _gdrive('1o3IrG31-9tcDChL3-FTduBnrduPnKZQA'),
                    '1o3IrG31-9tcDChL3-FTduBnrduPnKZQA'),
    # GFPGAN's releases, used only when the gfpgan package is installed (``-v gfpgan1.3|gfpgan1.4``)
    'gfpgan1.3': Release('GFPGANv1.3.pth', 'https://github.com/TencentARC/GFPGAN/releases/download/v1.3.0/GFPGANv1.3.pth'),
    'gfpgan1.4': Release('GFPGANv1.4.pth', 'https://github.com/TencentARC/GFPGAN/releases/download/v1.3.0/GFPGANv1.4.pth'),
    # GPEN's release (URL from GPEN's weights/README.md), ``-v gpen512``; MMRB-Net (``-v mmrb``) has no release
    'gpen512': Release('GPEN-BFR-512.pth',
                       'https://public-vigen-video.oss-cn-shanghai.aliyuncs.com/robin/models/GPEN-BFR-512.pth'),
}

# Real-ESRGAN's x2 model for ``--bg_upsampler realesrgan`` (used only when the realesrgan package is installed)
REALESRGAN_X2 = Release('RealESRGAN_x2plus.pth',
                        'https://github.com/xinntao/Real-ESRGAN/releases/download/v0.2.1/RealESRGAN_x2plus.pth')

# facexlib 0.3.0's files (URLs as in facexlib.detection / facexlib.parsing)
FACEXLIB_RELEASES = {
    'retinaface_resnet50': Release(
        'detection_Resnet50_Final.pth',
        'https://github.com/xinntao/facexlib/releases/download/v0.1.0/detection_Resnet50_Final.pth'),
    'retinaface_mobile0.25': Release(
        'detection_mobilenet0.25_Final.pth',
        'https://github.com/xinntao/facexlib/releases/download/v0.1.0/detection_mobilenet0.25_Final.pth'),
    'parsenet': Release('parsing_parsenet.pth',
                        'https://github.com/xinntao/facexlib/releases/download/v0.2.2/parsing_parsenet.pth'),
}


def weights_root(weights_dir=None):
    """The weights root folder: ``weights_dir``, else env ``PANINI_WEIGHTS_DIR``, else ``~/.cache/panininet``.

    Args:
        weights_dir (str | None): Explicit folder. Default: None.

    Returns:
        str: Absolute path (not created here).
    """
    root = weights_dir or os.environ.get(ENV_WEIGHTS_DIR) or DEFAULT_WEIGHTS_DIR
    return osp.abspath(osp.expanduser(root))


def missing_message(release, folder, reason=None, model_path_hint=True):
    """The user-facing message for a missing weights file.

    Args:
        release (Release): The file that is missing.
        folder (str): Where it was looked for / should be put.
        reason (str | None): Why it could not be downloaded. Default: None.
        model_path_hint (bool): Mention ``--model_path`` (the restoration network only). Default: True.

    Returns:
        str: Several lines naming the file, the URL and the folder.
    """
    lines = [f'Model weights not found: {release.file_name}']
    if reason:
        lines.append(f'It could not be downloaded: {reason}')
    hint = '; or give the file with --model_path' if model_path_hint else ''
    lines += [f'Download it from: {release.url}',
              f'and put it at:    {osp.join(folder, release.file_name)}',
              f'(weights folder: --weights_dir, else ${ENV_WEIGHTS_DIR}, else {DEFAULT_WEIGHTS_DIR}{hint})']
    return '\n'.join(lines)


def sha256sum(path, chunk=1 << 20):
    """SHA-256 hex digest of a file."""
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(chunk), b''):
            h.update(block)
    return h.hexdigest()


def verify_recorded_checksum(path):
    """Check ``path`` against ``path + '.sha256'`` when that record exists.

    Raises:
        WeightsNotFoundError: The file does not match its recorded checksum (truncated or replaced download).
    """
    record = path + '.sha256'
    if not osp.isfile(record):
        return
    with open(record, encoding='utf-8') as f:
        expected = f.read().split()[0]
    actual = sha256sum(path)
    if actual != expected:
        raise WeightsNotFoundError(
            f'{path} does not match the checksum recorded at its first download ({record}: {expected[:12]}..., '
            f'file: {actual[:12]}...). Delete both files to download it again.')


def _gdown_errors():
    """The exceptions gdown raises for a failed Drive download (its own, and requests' ``OSError`` subclasses)."""
    import gdown.exceptions

    names = ('DownloadError', 'FileURLRetrievalError')
    return (OSError, *(getattr(gdown.exceptions, n) for n in names if hasattr(gdown.exceptions, n)))


def _atomic_download(release, dest, opener=None, timeout=60):
    """Download ``release`` to ``dest`` through a temp file in the same folder (os.replace at the end).

    Google Drive files go through ``gdown``, which follows Drive's virus-scan confirmation pages (whose form
    changes every few years); plain URLs are streamed with urllib.

    Raises:
        OSError: The download failed (gdown's own errors are re-raised as OSError with their message).
    """
    with atomic_path(dest) as tmp:
        if release.gdrive_id:
            import gdown

            try:
                gdown.download(id=release.gdrive_id, output=tmp, quiet=False, timeout=timeout)
            except _gdown_errors() as err:
                raise OSError(str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__) from err
            if not osp.isfile(tmp) or osp.getsize(tmp) == 0:
                raise OSError(f'{release.url} gave no file (Drive download quota exceeded?)')
            return
        opener = opener or urllib.request.build_opener()
        with open(tmp, 'wb') as out, opener.open(release.url, timeout=timeout) as resp:
            if 'text/html' in resp.headers.get('Content-Type', ''):
                raise OSError(f'{release.url} returned a web page instead of the file')
            for block in iter(lambda: resp.read(1 << 20), b''):
                out.write(block)


def download_release(release, folder, model_path_hint=True):
    """Download a release file into ``folder`` and record its SHA-256 beside it.

    Not called by the tests (nothing downloads in a test).

    Args:
        release (Release): What to download.
        folder (str): Destination folder (created).

    Returns:
        str: Path of the downloaded file.

    Raises:
        WeightsNotFoundError: The download failed (offline, quota, HTTP error); the message says what to do.
    """
    dest = osp.join(folder, release.file_name)
    try:
        _atomic_download(release, dest)
    except (OSError, urllib.error.URLError) as err:
        raise WeightsNotFoundError(missing_message(release, folder, str(err), model_path_hint)) from None
    digest = sha256sum(dest)
    with open(dest + '.sha256', 'w', encoding='utf-8') as f:
        f.write(f'{digest}  {release.file_name}\n')
    return dest


def resolve_release_file(release, folder, allow_download=True, model_path_hint=True):
    """Path of a release file in ``folder``, downloading it when allowed.

    Args:
        release (Release): The file.
        folder (str): Folder that holds (or will hold) it.
        allow_download (bool): Try to download a missing file. Default: True.
        model_path_hint (bool): See :func:`missing_message`. Default: True.

    Returns:
        str: Path of the existing file (checked against its recorded checksum).

    Raises:
        WeightsNotFoundError: Missing and not downloadable.
    """
    path = osp.join(folder, release.file_name)
    if not osp.isfile(path):
        if not allow_download:
            raise WeightsNotFoundError(missing_message(release, folder, 'downloads are disabled', model_path_hint))
        path = download_release(release, folder, model_path_hint)
    verify_recorded_checksum(path)
    return path


def resolve_model_path(version='mfr', model_path=None, weights_dir=None, allow_download=True):
    """Find the restoration network's weights file.

    Args:
        version (str): A ``-v`` name; its release file is :data:`RELEASES`' entry. Default: 'mfr'.
        model_path (str | None): Explicit file; must exist. Default: None.
        weights_dir (str | None): Weights root (see :func:`weights_root`). Default: None.
        allow_download (bool): Download the release when it is missing. Default: True.

    Returns:
        str: Path of an existing file.

    Raises:
        WeightsNotFoundError: Nothing found and nothing downloadable (also: a version without a release file and no
            ``model_path``).
    """
    if model_path is not None:
        path = osp.abspath(osp.expanduser(model_path))
        if not osp.isfile(path):
            raise WeightsNotFoundError(f'--model_path {model_path}: no such file.')
        return path
    if version not in RELEASES:
        raise WeightsNotFoundError(f'-v {version} has no released weights to download; give its weights file with '
                                   '--model_path.')
    return resolve_release_file(RELEASES[version], weights_root(weights_dir), allow_download)
