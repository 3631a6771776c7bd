#!/usr/bin/env python
"""Why does (or doesn't) UDRL learn each factor of eq. (10)? The runs of issue 17, one after another, and their table.

Every run is one ``scripts/udrl_probe.py`` call (same DRE, same linear probe; see its docstring) with the arguments
listed in :data:`RUNS`; each writes ``<out>/<run>/probe.json``. Runs whose ``probe.json`` exists are skipped, so
the script can be stopped and started again. At the end (and with ``--table-only``) ``<out>/results.md`` and
``<out>/results.json`` collect every finished run: held-out and 5-fold-CV R² per factor, the control's held-out R²,
iterations and CPU-minutes.

Groups of runs:

* ``base``: 10 pictures (panini_examples/GT and five scikit-image pictures; 7 train, 3 held out), DRE width 16,
  64-px crops of the 256-px DRE input, 2 CPU-minutes each: UDRL with plain BatchNorm, UDRL with shuffled
  BatchNorm (``bn_splits`` 4), UDRL with in-batch negatives, and *supervised* (the upper
  bound of this encoder and input).
* ``input``: the supervised bound at a DRE input of 512 (no 2x2 pooling).
* ``factor``: UDRL with one factor varying at a time, the others fixed (``udrl_probe.FIXED``).
* ``main``: UDRL on every clean test-data face (``--testdata``) with 4 content views each; with all degradations
  distinct, with the bank's degradations drawn from 32 parameter sets (``--pool 32``: other content each time)
  and with a bank of 32 pairs (the same two images and degradation recur); and the supervised bound on them.
* ``queue``: 32 distinct degradations (bank 32) against a queue of 256 keys (each degradation ~8 times in the
  queue: false negatives) and of 16.
* ``crop``: UDRL with 128-px and 32-px crops (the same CPU budget: fewer, larger or more, smaller crops).

Example (the figures in the README; about 26 CPU-minutes of training and 10 of banks and probes, one thread):

    python scripts/udrl_experiments.py --testdata ../shared/testdata --out results/udrl_experiments
"""
import argparse
import json
import math
import os
import os.path as osp
import sys
import time

from panininet.atomic import write_text_atomic

FACTORS = ('log_r', 'delta', 'q', 'sigma')
TARGETS = FACTORS + ('log_blur',)
#: udrl_probe.py options of the README's first run (7 + 3 images, DRE width 16, 64-px crops, queue 256)
BASE = dict(skimage=True, bank=1200, batch=16, crop=64, num_feat=16, queue=256, momentum=0.99, lr=1e-3,
            probe_train=600, probe_test=300, probe_crops=4, iters=100000)
#: the controlled runs: smaller bank and probe, no control
SMALL = dict(BASE, bank=200, probe_train=300, probe_test=150, probe_crops=2, no_control=True)
SHUF = dict(bn_splits=4)


def _run(group, minutes, content, opts, **changes):
    return (group, minutes, content, dict(opts, **changes))


#: name -> (group, CPU-minutes of training, content, udrl_probe.py options). Content 'gt': panini_examples/GT and
#: the scikit-image pictures; 'all': every clean test-data face (GT, MFR_result, SR_result) with 4 content views,
#: and the scikit-image pictures. Training stops after the CPU-minutes (``iters`` is only an upper bound).
RUNS = {
    'base_udrl_shufbn': _run('base', 2, 'gt', BASE, **SHUF),
    'base_udrl_plainbn': _run('base', 2, 'gt', BASE),
    'base_supervised': _run('base', 2, 'gt', BASE, objective='supervised'),
    'factor_q': _run('factor', 1, 'gt', SMALL, vary='q'),
    'input_supervised_dre512': _run('input', 1, 'gt', BASE, objective='supervised', dre_size=512, bank=500),
    'main_udrl_allfaces': _run('main', 3, 'all', BASE, views=4),
    'factor_delta': _run('factor', 1, 'gt', SMALL, vary='delta'),
    'factor_log_r': _run('factor', 1, 'gt', SMALL, vary='log_r'),
    'base_udrl_batchneg': _run('base', 2, 'gt', BASE, batch_negatives=True),
    'queue_32deg_K256': _run('queue', 0.7, 'gt', SMALL, bank=32),
    'queue_32deg_K16': _run('queue', 0.7, 'gt', SMALL, bank=32, queue=16),
    'crop_128': _run('crop', 1, 'gt', SMALL, crop=128),
    'crop_32': _run('crop', 1, 'gt', SMALL, crop=32),
    'main_udrl_allfaces_pool32': _run('main', 3, 'all', BASE, views=4, pool=32),
    'main_udrl_allfaces_bank32': _run('main', 1.5, 'all', BASE, views=4, bank=32),
    'main_supervised_allfaces': _run('main', 2, 'all', BASE, views=4, objective='supervised'),
}


def to_argv(opts):
    """udrl_probe.py command-line arguments of an options dict (True = a flag)."""
    argv = []
    for key, value in opts.items():
        flag = '--' + key.replace('_', '-')
        if value is True:
            argv.append(flag)
        elif value is not False:
            argv += [flag, str(value)]
    return argv


def run_args(name, testdata, out, cache):
    """udrl_probe.py arguments of run ``name``."""
    group, minutes, content, opts = RUNS[name]
    images = (['--testdata', testdata] if content == 'all'
              else ['--images', osp.join(testdata, 'panini_examples', 'GT')])
    return images + to_argv(opts) + ['--max-minutes', str(minutes), '--threads', '1', '--cache', cache,
                             '--out', osp.join(out, name)]


def fmt(v):
    return '—' if v is None or (isinstance(v, float) and math.isnan(v)) else f'{v:.2f}'


def collect(out):
    """Rows of every finished run: dict per run."""
    rows = []
    for name, (group, _, content, _) in RUNS.items():
        path = osp.join(out, name, 'probe.json')
        if not osp.isfile(path):
            continue
        with open(path, encoding='utf-8') as f:
            res = json.load(f)
        trained = next(k for k in res['scores_r2'] if 'random' not in k)
        control = res['scores_r2'].get('random DRE (control)')
        control_cv = res['cv_scores_r2'].get('random DRE (control)')
        as_float = lambda d: {t: float(d.get(t, 'nan')) for t in TARGETS}  # noqa: E731  ('nan' strings back to floats)
        cfg = res['config']
        rows.append(dict(
            run=name, group=group, content=content, heldout=as_float(res['scores_r2'][trained]),
            cv=as_float(res['cv_scores_r2'][trained]), control=as_float(control) if control else None,
            control_cv=as_float(control_cv) if control_cv else None,
            iters=res['iters_done'], cpu_min=res.get('train_cpu_s', float('nan')) / 60,
            images=len(res['train_images']) + len(res['heldout_images']),
            setup=(f"{cfg['objective']}, vary {cfg['vary']}, bank {cfg['bank']}"
                   + (f" from {cfg['pool']} degradations" if cfg.get('pool') else '') + f", K {cfg['queue']}, crop "
                   f"{cfg['crop']}, DRE input {cfg['dre_size']}, bn_splits {cfg['bn_splits']}"
                   + (', batch negatives' if cfg.get('batch_negatives') else ''))))
    return rows


def table(rows):
    head = ('| run | setup | images | iters | CPU-min | held-out R² log r / δ / q / σ / log blur | CV R² (same) '
            '| random-DRE control: held-out R² (same) | control: CV R² (same) |')
    lines = [head, '|---|---|---|---|---|---|---|---|---|']
    for r in rows:
        ctrl, ctrl_cv = (' / '.join(fmt(r[key][t]) for t in TARGETS) if r[key] else '—'
                         for key in ('control', 'control_cv'))
        lines.append(f"| {r['run']} | {r['setup']} | {r['images']} | {r['iters']} | {r['cpu_min']:.1f} | " +
                     ' / '.join(fmt(r['heldout'][t]) for t in TARGETS) + ' | ' +
                     ' / '.join(fmt(r['cv'][t]) for t in TARGETS) + f' | {ctrl} | {ctrl_cv} |')
    return '\n'.join(lines) + '\n'


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--testdata', required=True, help='the test-data folder (../shared/testdata)')
    p.add_argument('--out', required=True, help='output folder (one sub-folder per run)')
    p.add_argument('--runs', nargs='*', default=None, help=f'runs to do (default: all): {", ".join(RUNS)}')
    p.add_argument('--cache', default=None, help='bank cache folder (default: <out>/cache)')
    p.add_argument('--table-only', action='store_true', help='only (re)write results.md from finished runs')
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    unknown = [r for r in args.runs or [] if r not in RUNS]
    if unknown:
        print(f'Unknown run(s) {unknown}; choose from {list(RUNS)}.', file=sys.stderr)
        sys.exit(2)
    if not osp.isdir(args.testdata):
        print(f'--testdata {args.testdata} is not a folder: give ../shared/testdata.', file=sys.stderr)
        sys.exit(2)
    os.makedirs(args.out, exist_ok=True)
    if not args.table_only:
        sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
        import udrl_probe
        cache = args.cache or osp.join(args.out, 'cache')
        for name in args.runs or list(RUNS):
            if osp.isfile(osp.join(args.out, name, 'probe.json')):
                print(f'{name}: done already', flush=True)
                continue
            t0 = time.time()
            print(f'=== {name}: udrl_probe.py {" ".join(run_args(name, args.testdata, args.out, cache))}',
                  flush=True)
            udrl_probe.main(run_args(name, args.testdata, args.out, cache))
            print(f'=== {name}: {time.time() - t0:.0f} s wall', flush=True)
    rows = collect(args.out)
    write_text_atomic(osp.join(args.out, 'results.json'), json.dumps(rows, indent=2, default=str) + '\n')
    write_text_atomic(osp.join(args.out, 'results.md'), table(rows))
    print(table(rows), end='')
    return rows


if __name__ == '__main__':
    main()
