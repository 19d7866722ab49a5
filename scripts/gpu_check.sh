#!/usr/bin/env bash
# The prepared device check (issue 19): `make gpu-check OUT=dir [SMOKE=1]` runs this.
# Steps, timeouts and outputs: benchmarks/gpu_check.py. GPU_CHECK_BUDGET seconds in all (default 570,
# 9.5 min: start the device call with timeout_s=598); every step is time-boxed inside it; a failing
# step never stops the rest; DIR/summary.json is printed last.
#
# Wheels first, here: `bash scripts/gpu_wheels.sh` (fills .whl/, git-ignored). The device tool call:
#   run(carry=[".whl"], timeout_s=598, command=
#     "python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade
#      --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site || exit;
#      export PYTHONUNBUFFERED=1; make gpu-check OUT=$OUT PY=python3 PACK=1 2>&1 | tail -c 6000")
# (PACK=1 tars the per-step logs into $OUT/steps.tar.gz: the tool brings back at most 8 files.)
# FIT_MODULE: the fit entry point (default experiments.fit).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${1:?usage: scripts/gpu_check.sh OUT_DIR [--smoke] [--pack]}
shift
PY=${PY:-python3}
export FIT_MODULE=${FIT_MODULE:-experiments.fit}
mkdir -p "$OUT"
BUDGET=${GPU_CHECK_BUDGET:-570}
# the check keeps inside BUDGET itself (each step's timeout is cut to what is left); this box is a backstop
timeout -k 5 $((BUDGET + 15)) "$PY" -m benchmarks.gpu_check --out "$OUT" --budget "$BUDGET" "$@"
rc=$?
[ $rc -eq 124 ] && echo "gpu_check: the whole check hit its $((BUDGET + 15)) s box; $OUT/summary.json has the steps done" >&2
[ -f "$OUT/summary.json" ] && cat "$OUT/summary.json"
exit $rc
