"""Restore an archive: inputs sharded over torch.distributed ranks, a record of every file, resume after a kill.

``torchrun --nproc_per_node N inference_panini.py -i IN -o OUT`` (or ``--nnodes`` / ``--rdzv_endpoint`` across
machines) starts N copies of the CLI; :func:`run_archive` is what each of them runs. A plain ``python
inference_panini.py`` is the same run with one rank and no process group.

* **Ranks** (:func:`start_ranks`): torchrun's ``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` environment; the process group is
  nccl with ``cuda:LOCAL_RANK`` on GPUs, gloo on CPU, where each rank takes its share of the cores
  (:func:`share_cores`). The only collectives are a broadcast of the inputs and a gather of their work at the start
  and a gather of the counters at the end (on a gloo group, also under nccl): between them the ranks never wait for
  each other.
* **Plan** (:func:`prepare_run`, :func:`assign_work`): rank 0 checks the record and broadcasts the inputs to do, so
  every rank follows one list even when the folder changes under the run; the ranks read the headers of every
  world-th input each (pixels of a photo; frames x pixels of a clip, :func:`work_of`), gather them, and each gives
  every input, largest first, to the rank with the least work so far (greedy longest-processing-time, the same
  result on every rank). One long clip then weighs as much as the photos the other ranks take meanwhile.
* **Record** (:class:`Manifest`): each rank appends one JSON line per finished input to its own part file
  ``OUT/manifest.parts/rank-NNNNN.jsonl`` (one ``write`` of the whole line on an ``O_APPEND`` descriptor, then
  ``fsync``), only after every output of that input is in place (outputs are written atomically:
  :mod:`panininet.atomic`). One writer per file needs no lock, also on a network file system shared by several
  machines, where appends from several writers to one file can interleave; a kill costs at most the torn last line
  of one part, which the reader drops (that input is redone). At the end of the run, and at the start of the next,
  rank 0 unions ``OUT/manifest.jsonl`` and the parts into a new ``OUT/manifest.jsonl`` (written atomically; the
  latest line of an input wins) and removes the parts. :func:`read_records` / :func:`read_manifest` read both, so
  a record is complete at any moment, even while a run is going or after a kill.
* **Resume** (:func:`prepare_run`): with ``resume`` the inputs whose record has the same settings fingerprint, the
  same size and modification time, and all of its outputs present are not planned again; a record of other
  settings refuses the run (:class:`ArchiveError`, one line). Without ``resume`` the old record is emptied before
  any output is written. Temporary files a killed rank left (``.NAME.XXXXXXXX.part.EXT``) are removed first.
* **Streaming photos** (:func:`stream_photos`): the shape of :func:`panininet.pipeline.video.restore_video`: a read
  thread and an analyse thread (detection + alignment) feed the network in the calling thread through bounded
  queues, and a write thread (colour fix, paste back, encode, record) drains it, so the network does not wait for
  decoding, detection, pasting or encoding. :class:`RankStats` counts the network's busy time against the wall time.
* **Progress** (:class:`Progress`): each rank rewrites a small ``rank-NNNNN.progress.json`` beside its part every
  second (photos, frames, faces, work done, its pid); rank 0 sums them into one bar of work over the whole run
  (photos, videos, frames, faces, time left).
"""
import contextlib
import datetime
import hashlib
import heapq
import json
import os
import os.path as osp
import queue
import re
import socket
import threading
import time
import uuid
import warnings
from dataclasses import dataclass, field

from panininet.atomic import write_text_atomic
from panininet.pipeline.video_io import END, Pipeline, open_container

MANIFEST = 'manifest.jsonl'
PARTS = 'manifest.parts'
PHOTO_OVERHEAD = 100_000  # work of a photo beyond its pixels (file open, detector setup), in pixels
# what atomic_path leaves when its process is killed: .NAME.XXXXXXXX.partEXT (mkstemp's 8 random characters)
_STALE_PART = re.compile(r'^\..+\.[A-Za-z0-9_]{8}\.part(\.[^.]*)?$')
# statuses: done (outputs written), skipped (the input itself cannot be used; kept on resume while the file is
# unchanged), failed (restoring or writing failed; redone on resume)
DONE, SKIPPED, FAILED = 'done', 'skipped', 'failed'


class ArchiveError(ValueError):
    """A run that cannot start (e.g. resuming with other settings); ``str(err)`` is the one line for the user."""


class InputSkipped(Exception):  # noqa: N818  (a verdict on the input, not a failure of ours)
    """Raised by a reader when an input cannot be used; it is recorded as skipped with ``reason``.

    Args:
        reason (str): Why, for the record (e.g. 'not an image').
        warning (str | None): The warning line, when it is not ``'<path>: <reason>; skipped.'``. Default: None.
    """

    def __init__(self, reason, warning=None):
        super().__init__(reason)
        self.reason, self.warning = reason, warning


# ------------------------------------------------------------------------------------------------------------ ranks
@dataclass
class Ranks:
    """Where this process stands in the run (torchrun's environment; one rank without it).

    Attributes:
        rank (int): Global rank. world (int): Number of ranks. local_rank (int): Rank on this machine.
        local_world (int): Ranks on this machine. group (object | None): Process group of the control messages
            (gloo); None when there is no process group (one rank).
    """
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    local_world: int = 1
    group: object = None

    @property
    def distributed(self):
        return self.world > 1


def is_main_process():
    """True in rank 0 (or outside torchrun): the process that prints errors and the summary."""
    return os.environ.get('RANK', '0') == '0'


def rank_device(device, local_rank):
    """The device of this rank: ``cuda:LOCAL_RANK`` when CUDA is asked for (or 'auto' finds it), else ``device``.

    Raises:
        ArchiveError: More ranks on this machine than GPUs.
    """
    import torch

    if device in ('auto', 'cuda') and torch.cuda.is_available():
        if local_rank >= torch.cuda.device_count():
            raise ArchiveError(f'local rank {local_rank} has no GPU (this machine has {torch.cuda.device_count()}); '
                               'give torchrun --nproc_per_node at most the number of GPUs, or --device cpu.')
        return f'cuda:{local_rank}'
    return device


def start_ranks(device):
    """Join torchrun's process group (nccl for CUDA, else gloo); one rank and no group outside torchrun.

    Args:
        device (str): The device of this rank (:func:`rank_device`).

    Returns:
        Ranks: This process's place; ``group`` is a gloo group for the control messages.
    """
    world = int(os.environ.get('WORLD_SIZE', '1'))
    if world <= 1:
        return Ranks()
    import torch
    import torch.distributed as dist

    rank, local_rank = int(os.environ['RANK']), int(os.environ.get('LOCAL_RANK', '0'))
    local_world = int(os.environ.get('LOCAL_WORLD_SIZE', str(world)))
    cuda = str(device).startswith('cuda')
    if cuda:
        torch.cuda.set_device(torch.device(device))
    # the ranks only meet twice (plan, end): the end barrier waits for the slowest rank, hence no short timeout
    dist.init_process_group('nccl' if cuda else 'gloo', timeout=datetime.timedelta(days=7))
    group = dist.new_group(backend='gloo', timeout=datetime.timedelta(days=7)) if cuda else dist.group.WORLD
    return Ranks(rank, world, local_rank, local_world, group)


def stop_ranks(ranks):
    if ranks.distributed:
        import torch.distributed as dist

        dist.destroy_process_group()


def share_cores(ranks):
    """CPU: give this rank its share of the cores this machine lets the process use (at least one thread)."""
    import torch

    cores = len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else (os.cpu_count() or 1)
    threads = max(1, cores // ranks.local_world)
    torch.set_num_threads(threads)
    return threads


# ------------------------------------------------------------------------------------------------------------- plan
def work_of(path, is_video):
    """(work, frames) of an input from its header: pixels (+ :data:`PHOTO_OVERHEAD`) of a photo, frames x pixels of
    a clip; an input whose header cannot be read weighs :data:`PHOTO_OVERHEAD` (it is skipped quickly)."""
    if is_video:
        try:
            import av

            with open_container(av, path) as container:
                stream = container.streams.video[0]
                frames = stream.frames
                if not frames and container.duration and stream.average_rate:
                    frames = int(round(container.duration / 1e6 * float(stream.average_rate)))
                frames = int(frames or 1)
                return frames * stream.codec_context.width * stream.codec_context.height, frames
        except Exception:  # noqa: BLE001  (a bad clip is reported when it is restored)
            return PHOTO_OVERHEAD, None
    try:
        from PIL import Image

        with Image.open(path) as im:  # reads the header only
            return im.width * im.height + PHOTO_OVERHEAD, None
    except Exception:  # noqa: BLE001  (formats PIL does not know: OpenCV may still read them)
        try:
            return max(osp.getsize(path), 1) * 3 + PHOTO_OVERHEAD, None  # about 3 pixels per byte of a JPEG
        except OSError:
            return PHOTO_OVERHEAD, None


def assign_lpt(works, world):
    """Greedy longest-processing-time: each input, largest work first (ties by position), to the least loaded rank
    (ties: the lowest rank). Deterministic.

    Args:
        works (list[float]): Work of each input. world (int): Ranks.

    Returns:
        list[int]: The rank of each input.
    """
    loads = [(0, r) for r in range(world)]
    owner = [0] * len(works)
    for i in sorted(range(len(works)), key=lambda i: (-works[i], i)):
        load, r = heapq.heappop(loads)
        owner[i] = r
        heapq.heappush(loads, (load + works[i], r))
    return owner


@dataclass
class Plan:
    """What every rank does: made by rank 0 (:func:`prepare_run`), broadcast, completed by every rank
    (:func:`assign_work`).

    Attributes:
        run_id (str): This run's id (in every record it writes).
        files (list[str]): Every input of the run, absolute, in order.
        todo (list[str]): The inputs to do now (``files`` less those recorded as done with these settings).
        owner (dict): Input -> rank, for the inputs to do now.
        work (dict): Input -> work (:func:`work_of`). frames (dict): Clip -> frames (from its header).
        videos (list[str]): The clips among the inputs to do.
        earlier (int): Inputs already recorded with these settings, not done again.
        error (str | None): Why the run cannot start (every rank stops).
    """
    run_id: str = ''
    files: list = field(default_factory=list)
    todo: list = field(default_factory=list)
    owner: dict = field(default_factory=dict)
    work: dict = field(default_factory=dict)
    frames: dict = field(default_factory=dict)
    videos: list = field(default_factory=list)
    earlier: int = 0
    error: object = None


def assign_work(plan, ranks, is_video):
    """Fill ``plan``'s owner, work, frames and videos: every rank reads the headers of every world-th input of
    ``plan.todo``, the ranks gather them, and each assigns the inputs with :func:`assign_lpt` (the same result on
    every rank, from the same numbers)."""
    measured = {f: work_of(f, is_video(f)) for f in plan.todo[ranks.rank::ranks.world]}
    if ranks.distributed:
        import torch.distributed as dist

        parts = [None] * ranks.world
        dist.all_gather_object(parts, measured, group=ranks.group)
        measured = {f: m for part in parts for f, m in part.items()}
    owner = assign_lpt([measured[f][0] for f in plan.todo], ranks.world)
    plan.owner = dict(zip(plan.todo, owner))
    plan.work = {f: measured[f][0] for f in plan.todo}
    plan.frames = {f: measured[f][1] for f in plan.todo if measured[f][1] is not None}
    plan.videos = [f for f in plan.todo if is_video(f)]
    return plan


# ------------------------------------------------------------------------------------------------------- settings
def fingerprint(settings):
    """Short sha256 of the settings (a JSON-able dict of everything that shapes the outputs)."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:16]


def file_identity(path):
    """{'path', 'size', 'mtime'} of a file (a weights file in the settings: replacing it changes them)."""
    if path is None:
        return None
    path = osp.abspath(path)
    try:
        st = os.stat(path)
        return {'path': path, 'size': st.st_size, 'mtime': st.st_mtime}
    except OSError:
        return {'path': path, 'size': None, 'mtime': None}


def input_stat(path):
    try:
        st = os.stat(path)
    except OSError:
        return None, None
    return st.st_size, st.st_mtime


# ------------------------------------------------------------------------------------------------------- manifest
def parts_dir(out_root):
    return osp.join(out_root, PARTS)


class Manifest:
    """This rank's part of the record: one JSON line per finished input, appended whole and synced.

    Args:
        out_root (str): Output folder. rank (int): This rank.
    """

    def __init__(self, out_root, rank):
        os.makedirs(parts_dir(out_root), exist_ok=True)
        self.path = osp.join(parts_dir(out_root), f'rank-{rank:05d}.jsonl')
        self.lock = threading.Lock()
        self.fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o666)

    def append(self, record):
        line = (json.dumps(record, ensure_ascii=False, default=str) + '\n').encode('utf-8')
        with self.lock:
            os.write(self.fd, line)
            os.fsync(self.fd)

    def close(self):
        os.close(self.fd)


def _read_lines(path):
    records = []
    try:
        with open(path, encoding='utf-8') as f:
            for line in f:
                try:
                    rec = json.loads(line)
                except ValueError:  # the torn last line of a killed rank: that input is redone
                    continue
                if isinstance(rec, dict) and 'input' in rec:
                    records.append(rec)
    except FileNotFoundError:
        pass
    return records


def read_records(out_root):
    """Every record of ``out_root``: ``manifest.jsonl`` then the parts of a running or killed run; one per input
    (the latest wins), in the order first seen.

    Returns:
        list[dict]: The records.
    """
    merged = {}
    sources = [osp.join(out_root, MANIFEST)]
    if osp.isdir(parts_dir(out_root)):
        sources += sorted(osp.join(parts_dir(out_root), f) for f in os.listdir(parts_dir(out_root))
                          if f.endswith('.jsonl'))
    for path in sources:
        for rec in _read_lines(path):
            merged.pop(rec['input'], None)  # re-insert: a redone input goes to the end, after the older records
            merged[rec['input']] = rec
    return list(merged.values())


def read_manifest(out_root):
    """The record of ``out_root`` as a pandas DataFrame (one row per input; what ``pandas.read_json(OUT/manifest.jsonl,
    lines=True)`` gives once the run has ended)."""
    import pandas as pd

    return pd.DataFrame(read_records(out_root))


def consolidate(out_root, records=None):
    """Rank 0: write the union of the record to ``manifest.jsonl`` (atomically), then remove the parts."""
    records = read_records(out_root) if records is None else records
    write_text_atomic(osp.join(out_root, MANIFEST),
                      ''.join(json.dumps(r, ensure_ascii=False, default=str) + '\n' for r in records))
    folder = parts_dir(out_root)
    if osp.isdir(folder):
        for f in os.listdir(folder):
            with contextlib.suppress(FileNotFoundError):
                os.remove(osp.join(folder, f))
        with contextlib.suppress(OSError):
            os.rmdir(folder)
    return records


def remove_stale_parts(out_root, subfolders):
    """Remove the temporary files a killed process left in ``out_root`` and its output ``subfolders``."""
    removed = 0
    for folder in [out_root, *(osp.join(out_root, s) for s in subfolders)]:
        if not osp.isdir(folder):
            continue
        for f in os.listdir(folder):
            if _STALE_PART.match(f) and osp.isfile(osp.join(folder, f)):
                with contextlib.suppress(FileNotFoundError):
                    os.remove(osp.join(folder, f))
                    removed += 1
    return removed


def still_valid(rec, out_root, fp):
    """True when ``rec`` (same settings ``fp``) stands: the input is unchanged and, if done, its outputs exist."""
    if rec.get('fingerprint') != fp or rec.get('status') not in (DONE, SKIPPED):
        return False
    if [rec.get('size'), rec.get('mtime')] != list(input_stat(rec['input'])):
        return False
    return all(osp.isfile(osp.join(out_root, o)) for o in rec.get('outputs') or [])


def _differences(old, new):
    keys = sorted(set(old) | set(new), key=str)
    return ', '.join(f'{k}: {old.get(k)!r} then, {new.get(k)!r} now' for k in keys if old.get(k) != new.get(k))


def prepare_run(out_root, files, settings, resume, subfolders):
    """Rank 0, before any output is written: check or empty the record, clean up after a kill, list what to do.

    Args:
        out_root (str): Output folder (exists). files (list[str]): Inputs, absolute. settings (dict): What shapes
            the outputs. resume (bool): Keep the records of these settings. subfolders (tuple[str]): Output
            subfolders (for leftover temporary files).

    Returns:
        Plan: Without owners yet (:func:`assign_work`); with ``error`` set when the run must not start.
    """
    fp = fingerprint(settings)
    records = read_records(out_root)
    if resume:
        other = [r for r in records if r.get('fingerprint') != fp]
        if other:
            diff = _differences(other[0].get('settings') or {}, settings)
            return Plan(error=f'-o {out_root} holds a run with other settings ({diff or "another version"}); '
                        '--resume needs the same settings: give them, or a new -o for the new settings.')
    remove_stale_parts(out_root, subfolders)
    keep = [r for r in records if still_valid(r, out_root, fp)] if resume else []
    consolidate(out_root, keep)  # without --resume: an empty record before any output is replaced
    done = {r['input'] for r in keep}
    return Plan(run_id=uuid.uuid4().hex[:12], files=list(files), todo=[f for f in files if f not in done],
                earlier=len(done & set(files)))


def broadcast_plan(plan, ranks):
    """Rank 0's Plan on every rank (one broadcast on the control group)."""
    if not ranks.distributed:
        return plan
    import torch.distributed as dist

    box = [plan]
    dist.broadcast_object_list(box, src=0, group=ranks.group)
    return box[0]


# ----------------------------------------------------------------------------------------------------------- stats
@dataclass
class RankStats:
    """What one rank did in this run (also written, summed over the run, as its progress file).

    Attributes:
        photos, videos, frames, faces (int): Finished inputs (done, skipped or failed) and what they held.
        work_done (float): Work of the finished inputs and frames (:func:`work_of`).
        network_seconds (float): Time inside the network (photos).
        read_seconds, analyse_seconds, write_seconds (float): Time in the other stages of the photo stream.
        photo_wall (float): Wall time of the photo stream. wall (float): Wall time of the rank, plan to end.
    """
    photos: int = 0
    videos: int = 0
    frames: int = 0
    faces: int = 0
    work_done: float = 0.0
    network_seconds: float = 0.0
    read_seconds: float = 0.0
    analyse_seconds: float = 0.0
    write_seconds: float = 0.0
    photo_wall: float = 0.0
    wall: float = 0.0
    finished: bool = False

    def network_busy(self):
        """Fraction of the photo stream's wall time the network was computing."""
        return self.network_seconds / self.photo_wall if self.photo_wall > 0 else 0.0


class Progress:
    """Rewrites this rank's progress file every ``every`` s; on rank 0 (with ``bar``) shows the whole run's.

    Args:
        out_root (str): Output folder. ranks (Ranks): This rank. plan (Plan): The run. stats (RankStats): This
            rank's counters. show (bool): Rank 0 draws a tqdm bar (stderr). every (float): Seconds. Default: 1.
    """

    def __init__(self, out_root, ranks, plan, stats, show, every=1.0):
        self.folder, self.ranks, self.plan, self.stats, self.every = parts_dir(out_root), ranks, plan, stats, every
        os.makedirs(self.folder, exist_ok=True)
        self.path = osp.join(self.folder, f'rank-{ranks.rank:05d}.progress.json')
        self.stop = threading.Event()
        self.bar = None
        if show and plan.owner:
            from tqdm import tqdm

            self.n_photos = len(plan.owner) - len(plan.videos)
            self.n_frames = sum(plan.frames.values())
            self.bar = tqdm(total=round(sum(plan.work.values()) / 1e6, 1), unit='MP', mininterval=every,
                            bar_format='{desc} {percentage:3.0f}%|{bar}| {n:.1f}/{total:.1f} MP '
                                       '[{elapsed}<{remaining}]')
        self.write()
        self.thread = threading.Thread(target=self._loop, daemon=True, name='progress')
        self.thread.start()

    def write(self):
        state = dict(vars(self.stats), pid=os.getpid(), host=socket.gethostname(), rank=self.ranks.rank,
                     run=self.plan.run_id)
        with contextlib.suppress(OSError):
            write_text_atomic(self.path, json.dumps(state))

    def _others(self):
        states = []
        for r in range(self.ranks.world):
            if r == self.ranks.rank:
                states.append(vars(self.stats))
                continue
            with contextlib.suppress(OSError, ValueError):
                with open(osp.join(self.folder, f'rank-{r:05d}.progress.json')) as f:
                    state = json.load(f)
                if state.get('run') == self.plan.run_id:
                    states.append(state)
        return states

    def draw(self):
        if self.bar is None:
            return
        states = self._others()
        total = lambda key: sum(s.get(key, 0) for s in states)  # noqa: E731
        self.bar.n = min(round(total('work_done') / 1e6, 1), self.bar.total)
        videos = f', videos {total("videos")}/{len(self.plan.videos)}' if self.plan.videos else ''
        frames = f', frames {total("frames")}/{self.n_frames}' if self.n_frames else ''
        self.bar.set_description_str(f'photos {total("photos")}/{self.n_photos}{videos}{frames}, faces '
                                     f'{total("faces")}', refresh=True)

    def _loop(self):
        while not self.stop.wait(self.every):
            self.write()
            self.draw()

    def close(self):
        self.stop.set()
        self.thread.join()
        self.stats.finished = True
        self.write()
        if self.bar is not None:
            self.draw()
            self.bar.close()


# ------------------------------------------------------------------------------------------------------- the run
@dataclass
class Handlers:
    """What the run does with each input (the CLI gives these; the archive owns the order, threads and record).

    Attributes:
        read_photo (callable): path -> image; raises :class:`InputSkipped` for an input that cannot be used.
        save_photo (callable): (path, stem, (crops, restored, whole)) -> output paths written (atomically);
            raises OSError when writing fails.
        restore_video (callable): (path, stem, progress) -> (VideoSummary, output paths); raises
            :class:`InputSkipped` for a clip that cannot be read; ``progress(1)`` after each frame.
        stems (callable): list of inputs -> {input: name stem of its outputs}.
    """
    read_photo: object
    save_photo: object
    restore_video: object
    stems: object


@dataclass
class Options:
    """The restoring options of the run: weight, only_center_face, aligned (faces given aligned), batch_size."""
    weight: float = 0.5
    only_center_face: bool = False
    aligned: bool = False
    batch_size: int = 4


def _first_line(err):
    text = str(err).strip().splitlines()
    return f'{type(err).__name__}: {text[0]}' if text else type(err).__name__


class Recorder:
    """Writes a record per input (and the warning of a skipped or failed one), counts the rank's work."""

    def __init__(self, manifest, out_root, settings, plan, ranks, stats, device):
        self.manifest, self.out_root, self.plan, self.stats = manifest, out_root, plan, stats
        self.common = dict(fingerprint=fingerprint(settings), settings=settings, run=plan.run_id, rank=ranks.rank,
                           host=socket.gethostname(), device=str(device))

    def record(self, path, kind, status, seconds, outputs=(), faces=0, frames=None, reason=None, warning=None):
        if status != DONE:
            warnings.warn(warning or f'{path}: {reason}; skipped.', stacklevel=3)
        size, mtime = input_stat(path)
        self.manifest.append(dict(
            input=path, name=osp.basename(path), kind=kind, status=status, reason=reason, size=size, mtime=mtime,
            outputs=[osp.relpath(o, self.out_root) for o in outputs], faces=faces, frames=frames,
            seconds=round(seconds, 4), finished=datetime.datetime.now(datetime.timezone.utc).isoformat(),
            **self.common))
        self.stats.faces += faces
        if kind == 'photo':
            self.stats.photos += 1
        else:
            self.stats.videos += 1
        if kind == 'photo':
            self.stats.work_done += self.plan.work.get(path, 0)


@dataclass
class _Photo:
    path: str
    img: object = None
    prepared: object = None  # PaniniRestorer.prepare_faces's dict
    restored: list = field(default_factory=list)
    skip: object = None  # InputSkipped
    error: object = None  # Exception while restoring
    seconds: float = 0.0


def stream_photos(restorer, photos, stems, handlers, options, recorder, stats, queue_size=None):
    """Restore ``photos`` in four overlapping stages joined by bounded queues (the shape of
    :func:`panininet.pipeline.video.restore_video`):

    1. **read** (thread): ``handlers.read_photo``;
    2. **analyse** (thread): :meth:`~panininet.pipeline.restorer.PaniniRestorer.prepare_faces` (detection + alignment);
    3. **restore** (the calling thread): the faces of consecutive photos go through the network together,
       ``batch_size`` at a time (a failing call is retried photo by photo, so one bad photo costs only itself);
    4. **write** (thread): colour fix and paste back, the outputs (``handlers.save_photo``), then the record.

    ``queue_size`` (default: ``max(2, batch_size)``) photos wait at most between two stages, so memory stays bounded
    by the photos in flight, not the folder.
    """
    pipe = Pipeline()
    size = queue_size or max(2, options.batch_size)
    read_q, aligned_q, done_q = (queue.Queue(maxsize=size) for _ in range(3))

    def read():
        for path in photos:
            t = time.perf_counter()
            item = _Photo(path)
            try:
                item.img = handlers.read_photo(path)
            except InputSkipped as skip:
                item.skip = skip
            item.seconds = time.perf_counter() - t
            stats.read_seconds += item.seconds
            if not pipe.put(read_q, item):
                return
        pipe.put(read_q, END)

    def analyse():
        while (item := pipe.get(read_q)) is not END:
            if item.skip is None:
                t = time.perf_counter()
                try:
                    item.prepared = restorer.prepare_faces(item.img, has_aligned=options.aligned,
                                                           only_center_face=options.only_center_face)
                except Exception as err:  # noqa: BLE001  (recorded as failed; the folder goes on)
                    item.error = err
                item.seconds += time.perf_counter() - t
                stats.analyse_seconds += time.perf_counter() - t
            if not pipe.put(aligned_q, item):
                return
        if not pipe.stop.is_set():
            pipe.put(aligned_q, END)

    def write():
        while (item := pipe.get(done_q)) is not END:
            t = time.perf_counter()
            _finish_photo(restorer, item, stems[item.path], handlers, options, recorder)
            stats.write_seconds += time.perf_counter() - t

    start = time.perf_counter()
    threads = [pipe.thread(read), pipe.thread(analyse), pipe.thread(write)]
    try:
        _restore_photos(restorer, pipe, aligned_q, done_q, options, stats)
    except BaseException as err:  # KeyboardInterrupt included: stop the stages (a photo being written completes)
        pipe.fail(err)
    finally:
        for t in threads:
            t.join()
        stats.photo_wall += time.perf_counter() - start
    if pipe.error is not None:
        raise pipe.error


def _restore_photos(restorer, pipe, aligned_q, done_q, options, stats):
    """Gather consecutive photos until they hold ``batch_size`` faces, restore them in one call, hand them on."""
    max_photos = max(options.batch_size, 4)
    batch, n_faces, finished = [], 0, False
    while not finished:
        item = pipe.get(aligned_q)
        if item is END:
            if pipe.stop.is_set():
                return
            finished = True
        else:
            batch.append(item)
            n_faces += len(item.prepared['net_inputs']) if item.prepared else 0
        if batch and (finished or n_faces >= options.batch_size or len(batch) >= max_photos):
            _restore_batch(restorer, [it for it in batch if it.prepared and it.prepared['net_inputs']], options,
                           stats)
            for it in batch:
                if not pipe.put(done_q, it):
                    return
            batch, n_faces = [], 0
    pipe.put(done_q, END)


def _restore_batch(restorer, items, options, stats):
    if not items:
        return
    t = time.perf_counter()
    try:
        restored = restorer.restore_faces([f for it in items for f in it.prepared['net_inputs']], options.weight)
    except Exception as err:  # noqa: BLE001  (one photo alone: it failed; several: each alone)
        stats.network_seconds += time.perf_counter() - t
        if len(items) == 1:
            items[0].error = err
            return
        for it in items:
            _restore_batch(restorer, [it], options, stats)
        return
    seconds = time.perf_counter() - t
    stats.network_seconds += seconds
    i, n = 0, len(restored)
    for it in items:
        k = len(it.prepared['net_inputs'])
        it.restored = restored[i:i + k]
        it.seconds += seconds * k / max(n, 1)
        i += k


def _finish_photo(restorer, item, stem, handlers, options, recorder):
    path = item.path
    if item.skip is not None:
        recorder.record(path, 'photo', SKIPPED, item.seconds, reason=item.skip.reason, warning=item.skip.warning)
        return
    t = time.perf_counter()
    if item.error is None:
        try:
            from panininet.pipeline.color import monochrome_tone

            p = item.prepared
            faces = restorer.finish_faces(item.restored, p['crops'], monochrome_tone(item.img))
            whole = None if options.aligned else restorer.paste_back(item.img, p['affines'], faces)
            result = (p['crops'], faces, whole)
        except Exception as err:  # noqa: BLE001
            item.error = err
    if item.error is not None:
        reason = f'restoring failed ({_first_line(item.error)})'
        recorder.record(path, 'photo', FAILED, item.seconds + time.perf_counter() - t, reason=reason)
        return
    try:
        outputs = handlers.save_photo(path, stem, result)
    except OSError as err:
        reason = f'writing its results failed ({_first_line(err)})'
        recorder.record(path, 'photo', FAILED, item.seconds + time.perf_counter() - t, reason=reason)
        return
    recorder.record(path, 'photo', DONE, item.seconds + time.perf_counter() - t, outputs=outputs,
                    faces=len(result[1]))


def restore_clips(videos, stems, handlers, recorder, plan, stats):
    """Each clip of this rank through ``handlers.restore_video`` (its own streaming pipeline), one after another."""
    for path in videos:
        frames = plan.frames.get(path)
        per_frame = plan.work.get(path, 0) / frames if frames else 0
        start, base = time.perf_counter(), stats.work_done

        def progress(n=1, per_frame=per_frame):
            stats.frames += n
            stats.work_done += n * per_frame

        try:
            summary, outputs = handlers.restore_video(path, stems[path], progress)
        except InputSkipped as skip:
            recorder.record(path, 'video', SKIPPED, time.perf_counter() - start, reason=skip.reason,
                            warning=skip.warning)
        except Exception as err:  # noqa: BLE001  (recorded, warned about; the next clip runs)
            recorder.record(path, 'video', FAILED, time.perf_counter() - start,
                            reason=f'restoring the clip failed ({_first_line(err)})')
        else:
            recorder.record(path, 'video', DONE, summary.seconds, outputs=outputs, faces=summary.faces,
                            frames=summary.frames)
        stats.work_done = base + plan.work.get(path, 0)


def run_archive(restorer, files, out_root, settings, handlers, options, ranks, is_video, resume=False,
                subfolders=(), show_progress=True):
    """Restore this rank's share of ``files`` into ``out_root`` and record every input.

    Every rank calls this with the same arguments; rank 0 prepares the record (:func:`prepare_run`), the ranks
    plan together (:func:`assign_work`), every rank restores the inputs the plan gives it, and rank 0 consolidates
    the record once all have finished.

    Args:
        restorer (panininet.pipeline.restorer.PaniniRestorer): This rank's restorer (on its device).
        files (list[str]): Every input (photos and clips). out_root (str): Output folder (exists, writable).
        settings (dict): JSON-able values of everything that shapes the outputs (its fingerprint guards resume).
        handlers (Handlers): Reading and writing of inputs. options (Options): Restoring options.
        ranks (Ranks): :func:`start_ranks`. is_video (callable): path -> bool.
        resume (bool): Skip the inputs recorded with these settings whose outputs exist. Default: False.
        subfolders (tuple[str]): Output subfolders (leftover temporary files are removed). Default: ().
        show_progress (bool): A progress bar on rank 0. Default: True.

    Returns:
        tuple[list[dict] | None, list[dict], Plan]: The records of ``files`` (rank 0; None on the other ranks), the
        counters of every rank (:class:`RankStats` as dicts; this rank's alone on ranks > 0) and the plan.

    Raises:
        ArchiveError: The run cannot start (e.g. ``resume`` with other settings); nothing was written.
    """
    files = [osp.abspath(f) for f in files]
    plan = None
    if ranks.rank == 0:
        plan = prepare_run(out_root, files, settings, resume, subfolders)
    plan = broadcast_plan(plan, ranks)
    if plan.error:
        raise ArchiveError(plan.error)
    assign_work(plan, ranks, is_video)
    stats = RankStats()
    start = time.perf_counter()
    mine = [f for f in plan.files if plan.owner.get(f) == ranks.rank]
    stems = handlers.stems(plan.files)
    manifest = Manifest(out_root, ranks.rank)
    recorder = Recorder(manifest, out_root, settings, plan, ranks, stats, restorer.device)
    progress = Progress(out_root, ranks, plan, stats, show=show_progress and ranks.rank == 0)
    try:
        photos = [f for f in mine if not is_video(f)]
        if photos:
            stream_photos(restorer, photos, stems, handlers, options, recorder, stats)
        restore_clips([f for f in mine if is_video(f)], stems, handlers, recorder, plan, stats)
    finally:
        stats.wall = time.perf_counter() - start
        progress.close()
        manifest.close()
    every = [vars(stats)]
    if ranks.distributed:  # also the barrier: rank 0 consolidates once every rank has finished
        import torch.distributed as dist

        every = [None] * ranks.world
        dist.all_gather_object(every, vars(stats), group=ranks.group)
    if ranks.rank != 0:
        return None, every, plan
    records = consolidate(out_root)
    wanted = set(plan.files)
    return [r for r in records if r['input'] in wanted], every, plan


def summarize(records, run_id):
    """Counts of a run's records: photos, videos, frames, faces, skipped names (skipped + failed), earlier.

    Args:
        records (list[dict]): The records of the run's inputs. run_id (str): This run (the others are 'earlier').

    Returns:
        dict: ``photos``, ``videos``, ``frames``, ``faces``, ``skipped`` (list of names), ``earlier``.
    """
    done = [r for r in records if r['status'] == DONE]
    return dict(photos=sum(r['kind'] == 'photo' for r in done), videos=sum(r['kind'] == 'video' for r in done),
                frames=sum(r.get('frames') or 0 for r in done), faces=sum(r.get('faces') or 0 for r in done),
                skipped=[r['name'] for r in records if r['status'] != DONE],
                earlier=sum(r.get('run') != run_id for r in records))


def speed_line(every):
    """One line on the speed of a run from every rank's :class:`RankStats` (dicts): ranks, photos/s over the slowest
    rank's wall time, the network's busy fraction of the photo streams, and milliseconds per photo in each stage."""
    photos = sum(s['photos'] for s in every)
    wall = max(s['wall'] for s in every)
    stream = sum(s['photo_wall'] for s in every)
    per = lambda key: 1000 * sum(s[key] for s in every) / max(photos, 1)  # noqa: E731
    return (f'Speed: {len(every)} rank(s), {photos / max(wall, 1e-9):.2f} photos/s, network busy '
            f'{sum(s["network_seconds"] for s in every) / max(stream, 1e-9):.2f} of the photo streams; ms per photo: '
            f'read {per("read_seconds"):.1f}, analyse {per("analyse_seconds"):.1f}, network '
            f'{per("network_seconds"):.1f}, write {per("write_seconds"):.1f}')
