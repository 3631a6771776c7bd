#!/usr/bin/env bash
# One command for the GPU check: CUDA tests, network speed (batch 1/8/32, fp32/bf16/fp16), half-precision PSNR,
# a paper-config training iteration and the pipeline on the test photos, in one markdown report (under 8 minutes).
#
#   benchmarks/gpu_check.sh [REPORT.md] [--shared DIR] [--cpu-smoke]
#
# REPORT.md defaults to $OUT/gpu_report.md when $OUT is set, else ./gpu_report.md. --cpu-smoke runs the same steps
# at tiny sizes on the CPU (plumbing check). Python: $PYTHON, else `python` on PATH, else python3. Every step is
# in benchmarks/gpu_check.py, which documents them; a failing step is reported and the next one runs.
set -u
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"
py="${PYTHON:-}"
if [ -z "$py" ]; then
    if command -v python >/dev/null 2>&1; then py=python; else py=python3; fi
fi
export PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}"
exec "$py" "$here/gpu_check.py" --python "$(command -v "$py")" "$@"
