"""Archive runs (panininet.archive through inference_panini.py): sharding over torchrun ranks (gloo), the manifest,
resume after SIGKILL, refused settings, two torchrun launches sharing one rendezvous.

Every run here is pinned to one core with one network thread and ``--batch_size 1``: then a face's computation does
not depend on which faces share its network call nor on the number of threads (both change the last bit of a
convolution on CPU), nor does x264's output on its thread count, so a sharded run must equal the one-process run
byte for byte.
"""
import hashlib
import json
import os
import os.path as osp
import signal
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest
import torch
from helpers import REPO_ROOT, free_port, get_shared

from panininet import archive

pytest.importorskip('dlib')
av = pytest.importorskip('av')

CLI = osp.join(REPO_ROOT, 'inference_panini.py')
FAST = ['--detector', 'dlib', '--dlib_upsample', '0', '--device', 'cpu', '--no_download', '--batch_size', '1']
N_PHOTOS, N_FRAMES = 4, 4


# ----------------------------------------------------------------------------------------------- pure functions
def test_lpt_balances_by_work_not_by_count():
    works = [100, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10]  # one long clip and ten photos
    owner = archive.assign_lpt(works, 2)
    assert owner == archive.assign_lpt(works, 2)  # the same plan on every call (every rank could compute it)
    assert owner[0] == 0 and set(owner[1:]) == {1}  # the clip alone on a rank, the photos on the other
    loads = [sum(w for w, o in zip(works, owner) if o == r) for r in range(2)]
    assert loads == [100, 100]
    rng = np.random.default_rng(0)
    for _ in range(20):  # LPT is within 4/3 of the best makespan, which is >= max(total / ranks, largest)
        works = list(rng.integers(1, 1000, rng.integers(1, 30)))
        for world in (1, 2, 3, 5):
            owner = archive.assign_lpt(works, world)
            makespan = max(sum(w for w, o in zip(works, owner) if o == r) for r in range(world))
            assert makespan <= 4 / 3 * max(sum(works) / world, max(works)) + 1e-9


def test_work_comes_from_headers(tmp_path):
    cv2.imwrite(str(tmp_path / 'a.png'), np.zeros((30, 40, 3), np.uint8))
    assert archive.work_of(str(tmp_path / 'a.png'), False) == (1200 + archive.PHOTO_OVERHEAD, None)
    (tmp_path / 'b.txt').write_text('x')
    assert archive.work_of(str(tmp_path / 'b.txt'), False)[0] >= archive.PHOTO_OVERHEAD
    clip = write_clip(str(tmp_path / 'c.mp4'), [np.zeros((32, 48, 3), np.uint8)] * 3)
    assert archive.work_of(clip, True) == (3 * 32 * 48, 3)


def test_record_survives_a_torn_line_and_merges(tmp_path):
    out = str(tmp_path)
    rec = lambda name, status, **kw: dict(input=f'/in/{name}', name=name, status=status, **kw)  # noqa: E731
    archive.write_text_atomic(osp.join(out, archive.MANIFEST), json.dumps(rec('a.png', 'failed')) + '\n')
    m0, m1 = archive.Manifest(out, 0), archive.Manifest(out, 1)
    m0.append(rec('a.png', 'done', outputs=['restored_imgs/a.png']))  # redone: the newer record wins
    m1.append(rec('b.png', 'skipped', reason='not an image'))
    m0.close(), m1.close()
    with open(m1.path, 'a') as f:
        f.write('{"input": "/in/c.png", "name": "c.pn')  # a rank killed in the middle of a line
    records = archive.read_records(out)
    assert [(r['name'], r['status']) for r in records] == [('a.png', 'done'), ('b.png', 'skipped')]
    archive.consolidate(out)
    assert not osp.exists(archive.parts_dir(out))
    import pandas as pd

    table = pd.read_json(osp.join(out, archive.MANIFEST), lines=True)
    assert list(table['name']) == ['a.png', 'b.png'] and table['reason'][1] == 'not an image'


def test_leftovers_of_a_kill_are_recognised(tmp_path):
    from panininet.atomic import atomic_path

    sub = tmp_path / 'restored_imgs'
    with atomic_path(str(sub / 'x.png')) as tmp:  # the name a killed writer would leave
        left = osp.basename(tmp)
    for name in (left, '.clip.mp4.a1B2c3_d.part.mp4', 'x.png', '.hidden.png', 'part.png'):
        (sub / name).write_bytes(b'.')
    assert archive.remove_stale_parts(str(tmp_path), ('restored_imgs',)) == 2
    assert sorted(os.listdir(sub)) == ['.hidden.png', 'part.png', 'x.png']


# ----------------------------------------------------------------------------------------------------- runs
def write_clip(path, frames, fps=10):
    out = av.open(path, 'w')
    v = out.add_stream('libx264', rate=fps)
    v.height, v.width = frames[0].shape[:2]
    v.pix_fmt = 'yuv420p'
    for img in frames:
        for p in v.encode(av.VideoFrame.from_ndarray(img, format='bgr24')):
            out.mux(p)
    for p in v.encode(None):
        out.mux(p)
    out.close()
    return path


@pytest.fixture(scope='module', autouse=True)
def one_core():
    """This process and its children on one core, one network thread (see the module docstring)."""
    cores, threads = os.sched_getaffinity(0), torch.get_num_threads()
    os.sched_setaffinity(0, {min(cores)})
    torch.set_num_threads(1)
    yield
    os.sched_setaffinity(0, cores)
    torch.set_num_threads(threads)


@pytest.fixture(scope='module')
def inputs(tmp_path_factory):
    """Four photos with a face each, a text file, a 4-frame clip."""
    img = cv2.imread(get_shared('testdata', 'whole_imgs', 'Blake_Lively.jpg'))[:, 350:]
    img = cv2.resize(img, (176, 232), interpolation=cv2.INTER_AREA)
    folder = tmp_path_factory.mktemp('archive_in')
    for i in range(N_PHOTOS):
        cv2.imwrite(str(folder / f'p{i}.png'), np.roll(img, 3 * i, axis=1))
    (folder / 'notes.txt').write_text('not an image')
    write_clip(str(folder / 'clip.mp4'), [np.roll(img, 2 * t, axis=0) for t in range(N_FRAMES)])
    return str(folder)


def outputs_of(out):
    """{relative path: sha256} of every file under ``out`` but the manifest."""
    found = {}
    for root, _, files in os.walk(out):
        for f in files:
            rel = osp.relpath(osp.join(root, f), out)
            if rel != archive.MANIFEST:
                with open(osp.join(root, f), 'rb') as data:
                    found[rel] = hashlib.sha256(data.read()).hexdigest()
    return found


def records_of(out):
    return {r['name']: r for r in archive.read_records(str(out))}


@pytest.fixture(scope='module')
def reference(cli, inputs, tiny_model, tmp_path_factory):
    """The one-process run (in this process)."""
    out = tmp_path_factory.mktemp('archive_ref') / 'out'
    with pytest.warns(UserWarning, match='notes.txt: not an image'):
        assert cli.main(['-i', inputs, '-o', str(out), '--model_path', tiny_model, *FAST]) == cli.EXIT_SKIPPED
    return str(out)


def torchrun(args, nproc=2, extra=(), wait=True):
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node', str(nproc), *extra, CLI, *args]
    env = dict(os.environ, PYTHONPATH=REPO_ROOT, PYTHONWARNINGS='ignore')
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if not wait:
        return proc
    out, err = proc.communicate(timeout=600)
    return proc.returncode, out, err


def standalone_n(args, nproc):
    return torchrun(args, nproc=nproc, extra=['--standalone'])


def standalone(args):
    return standalone_n(args, 2)


def test_a_manifest_line_for_every_input(reference, inputs):
    import pandas as pd

    table = pd.read_json(osp.join(reference, archive.MANIFEST), lines=True)
    assert sorted(table['name']) == sorted(os.listdir(inputs))
    by_name = table.set_index('name')
    assert by_name.loc['notes.txt', 'status'] == 'skipped'
    assert 'not an image' in by_name.loc['notes.txt', 'reason']
    assert by_name.loc['clip.mp4', 'frames'] == N_FRAMES and by_name.loc['clip.mp4', 'kind'] == 'video'
    assert set(by_name['status']) == {'done', 'skipped'} and by_name['fingerprint'].nunique() == 1
    for name, row in by_name.iterrows():  # every output recorded exists, and every output is recorded
        assert row['size'] == os.path.getsize(osp.join(inputs, name))
        assert row['input'] == osp.join(inputs, name) and row['seconds'] >= 0
    recorded = sorted(o for outs in table['outputs'] for o in outs)
    assert recorded == sorted(outputs_of(reference))
    assert by_name.loc['p0.png', 'faces'] == 1 and by_name.loc['p0.png', 'settings']['weight'] == 0.5


def test_two_ranks_equal_one_rank_file_for_file(reference, inputs, tiny_model, tmp_path):
    out = tmp_path / 'out'
    rc, stdout, err = standalone(['-i', inputs, '-o', str(out), '--model_path', tiny_model, *FAST])
    assert rc == 0, err[-3000:]  # torchrun: a run that finished (notes.txt skipped) exits 0
    assert 'Done: 4 photo(s), 1 video(s) (4 frames), 8 face(s) restored, 1 file(s) skipped (notes.txt)' in stdout
    assert outputs_of(out) == outputs_of(reference)
    records = records_of(out)
    assert sorted(records) == sorted(os.listdir(inputs))
    assert {r['rank'] for r in records.values()} == {0, 1}  # both ranks worked
    assert not osp.exists(archive.parts_dir(str(out)))  # the parts were merged into manifest.jsonl


def wait_for(cond, proc, timeout=300):
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        found = cond()
        if found:
            return found
        time.sleep(0.02)
    return None


def progress_of(out, rank):
    try:
        with open(osp.join(archive.parts_dir(str(out)), f'rank-{rank:05d}.progress.json')) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


@pytest.mark.parametrize('victim', [1, 0])
def test_sigkill_then_resume(cli, reference, inputs, tiny_model, tmp_path, victim):
    """SIGKILL of rank 1 once it has recorded a photo / of rank 0 while its clip's .part file is written; then
    --resume."""
    out = tmp_path / 'out'
    args = ['-i', inputs, '-o', str(out), '--model_path', tiny_model, *FAST]
    proc = torchrun(args, extra=['--standalone'], wait=False)

    def ready():
        if victim == 1:
            done = [r for r in records_of(out).values() if r['status'] == 'done' and r['rank'] == 1]
            return done and progress_of(out, 1)
        state = progress_of(out, 0)
        parts = [f for f in os.listdir(out / 'restored_videos') if '.part' in f] if (out / 'restored_videos'
                                                                                    ).is_dir() else []
        return state if state and parts else None  # its clip's .part file is being written

    state = wait_for(ready, proc)
    assert state, 'the run ended before it could be killed: ' + (proc.communicate()[1][-2000:] if proc.poll()
                                                                 is not None else '')
    os.kill(state['pid'], signal.SIGKILL)
    proc.communicate(timeout=300)
    assert proc.returncode != 0
    before = records_of(out)
    recorded = {n: r for n, r in before.items() if r['status'] in ('done', 'skipped')}
    assert len(recorded) < len(os.listdir(inputs))  # something was left to do
    stamps = {o: os.stat(out / o).st_mtime_ns for r in recorded.values() for o in r['outputs']}
    if victim == 0:
        assert [f for f in os.listdir(out / 'restored_videos') if '.part' in f]  # what SIGKILL leaves behind

    rc = cli.main([*args, '--resume'])
    assert rc == cli.EXIT_SKIPPED  # notes.txt: recorded as skipped, not retried
    assert outputs_of(out) == outputs_of(reference)  # every output, none half-written, nothing extra
    assert {o: os.stat(out / o).st_mtime_ns for o in stamps} == stamps  # nothing recorded was redone
    after = records_of(out)
    assert sorted(after) == sorted(os.listdir(inputs))
    assert {n for n in after if after[n]['run'] != before.get(n, {}).get('run')} == set(after) - set(recorded)


def test_resume_with_other_settings_is_refused(cli, reference, inputs, tiny_model, tmp_path, capsys):
    import shutil

    out = tmp_path / 'out'
    shutil.copytree(reference, out)
    stamps = {o: os.stat(out / o).st_mtime_ns for o in outputs_of(out)}
    args = ['-i', inputs, '-o', str(out), '--model_path', tiny_model, *FAST, '--resume']
    assert cli.main([*args, '-w', '0.7']) == cli.EXIT_USAGE
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith('Error: ') and "weight: 0.5 then, 0.7 now" in err[0]
    assert 'new -o' in err[0]
    assert {o: os.stat(out / o).st_mtime_ns for o in stamps} == stamps
    # the same settings: nothing to do (notes.txt stays recorded as skipped); a new -o takes the new settings
    rc = cli.main(args)
    assert rc == cli.EXIT_SKIPPED and '(6 file(s) recorded by an earlier run, not redone)' in capsys.readouterr().out
    assert {o: os.stat(out / o).st_mtime_ns for o in stamps} == stamps
    new = tmp_path / 'new'
    photo = osp.join(inputs, 'p0.png')
    assert cli.main(['-i', photo, '-o', str(new), '--model_path', tiny_model, *FAST, '--resume', '-w', '0.7']) == 0
    assert records_of(new)['p0.png']['settings']['weight'] == 0.7


def test_two_nodes_on_one_machine(reference, inputs, tiny_model, tmp_path):
    """Two torchrun launches (one process each) meeting at a c10d rendezvous on 127.0.0.1."""
    out = tmp_path / 'out'
    port = free_port()
    launches = [torchrun(['-i', inputs, '-o', str(out), '--model_path', tiny_model, *FAST], nproc=1, wait=False,
                         extra=['--nnodes', '2', '--rdzv_backend', 'c10d', '--rdzv_endpoint', f'127.0.0.1:{port}',
                                '--rdzv_id', 'archive-test', '--rdzv_conf', f'is_host={int(node == 0)}',
                                '--local_addr', '127.0.0.1'])
                for node in range(2)]
    results = [p.communicate(timeout=600) for p in launches]
    assert [p.returncode for p in launches] == [0, 0], [e[-2000:] for _, e in results]
    assert outputs_of(out) == outputs_of(reference)
    assert {r['rank'] for r in records_of(out).values()} == {0, 1}
    assert sum('Done: 4 photo(s)' in o for o, _ in results) == 1  # rank 0's summary, over the whole run


@pytest.mark.cuda
@pytest.mark.skipif(torch.cuda.device_count() < 1, reason='needs a CUDA GPU')
def test_ranks_take_their_own_gpu(inputs, tiny_model, tmp_path):
    """nccl: each rank restores on cuda:LOCAL_RANK (as many ranks as GPUs, at most 2)."""
    n = min(2, torch.cuda.device_count())
    out = tmp_path / 'out'
    rc, stdout, err = standalone_n(['-i', inputs, '-o', str(out), '--model_path', tiny_model, '--detector', 'dlib',
                                    '--dlib_upsample', '0', '--device', 'cuda', '--no_download'], n)
    assert rc == 0, err[-3000:]
    records = records_of(out)
    assert sorted(records) == sorted(os.listdir(inputs))
    assert {(r['rank'], r['device']) for r in records.values()} == {(i, f'cuda:{i}') for i in range(n)}
    assert 'Done: 4 photo(s), 1 video(s) (4 frames), 8 face(s) restored' in stdout
