#!/usr/bin/env bash
# The prepared GPU check for a session with the device tool (one H200, no network), in under
# 8 minutes: environment report, GPU unit tests, and a reduced memory/speed ladder, all into $OUT.
# How to call it, and which wheels to carry, is in docs/benchmarks.md ("Running it").
#
#   bash benchmarks/device_run.sh          # from the repository root; OUT defaults to build/device-run
set -uo pipefail
OUT=${OUT:-build/device-run}
PY=${PYTHON:-python3}
mkdir -p "$OUT"
export HF_HUB_OFFLINE=1 MPLBACKEND=Agg TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1
step() { echo "== $(date -u +%H:%M:%S) $*"; }

step install
if [ -d .whl ]; then
    # No registry is reachable: the image's CUDA torch, transformers, peft and accelerate stay;
    # what it lacks (bitsandbytes) comes as wheels carried in .whl/. The repository runs from source.
    "$PY" -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH="/tmp/site:$PWD"
else
    # A GPU machine with network: CUDA torch from PyPI, then the course at its tested versions.
    "$PY" -m pip install -q torch && "$PY" -m pip install -q -c constraints.txt -e . || exit 1
fi

step doctor
"$PY" -m ftcourse doctor > "$OUT/doctor.txt" 2>&1  # a gated Hub model is reported missing offline: fine
cat "$OUT/doctor.txt"

step gpu unit tests
mapfile -t gpu_tests < <(grep -l "mark.gpu" tests/*.py)
if [ ${#gpu_tests[@]} -gt 0 ]; then
    timeout 150 "$PY" -m pytest -q -m gpu -p no:cacheprovider "${gpu_tests[@]}" 2>&1 | tee "$OUT/gpu-tests.txt"
fi

step ladder
# QLoRA runs first; settings still waiting when the 240 s budget is spent are recorded as skipped,
# and ladder.json/ladder.md are rewritten after every setting in case the hard timeout hits.
timeout 300 "$PY" benchmarks/ladder.py --out "$OUT" --seq-lens 512 2048 \
    --variants baseline gc adam8bit packed --steps 2 --time-budget 240 2>&1 | tee "$OUT/ladder.log"
status=$?

step "done (ladder exit status $status)"
ls -l "$OUT"
exit "$status"
