#!/usr/bin/env bash
# The GPU check of issue 16, as one prepared script for a lent GPU machine (docs/benchmarks.md).
#
#   OUT=/some/folder bash bench/gpu_check.sh          # from the repository root
#
# 1. installs the wheels in .whl/ (packages the machine's image lacks: pydicom, pylibjpeg,
#    nibabel, highdicom, pynetdicom, typer at the project's version...) into /tmp/site;
# 2. records GPU utilisation every second (nvidia-smi dmon) while it runs;
# 3. runs the GPU tests (marker gpu) and the device, precision, cache and resume tests;
# 4. bench/train_speed.py on the GPU at batch 8 fp32 and batch 64 bf16 (product vs bare
#    loop, data path from the cache vs the training rate, inference end to end vs forward);
# 5. `breastlab train --device cuda` on phantom data (the utilisation trace shows it);
# 6. BreastMNIST (.whl/breastmnist_28.npz, a public set) at fp32 and bf16: test AUC and its
#    DeLong 95% CI, to show that bf16 moves the AUC by less than the CI.
#
# Every step is bounded by `timeout` and the script goes on after a failing step; about
# 4-7 minutes in all (the steps' limits together: 515 s). Logs go to $OUT (8 flat files);
# the summary is printed last.
# For a dry run on a CPU: GPU_CHECK_DEVICE=cpu GPU_CHECK_QUICK=1 OUT=/tmp/x bash bench/gpu_check.sh
set -u

OUT=${OUT:?set OUT to a folder for the logs}
DEVICE=${GPU_CHECK_DEVICE:-cuda}
QUICK=${GPU_CHECK_QUICK:-0}
PY=${PYTHON:-python3}
mkdir -p "$OUT"
cd "$(dirname "$0")/.." || exit 1
T0=$(date +%s)
SUMMARY="$OUT/summary.txt"
: >"$SUMMARY"

note() { echo "[$(($(date +%s) - T0)) s] $*" | tee -a "$SUMMARY"; }

step() {  # step NAME SECONDS LOGFILE COMMAND...: bounded, logged, never fatal
    local name=$1 limit=$2 log=$3
    shift 3
    note "start: $name (limit ${limit} s)"
    timeout --kill-after=10 "$limit" "$@" >>"$log" 2>&1
    local rc=$?
    note "end: $name rc=$rc$([ $rc -eq 124 ] && echo ' (time limit)')"
    return 0
}

mark() { [ -f "$OUT/dmon.txt" ] && wc -l <"$OUT/dmon.txt" || echo 0; }
util() {  # util FROM_LINE LABEL: GPU utilisation (sm %) of the dmon samples since FROM_LINE
    [ -f "$OUT/dmon.txt" ] || return 0
    awk -v from="$1" -v label="$2" 'NR > from && !/^#/ && NF >= 3 {n++; s += $2; if ($2 > 0) busy++; if ($2 > m) m = $2}
        END {if (n) printf "GPU utilisation during %s: %d samples, mean %.1f %%, max %d %%, %d above 0\n", label, n, s / n, m, busy}' \
        "$OUT/dmon.txt" | tee -a "$SUMMARY"
}

export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 MPLBACKEND=Agg
export BREASTLAB_CACHE=/tmp/breastlab-gpu-cache
export PYTHONPATH="$PWD/src:/tmp/site"

# 1. wheels -----------------------------------------------------------------------------
if ls .whl/*.whl >/dev/null 2>&1; then
    step "install wheels" 40 "$OUT/env.txt" \
        "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl
else
    note "no .whl/ folder: using the packages installed here"
fi

# 2. utilisation trace -------------------------------------------------------------------
DMON_PID=""
if command -v nvidia-smi >/dev/null 2>&1; then
    nvidia-smi >>"$OUT/env.txt" 2>&1
    LINEBUF=$(command -v stdbuf >/dev/null 2>&1 && echo "stdbuf -oL" || echo "")
    $LINEBUF nvidia-smi dmon -s u -d 1 >"$OUT/dmon.txt" 2>&1 &  # one line per second, flushed
    DMON_PID=$!
else
    note "no nvidia-smi: no utilisation trace"
fi
"$PY" - >>"$OUT/env.txt" 2>&1 <<'EOF'
import json, torch
from breastlab.core.device import device_info, resolve_device
print("torch", torch.__version__, "cuda available", torch.cuda.is_available())
print(json.dumps(device_info(resolve_device("auto"), "32")))
import pydicom, typer, nibabel
print("pydicom", pydicom.__version__, "typer", typer.__version__, "nibabel", nibabel.__version__)
EOF

# 3. tests --------------------------------------------------------------------------------
step "tests (gpu, device, cache, resume)" 110 "$OUT/tests.txt" \
    "$PY" -m pytest -q -p no:cacheprovider -o addopts="-ra" \
    tests/test_gpu.py tests/test_device.py tests/test_view_cache.py tests/test_training_loop.py \
    "tests/test_training_distributed.py::test_two_gloo_processes_match_one_process"

# 4. benchmarks ----------------------------------------------------------------------------
PHANTOM=/tmp/breastlab-gpu-phantom
if [ "$QUICK" = 1 ]; then
    SMALL=(--cases 24 --matrix 64 --epochs 1 --repeat 1 --tile 1 --workers 1 --threads 1)
    BIG=("${SMALL[@]}")
else
    SMALL=(--cases 96 --epochs 3 --repeat 2 --tile 10 --workers 14 --threads 8)
    BIG=(--cases 96 --epochs 5 --repeat 2 --tile 40 --workers 8 --threads 8 --skip-data)
fi
mkdir -p "$PHANTOM"
step "bench batch 8 fp32" 100 "$OUT/bench_b8_fp32.txt" \
    "$PY" bench/train_speed.py --device "$DEVICE" --batch-size 8 --precision 32 \
    --workdir "$PHANTOM" "${SMALL[@]}"
M0=$(mark)
step "bench batch 64 bf16" 75 "$OUT/bench_b64_bf16.txt" \
    "$PY" bench/train_speed.py --device "$DEVICE" --batch-size 64 --precision bf16 \
    --workdir "$PHANTOM" "${BIG[@]}"
util "$M0" "the batch-64 bf16 bench"

# 5. the product as a user runs it ------------------------------------------------------------
if [ -f "$PHANTOM/cases.csv" ]; then
    EPOCHS=$([ "$QUICK" = 1 ] && echo 1 || echo 4)
    rm -rf /tmp/breastlab-gpu-run
    M0=$(mark)
    step "breastlab train --device $DEVICE" 70 "$OUT/train.txt" \
        "$PY" -c 'import sys; from breastlab.cli.main import app; sys.argv[0] = "breastlab"; app()' \
        train "$PHANTOM/cases.csv" --out /tmp/breastlab-gpu-run --models resnet18 --repeats 1 \
        --epochs "$EPOCHS" --no-pretrained --device "$DEVICE" --quiet
    util "$M0" "breastlab train (batch 8, fp32)"
    "$PY" - >>"$OUT/train.txt" 2>&1 <<'EOF'
import json
prov = json.load(open("/tmp/breastlab-gpu-run/provenance.json"))
print("provenance device_info:", json.dumps(prov["config"].get("device_info")))
for line in open("/tmp/breastlab-gpu-run/models/resnet18/repeat0/history.csv"):
    print(line.rstrip())
EOF
fi

# 6. bf16 against fp32 on a public set --------------------------------------------------------
if [ -f .whl/breastmnist_28.npz ]; then
    BM=(--data .whl/breastmnist_28.npz --seeds 0 --intensity 0 --translate 0.05 --no-resume
        --threads 4 --device "$DEVICE" --out /tmp/breastlab-gpu-bmnist)
    [ "$QUICK" = 1 ] && BM+=(--quick --epochs 1) || BM+=(--epochs 30)
    for p in 32 bf16; do
        step "BreastMNIST precision $p" 60 "$OUT/breastmnist.txt" \
            "$PY" bench/breastmnist.py "${BM[@]}" --precision "$p"
    done
fi

# summary ----------------------------------------------------------------------------------------
if [ -n "$DMON_PID" ]; then
    kill "$DMON_PID" 2>/dev/null
    wait "$DMON_PID" 2>/dev/null
    awk '!/^#/ && NF >= 3 {n++; s += $2; if ($2 > 0) busy++; if ($2 > m) m = $2}
         END {if (n) printf "GPU utilisation: %d samples, mean %.1f %%, max %d %%, %d samples above 0\n", n, s / n, m, busy}' \
        "$OUT/dmon.txt" | tee -a "$SUMMARY"
fi
{
    echo "--- tests"; tail -n 15 "$OUT/tests.txt" 2>/dev/null
    for f in "$OUT"/bench_*.txt; do
        echo "--- $(basename "$f")"
        grep -E "^(device|training img|data path|inference|wall-clock|speed)" "$f"
    done
    echo "--- train"; grep -E "trained|provenance|error" "$OUT/train.txt" 2>/dev/null
    echo "--- BreastMNIST fp32 then bf16"; grep -E "^(ensemble test|seed 0)" "$OUT/breastmnist.txt" 2>/dev/null
} >>"$SUMMARY" 2>&1
note "done"
cat "$SUMMARY"
