"""Download FFHQ (the official release) and write the flat folders the training options read, resumably.

FFHQ (github.com/NVlabs/ffhq-dataset) is 70,000 aligned 1024 x 1024 PNGs (89 GB) on Google Drive, listed with their
sizes and MD5 checksums in the release's metadata file ``ffhq-dataset-v2.json`` (255 MB; itself checked against the
size and MD5 NVlabs' ``download_ffhq.py`` gives). Everything goes through ``gdown``, the Drive client the package
already uses for the authors' weights; files are written atomically (a temporary file renamed at the end), so an
interrupted run leaves no half file, and a file already there with the listed size is not fetched again::

    python scripts/prepare_ffhq.py --root datasets/ffhq --sizes 1024 512     # download, then ffhq_1024, ffhq_512
    python scripts/prepare_ffhq.py --root datasets/ffhq --category validation --limit 100 --sizes 1024
    python scripts/prepare_ffhq.py --root datasets/ffhq --sizes 1024 512 --check   # verify, download nothing

Layout under ``--root``: ``ffhq-dataset-v2.json``, ``images1024x1024/<thousands>/<index>.png`` (the release's own
paths), and per size ``ffhq_<size>`` (training) or ``ffhq_<size>_<category>`` (other categories): one flat folder of
``<index>.png``, as ``options/train_*.yml`` read (``datasets/ffhq/ffhq_1024``, ``datasets/ffhq/ffhq_512``). The
1024 folder holds hard links to the release's files where the file system allows (no second copy), else copies;
smaller sizes are area-resized from them (the images are aligned already: the release's own alignment). Sorted by
index, which is the order GFP-GAN's ``FFHQ_eye_mouth_landmarks_512.pth`` assumes.

``--check`` verifies every listed image of the selection (size and MD5), and that every ``ffhq_<size>`` file exists
with the right side; it prints one line per problem and a summary, and exits 1 when anything is missing or wrong.
"""
import argparse
import hashlib
import json
import os
import os.path as osp
import shutil
import sys

import cv2

from panininet.atomic import atomic_path, write_bytes_atomic

# NVlabs' download_ffhq.py: the metadata file of the release
JSON_SPEC = {'file_url': 'https://drive.google.com/uc?id=16N0RV4fHI6joBuKbQAoG34V_cQk7vxSA',
             'file_path': 'ffhq-dataset-v2.json', 'file_size': 267793842,
             'file_md5': '425ae20f06a4da1d4dc0f46d40ba5fd6'}
CATEGORIES = ('training', 'validation')


def md5sum(path, chunk=1 << 20):
    h = hashlib.md5()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(chunk), b''):
            h.update(block)
    return h.hexdigest()


def gdrive_id(url):
    """The file id of a Drive URL ``https://drive.google.com/uc?id=<id>`` (the release's form)."""
    from urllib.parse import parse_qs, urlparse
    ids = parse_qs(urlparse(url).query).get('id')
    if not ids:
        raise ValueError(f'{url} is not a Google Drive file URL with an id')
    return ids[0]


def gdown_fetch(url, dest):
    """Download a Drive file to ``dest`` (gdown follows Drive's confirmation pages). Replaced in tests."""
    import gdown
    out = gdown.download(id=gdrive_id(url), output=dest, quiet=True)
    if out is None or not osp.isfile(dest):
        raise OSError(f'{url} gave no file (Drive download quota exceeded? try again later)')


def fetch(spec, root, fetcher=None, verify_md5=True):
    """Make sure ``spec['file_path']`` under ``root`` is the listed file; download it if missing or wrong.

    Args:
        spec (dict): ``file_url``, ``file_path``, ``file_size``, ``file_md5`` (the release's fields).
        root (str): Folder the release's paths are relative to.
        fetcher (callable | None): ``f(url, dest)``. Default: :func:`gdown_fetch`.
        verify_md5 (bool): Check the MD5 of a new download. Default: True.

    Returns:
        bool: True when downloaded now, False when it was there already.

    Raises:
        OSError: The download failed or does not match the listed size / MD5 (nothing is left behind).
    """
    dest = osp.join(root, spec['file_path'])
    if osp.isfile(dest) and osp.getsize(dest) == spec['file_size']:
        return False
    with atomic_path(dest) as tmp:
        (fetcher or gdown_fetch)(spec['file_url'], tmp)
        size = osp.getsize(tmp)
        if size != spec['file_size']:
            raise OSError(f'{spec["file_path"]}: {size} bytes downloaded, the release lists {spec["file_size"]}')
        if verify_md5 and md5sum(tmp) != spec['file_md5']:
            raise OSError(f'{spec["file_path"]}: MD5 differs from the release\'s {spec["file_md5"]}')
    return True


def load_metadata(root):
    """The release's metadata: {index: item} (items as in ``ffhq-dataset-v2.json``)."""
    with open(osp.join(root, JSON_SPEC['file_path']), encoding='utf-8') as f:
        return json.load(f)


def select(meta, category='training', limit=None):
    """The items of ``category`` ('training', 'validation' or 'all'), by index, at most ``limit`` of them."""
    items = sorted(((int(k), v) for k, v in meta.items()), key=lambda kv: kv[0])
    items = [(k, v) for k, v in items if category == 'all' or v['category'] == category]
    return items[:limit] if limit else items


def folder_name(size, category):
    return f'ffhq_{size}' if category == 'training' else f'ffhq_{size}_{category}'


def write_size(root, items, size):
    """Write ``<index>.png`` at ``size`` for every item into its flat folder.

    A file already there is kept unless its source is newer (downloaded again since).

    Returns:
        int: Files written.
    """
    written = 0
    for index, item, out_dir in items:
        src = osp.join(root, item['image']['file_path'])
        dst = osp.join(out_dir, f'{index:05d}.png')
        if osp.isfile(dst) and os.stat(dst).st_mtime_ns >= os.stat(src).st_mtime_ns:
            continue
        os.makedirs(out_dir, exist_ok=True)
        if size == item['image']['pixel_size'][0]:
            with atomic_path(dst) as tmp:
                os.remove(tmp)
                try:
                    os.link(src, tmp)
                except OSError:
                    shutil.copyfile(src, tmp)
        else:
            img = cv2.imread(src, cv2.IMREAD_COLOR)
            if img is None:
                raise OSError(f'{src}: not a readable image (run --check)')
            img = cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)
            write_bytes_atomic(dst, cv2.imencode('.png', img)[1].tobytes())
        written += 1
    return written


def check(root, category='training', limit=None, sizes=()):
    """Every problem of the prepared data under ``root``; empty when complete.

    Returns:
        tuple[list[str], int]: (problems, number of files checked).
    """
    problems, checked = [], 0
    json_path = osp.join(root, JSON_SPEC['file_path'])
    if not osp.isfile(json_path):
        return [f'{json_path}: missing (run without --check to download it)'], 1
    if osp.getsize(json_path) != JSON_SPEC['file_size'] or md5sum(json_path) != JSON_SPEC['file_md5']:
        problems.append(f'{json_path}: size or MD5 differs from the release (delete it and run again)')
    items = select(load_metadata(root), category, limit)
    for index, item in items:
        spec = item['image']
        path = osp.join(root, spec['file_path'])
        checked += 1
        if not osp.isfile(path):
            problems.append(f'{path}: missing')
        elif osp.getsize(path) != spec['file_size'] or md5sum(path) != spec['file_md5']:
            problems.append(f'{path}: size or MD5 differs from the release (delete it and run again)')
        for size in sizes:
            out = osp.join(root, folder_name(size, category), f'{index:05d}.png')
            checked += 1
            if not osp.isfile(out):
                problems.append(f'{out}: missing')
                continue
            img = cv2.imread(out, cv2.IMREAD_UNCHANGED)
            if img is None or img.shape[:2] != (size, size):
                problems.append(f'{out}: not a {size} x {size} image')
    return problems, checked


def prepare(root, category='training', limit=None, sizes=(1024, ), fetcher=None, log=print):
    """Download what is missing and write the ``ffhq_<size>`` folders (see the module docstring)."""
    if fetch(JSON_SPEC, root, fetcher):
        log(f'downloaded {JSON_SPEC["file_path"]}')
    items = select(load_metadata(root), category, limit)
    fetched = 0
    for n, (_, item) in enumerate(items, 1):
        fetched += fetch(item['image'], root, fetcher)
        if n % 1000 == 0:
            log(f'{n}/{len(items)} images checked, {fetched} downloaded')
    log(f'{len(items)} {category} images in {osp.join(root, "images1024x1024")} ({fetched} downloaded now)')
    for size in sizes:
        out_dir = osp.join(root, folder_name(size, category))
        n = write_size(root, [(i, item, out_dir) for i, item in items], size)
        log(f'{out_dir}: {len(items)} faces of {size} px ({n} written now)')


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--root', default=osp.join('datasets', 'ffhq'),
                   help='folder of the release and the prepared folders (default: datasets/ffhq, as the options)')
    p.add_argument('--sizes', type=int, nargs='*', default=[1024], help='sides to write (default: 1024)')
    p.add_argument('--category', default='training', choices=(*CATEGORIES, 'all'),
                   help="the release's split (training: 60,000 faces, validation: 10,000)")
    p.add_argument('--limit', type=int, default=None, help='only the first N faces of the category, by index')
    p.add_argument('--check', action='store_true', help='verify what is there; download and write nothing')
    args = p.parse_args(argv)
    bad = [s for s in args.sizes if s < 8 or s > 1024 or s & (s - 1)]
    if bad or (args.limit is not None and args.limit < 1):
        print(f'Error: --sizes must be powers of two from 8 to 1024 (got {bad}) and --limit >= 1.', file=sys.stderr)
        return 2
    if args.check:
        problems, checked = check(args.root, args.category, args.limit, args.sizes)
        for line in problems:
            print(line)
        print(f'{args.root}: {checked - len(problems)} of {checked} files in order'
              + ('' if problems else ' (complete)'))
        return 1 if problems else 0
    try:
        prepare(args.root, args.category, args.limit, args.sizes)
    except (OSError, ValueError, KeyError) as err:
        print(f'Error: {err}. What is done is kept: run the same command again to continue.', file=sys.stderr)
        return 2
    return 0


if __name__ == '__main__':
    sys.exit(main())
