"""Atomic file writes: every file panininet writes goes through :func:`atomic_path`.

A temporary file is written in the destination folder (same file system) and renamed over the destination with
``os.replace`` only once it is complete, so an interrupted run never leaves a half-written image, checkpoint or
table, and an existing file is replaced in one step. The temporary file keeps the destination's extension (OpenCV
and matplotlib pick the format from it) and gets the permissions of an ordinary new file (``mkstemp`` makes 0o600).
"""
import contextlib
import os
import os.path as osp
import tempfile


def new_file_mode():
    """Permissions an ordinary new file gets (0o666 minus the umask); mkstemp's files are 0o600."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside ``path``; rename it to ``path`` when the block succeeds, else remove it.

    Args:
        path (str): Destination file. Its folder is created.

    Yields:
        str: The temporary file to write (exists, empty, same extension as ``path``).
    """
    folder = osp.dirname(osp.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f'.{osp.basename(path)}.', suffix=f'.part{osp.splitext(path)[1]}', dir=folder)
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, new_file_mode())
        os.replace(tmp, path)
    finally:
        if osp.exists(tmp):
            os.remove(tmp)


def write_bytes_atomic(path, data):
    """Write ``data`` (bytes) to ``path`` atomically."""
    with atomic_path(path) as tmp, open(tmp, 'wb') as f:
        f.write(data)


def write_text_atomic(path, text):
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    write_bytes_atomic(path, text.encode('utf-8'))


def torch_save_atomic(obj, path):
    """``torch.save(obj, path)`` atomically (no half-written checkpoint)."""
    import torch
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def save_figure_atomic(fig, path, **kwargs):
    """``fig.savefig`` atomically (format from ``path``'s extension)."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, **kwargs)
