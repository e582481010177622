#!/usr/bin/env bash
# The prepared GPU check for a CUDA machine without network (its steps' time limits add up to about
# 9 minutes), everything written to $OUT:
#   1. the environment report and the GPU unit tests;
#   2. every notebook on CUDA with the course's own base model, twice: in fp16 with bf16 refused
#      (FTCOURSE_NO_BF16=1: the GPU reports no bf16, as a T4 does, and nothing may train in bf16)
#      and in bf16; then the t4 stand-in's notebook 04 and 05 on CUDA (Qwen2's biases through
#      bitsandbytes' CUDA kernels). Executed notebooks, times and peaks per run;
#   3. a reduced memory/speed ladder.
# How to call it, and which wheels to carry, is in docs/benchmarks.md ("Running it").
#
#   bash benchmarks/device_run.sh          # from the repository root; OUT defaults to build/device-run
set -uo pipefail
OUT=${OUT:-build/device-run}
PY=${PYTHON:-python3}
mkdir -p "$OUT"
export HF_HUB_OFFLINE=1 MPLBACKEND=Agg TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1
export FTCOURSE_FAST=1  # 30 held-out examples per task: the mechanics, inside the time budget
step() { echo "== $(date -u +%H:%M:%S) $*"; }
status=0

step install
if "$PY" -c "import ftcourse, trl, peft, bitsandbytes" 2>/dev/null; then
    echo "the course and its libraries are importable: nothing to install"
elif [ -d .whl ]; then
    # No registry is reachable: the image's CUDA torch, transformers, peft and accelerate stay;
    # what it lacks (bitsandbytes, trl, ...) comes as wheels carried in .whl/. The repository
    # runs from source.
    "$PY" -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH="/tmp/site:$PWD"
else
    # A GPU machine with network: CUDA torch from PyPI, then the course at its tested versions.
    "$PY" -m pip install -q torch && "$PY" -m pip install -q -c constraints.txt -e ".[dev]" || exit 1
fi
"$PY" -m pip list 2>/dev/null | grep -iE "^(torch|transformers|peft|trl|bitsandbytes|accelerate) " \
    > "$OUT/versions.txt"

step doctor
"$PY" -m ftcourse doctor > "$OUT/doctor.txt" 2>&1  # a Hub model is reported missing offline: fine
FTCOURSE_NO_BF16=1 "$PY" -m ftcourse doctor --profile cpu-tiny > "$OUT/doctor-no-bf16.txt" 2>&1
cat "$OUT/doctor.txt" "$OUT/doctor-no-bf16.txt"

step gpu unit tests
mapfile -t gpu_tests < <(grep -l "mark.gpu" tests/*.py)
if [ ${#gpu_tests[@]} -gt 0 ]; then
    timeout 120 "$PY" -m pytest -q -m gpu -p no:cacheprovider "${gpu_tests[@]}" 2>&1 | tee "$OUT/gpu-tests.txt"
fi

# One course run: notebooks, times and peaks into $OUT/<label>/ (scripts/run_course.py --out).
course() {
    local label=$1 budget=$2 vars=$3; shift 3
    step "course: $label ($vars $*)"
    # shellcheck disable=SC2086  # $vars holds NAME=value words for env
    env $vars timeout "$budget" "$PY" scripts/run_course.py --no-html --out "$OUT/$label" "$@" \
        > "$OUT/$label.log" 2>&1
    local rc=$?
    tail -n 12 "$OUT/$label.log"
    [ $rc -eq 0 ] || { echo "course $label failed (exit $rc)"; status=1; }
}
# DEVICE_RUN_ONLY="00" runs only those notebooks and no ladder: a quick check of this script itself
only=(${DEVICE_RUN_ONLY:+--only $DEVICE_RUN_ONLY})
course fp16-no-bf16 130 "FTCOURSE_PROFILE=cpu-tiny FTCOURSE_DTYPE=float16 FTCOURSE_NO_BF16=1" "${only[@]}"
course bf16 130 "FTCOURSE_PROFILE=cpu-tiny FTCOURSE_DTYPE=bfloat16" "${only[@]}"
course t4-standin 50 "FTCOURSE_PROFILE=t4-standin" --only ${DEVICE_RUN_ONLY:-04 05}

if [ -z "${DEVICE_RUN_ONLY:-}" ]; then
step ladder
# QLoRA runs first; settings still waiting when the budget is spent are recorded as skipped,
# and ladder.json/ladder.md are rewritten after every setting in case the hard timeout hits.
timeout 120 "$PY" benchmarks/ladder.py --out "$OUT/ladder" --seq-lens 512 2048 \
    --variants baseline gc adam8bit packed --steps 2 --time-budget 90 2>&1 | tee "$OUT/ladder.log"
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1
fi

# One archive of everything, with the ladder's figures and the environment report beside it.
step pack
cp "$OUT/ladder/ladder.json" "$OUT/ladder.json" 2>/dev/null
tar czf /tmp/device-run.tgz -C "$OUT" . && mv /tmp/device-run.tgz "$OUT/device-run.tgz"
find "$OUT" -mindepth 1 -maxdepth 1 ! -name device-run.tgz ! -name ladder.json ! -name doctor.txt \
    -exec rm -rf {} +
step "done (exit status $status)"
ls -l "$OUT"
exit "$status"
