"""GPU check, one markdown report: CUDA tests, network speed, half-precision PSNR, a training step, the pipeline.

Run it through ``benchmarks/gpu_check.sh`` (which picks the Python and sets PYTHONPATH)::

    benchmarks/gpu_check.sh                          # report: $OUT/gpu_report.md if $OUT is set, else ./gpu_report.md
    benchmarks/gpu_check.sh /tmp/report.md --shared /path/to/shared
    benchmarks/gpu_check.sh --cpu-smoke /tmp/smoke.md  # plumbing check on a CPU at tiny sizes (no GPU needed)

Steps (each a child process with its own time limit; a failing or timed-out step is reported and the next runs):

1. environment: GPU, driver, torch, CUDA, whether basicsr's compiled CUDA kernels are there (else the native ops
   run: said so, and the check goes on);
2. every CUDA-marked test (``pytest -m cuda``): compiled kernels vs native ops, CPU vs CUDA, fp16/bf16 PSNR >= 40 dB
   against fp32 on the official reference input; their pass/skip/fail lines go into the report;
3. network speed, ``bench_network.py`` at batch 1/8/32 in fp32 (TF32 off), bf16 and fp16 autocast: faces/s,
   ms/face, GFLOP/s, peak memory, PaniniNet MFR beside GFPGANv1Clean (when gfpgan is importable);
4. half precision, ``bench_half.py --device cuda``: PSNR of bf16 / fp16 autocast / ``.half()`` against fp32 on the
   official reference input with the recipe weights, and the fp16 overflow headroom;
5. one paper-config training iteration, ``bench_train.py --paper --iters 1``: s/iter and peak memory;
6. the whole pipeline on the test photos (``bench_inference.py --photos <shared>/testdata/whole_imgs``, dlib
   detector: no download), seconds per face.

Goals the report measures against: >= 400 faces/s network-only at bf16 batch 32 on an H200, bf16 PSNR >= 40 dB.
The budget is under 8 minutes in all: the step limits are 30 + 90 + 3 x 60 + 45 + 75 + 60 s = 8 min at most, and
the steps usually end well before them.

``--shared`` (default: ``../shared`` beside the repository, or ``$PANINI_SHARED_DIR``) must hold
``official_reference/`` and ``testdata/``; without it steps 4 and 6 and the PSNR test say so and are skipped.
On a machine without basicsr/facexlib/dlib, carry their wheels (see the README "GPU check").

``--cpu-smoke`` runs the same steps on the CPU at tiny sizes (tiny networks, the tiny training options, one photo),
to prove the plumbing where no GPU is available; its figures mean nothing.
"""
import argparse
import json
import os
import os.path as osp
import platform
import re
import subprocess
import sys
import tempfile
import time

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
BENCH = osp.join(REPO, 'benchmarks')
GOAL_FACES_PER_S = 400  # network only, bf16, batch 32, H200
GOAL_PSNR_DB = 40.0


def default_report():
    out = os.environ.get('OUT')
    return osp.join(out, 'gpu_report.md') if out else osp.abspath('gpu_report.md')


def default_shared():
    return os.environ.get('PANINI_SHARED_DIR') or osp.join(osp.dirname(REPO), 'shared')


class Report:
    """Markdown sections, rewritten (atomically) after every step so a killed run still leaves a report."""

    def __init__(self, path):
        self.path = path
        self.parts = []

    def add(self, text):
        self.parts.append(text.rstrip() + '\n')
        self.flush()

    def flush(self):
        sys.path.insert(0, REPO)
        from panininet.atomic import write_text_atomic
        write_text_atomic(self.path, '\n'.join(self.parts))


def run_step(cmd, timeout, env):
    """Run ``cmd``; returns (ok, seconds, combined output, why-not-ok)."""
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as err:
        out = (err.stdout or b'').decode() if isinstance(err.stdout, bytes) else (err.stdout or '')
        return False, time.perf_counter() - t0, out, f'timed out after {timeout} s'
    except OSError as err:
        return False, time.perf_counter() - t0, '', f'could not start: {err}'
    out = proc.stdout + ('\n' + proc.stderr if proc.stderr.strip() else '')
    why = None if proc.returncode == 0 else f'exit status {proc.returncode}'
    return proc.returncode == 0, time.perf_counter() - t0, out, why


def tail(text, n=15):
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    return '\n'.join(lines[-n:])


def section(report, title, ok, seconds, why, body, output):
    status = 'ok' if ok else f'FAILED ({why})'
    text = f'## {title}\n\n{status}, {seconds:.0f} s\n\n{body}\n'
    if not ok:
        text += f'\nLast lines of its output:\n\n```\n{tail(output)}\n```\n'
    report.add(text)


def environment(python, env, timeout):
    code = ('import json, torch, panininet\nfrom panininet.platform import compat_basicsr as compat\n'
            'cuda = torch.cuda.is_available()\n'
            'print(json.dumps({"torch": torch.__version__, "cuda": torch.version.cuda, "cuda_available": cuda,'
            ' "gpu": torch.cuda.get_device_name() if cuda else None,'
            ' "gpu_mem_gib": round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1) if cuda else None,'
            ' "op_path": panininet.OP_PATH,'
            ' "fused_act_kernel": compat._FusedLeakyReLUDispatch.compiled is not None,'
            ' "upfirdn2d_kernel": compat._UpFirDn2dDispatch.compiled is not None}))')
    ok, _, out, why = run_step([python, '-c', code], timeout, env)
    if not ok:
        return None, out, why
    return json.loads(out.strip().splitlines()[0]), out, None


def pytest_summary(output):
    """Lines of ``pytest -rA`` naming each test's outcome, and the final count line."""
    keep = [ln for ln in output.splitlines() if re.match(r'^(PASSED|FAILED|SKIPPED|ERROR|XFAIL|XPASS)\b', ln)]
    final = [ln for ln in output.splitlines() if re.search(r'\d+ (passed|failed|skipped|deselected)', ln)]
    return keep, (final[-1].strip('= ') if final else 'no summary line')


def network_table(rows):
    lines = ['| network | dtype | batch | faces/s | ms/face | GFLOP/s | peak mem (GiB) | finite |',
             '|---|---|---:|---:|---:|---:|---:|---|']
    for r in rows:
        if 'error' in r:
            lines.append(f'| {r["net"]} | {r["dtype"]} | {r["batch"]} | failed: {r["error"][:80]} | | | | |')
            continue
        lines.append(f'| {r["net"]} | {r["dtype"]} | {r["batch"]} | {r["faces_per_s"]:.1f} | {r["ms_per_face"]:.2f} | '
                     f'{r["gflop_per_s"]:.0f} | {r["peak_gib"]:.2f} | {r["finite"]} |')
    return '\n'.join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('report', nargs='?', default=None, help='markdown report to write (default: see above)')
    parser.add_argument('--shared', default=default_shared(), help='folder with official_reference/ and testdata/')
    parser.add_argument('--cpu-smoke', action='store_true', help='tiny sizes on the CPU: check the plumbing only')
    parser.add_argument('--python', default=sys.executable, help='interpreter for the steps')
    parser.add_argument('--timeout-scale', type=float, default=None,
                        help='multiply every step\'s time limit (default 1; 6 with --cpu-smoke: a loaded CPU)')
    args = parser.parse_args(argv)
    report_path = osp.abspath(args.report or default_report())
    if osp.isdir(report_path):
        print(f'error: report path {report_path} is a folder; give a file name (e.g. gpu_report.md)', file=sys.stderr)
        return 2
    smoke = args.cpu_smoke
    device = 'cpu' if smoke else 'cuda'
    scale = args.timeout_scale or (6.0 if smoke else 1.0)

    def limit(seconds):
        return int(seconds * scale)

    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get('PYTHONPATH', ''), PYTHONUNBUFFERED='1')
    have_shared = osp.isdir(osp.join(args.shared, 'official_reference'))
    if have_shared:
        env['PANINI_SHARED_DIR'] = osp.abspath(args.shared)
    report = Report(report_path)
    started = time.perf_counter()
    load = os.getloadavg() if hasattr(os, 'getloadavg') else (float('nan'),)
    git = subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], cwd=REPO, capture_output=True, text=True)
    report.add(f'# GPU check{" (CPU SMOKE RUN: tiny sizes, figures meaningless)" if smoke else ""}\n\n'
               f'{time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())}, host {platform.node()}, '
               f'{os.cpu_count()} CPUs, load {load[0]:.1f} at start, '
               f'git {git.stdout.strip() or "?"}'
               f'; shared folder: {args.shared if have_shared else "ABSENT (" + args.shared + ")"}\n\n'
               f'Goals: >= {GOAL_FACES_PER_S} faces/s network-only at bf16 batch 32 on an H200; '
               f'bf16 PSNR >= {GOAL_PSNR_DB:.0f} dB vs fp32.')

    # 1. environment
    info, out, why = environment(args.python, env, limit(30))
    if info is None:
        report.add(f'## 1. Environment\n\nFAILED ({why}): panininet does not import; nothing else can run.\n\n'
                   f'```\n{tail(out)}\n```')
        return 1
    kernels = info['fused_act_kernel'] and info['upfirdn2d_kernel']
    body = '\n'.join(f'- {k}: {v}' for k, v in info.items())
    if not kernels:
        body += ('\n\nbasicsr\'s compiled CUDA kernels (fused_act, upfirdn2d) are absent: the native ops '
                 '(panininet.platform.native_ops: upfirdn2d as a depthwise conv) run instead; the kernel-vs-native '
                 'test is skipped.')
    if not info['cuda_available'] and not smoke:
        body += '\n\n**No CUDA device visible**: the GPU steps below will fail or skip.'
    report.add(f'## 1. Environment\n\n{body}')

    with tempfile.TemporaryDirectory() as tmp:
        # 2. CUDA-marked tests
        cmd = [args.python, '-m', 'pytest', '-m', 'cuda', '-rA', '-q', '-p', 'no:cacheprovider', 'tests']
        ok, sec, out, why = run_step(cmd, limit(90), env)
        lines, final = pytest_summary(out)
        if not ok and 'no tests ran' in out:
            ok, why = False, 'no CUDA-marked tests collected'
        body = f'`pytest -m cuda tests`: **{final}**\n\n' + '\n'.join(f'- {ln}' for ln in lines)
        section(report, '2. CUDA-marked tests', ok, sec, why, body, out)

        # 3. network speed
        rows, notes = [], []
        t0 = time.perf_counter()
        for dtype in ('fp32', 'bf16', 'fp16'):
            if smoke and dtype == 'fp16':
                notes.append('fp16: not run on the CPU (autocast fp16 needs a GPU)')
                continue
            js = osp.join(tmp, f'net_{dtype}.json')
            cmd = [args.python, osp.join(BENCH, 'bench_network.py'), '--device', device, '--dtype', dtype,
                   '--ops', 'fast', '--repeats', '3', '--warmup', '2', '--json', js, '--in-process',
                   '--batch-sizes', *(['1', '2'] if smoke else ['1', '8', '32'])]
            if smoke:
                cmd += ['--tiny', '--repeats', '1', '--warmup', '0']
            ok, sec, out, why = run_step(cmd, limit(60), env)
            if ok and osp.isfile(js):
                with open(js) as f:
                    rows += json.load(f)['rows']
            else:
                notes.append(f'{dtype}: FAILED ({why}):\n\n```\n{tail(out, 8)}\n```')
        goal = [r for r in rows if r.get('net', '').startswith('PaniniNet') and r['dtype'] == 'bf16'
                and r['batch'] == 32 and 'faces_per_s' in r]
        verdict = (f'\n\nGoal: PaniniNet bf16 batch 32: {goal[0]["faces_per_s"]:.0f} faces/s '
                   f'({"met" if goal[0]["faces_per_s"] >= GOAL_FACES_PER_S else "NOT met"}, goal '
                   f'{GOAL_FACES_PER_S})' if goal else '')
        body = (network_table(rows) + verdict + ('\n\n' + '\n\n'.join(notes) if notes else '') +
                f'\n\n`benchmarks/bench_network.py --device {device} --dtype D --batch-sizes '
                f'{"1 2 --tiny" if smoke else "1 8 32"} --ops fast` '
                '--in-process (best of 3 after 2 warm-ups, fp32 with TF32 off; FLOPs counted on the meta '
                'device; peak = torch.cuda.max_memory_allocated)')
        section(report, '3. Network speed', bool(rows) and not any('FAILED' in n for n in notes),
                time.perf_counter() - t0, 'see below', body, '')

        # 4. half precision on the official input
        if have_shared:
            cmd = [args.python, osp.join(BENCH, 'bench_half.py'), '--shared', args.shared, '--device', device]
            if smoke:
                cmd += ['--modes', '--no-headroom']  # the fp32 forward against the official crop only
            ok, sec, out, why = run_step(cmd, limit(45), env)
            body = f'`benchmarks/bench_half.py --device {device}`:\n\n' + '\n'.join(
                ln for ln in out.splitlines() if ln.startswith(('|', 'device', 'fp16 overflow')))
            section(report, '4. Half precision (official reference input, recipe weights)', ok, sec, why, body, out)
        else:
            report.add('## 4. Half precision\n\nskipped: no shared folder (official_reference/); pass --shared')

        # 5. one paper-config training iteration
        js = osp.join(tmp, 'train.json')
        cmd = [args.python, osp.join(BENCH, 'bench_train.py'), '--device', device, '--warmup', '1', '--iters', '1',
               '--json', js]
        cmd += ['--threads', '2'] if smoke else ['--paper']
        ok, sec, out, why = run_step(cmd, limit(75), env)
        body = ''
        if ok and osp.isfile(js):
            with open(js) as f:
                train = json.load(f)
            body = '| options | batch | device | s/iter | peak mem (GiB) |\n|---|---:|---|---:|---:|\n' + '\n'.join(
                f'| {r["options"]} | {r["batch"]} | {r.get("gpu", r["device"])} | {r["sec_per_iter"]:.3f} | '
                f'{r["peak_mem_gib"]} |' for r in train['rows'])
        body += '\n\n`benchmarks/bench_train.py --paper --warmup 1 --iters 1` (G + D step, EMA; data loading excluded)'
        section(report, '5. Training iteration (paper config)', ok, sec, why, body, out)

        # 6. the pipeline on the test photos
        photos = osp.join(args.shared, 'testdata', 'whole_imgs')
        if osp.isdir(photos):
            js = osp.join(tmp, 'pipeline.json')
            cmd = [args.python, osp.join(BENCH, 'bench_inference.py'), '--device', device, '--photos', photos,
                   '--detector', 'dlib', '--batch_size', '8', '--repeats', '1', '--json', js]
            if smoke:
                cmd += ['--limit', '1', '--skip-network', '--threads', '2', '--tiny']
            ok, sec, out, why = run_step(cmd, limit(60), env)
            body = ''
            if ok and osp.isfile(js):
                with open(js) as f:
                    res = json.load(f)
                body = '\n'.join(f'- {k}: {v:.3f}' if isinstance(v, float) else f'- {k}: {v}'
                                 for k, v in res.items() if k != 'per_photo')
                body += '\n\n| photo | faces | wall s |\n|---|---:|---:|\n' + '\n'.join(
                    f'| {k} | {v["faces"]} | {v["wall_s"]} |' for k, v in res.get('per_photo', {}).items())
            section(report, '6. Pipeline on the test photos (dlib detector)', ok, sec, why, body, out)
        else:
            report.add(f'## 6. Pipeline\n\nskipped: {photos} is absent; pass --shared')

    report.add(f'---\nTotal {time.perf_counter() - started:.0f} s.')
    print(f'wrote {report_path}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
