#!/usr/bin/env bash
# One GPU session in one command (bench/README.md, "On a GPU: one call"), from the repo root:
#
#   . .gpu/setup.sh && bash bench/gpu-session.sh
#
# Prints the adapter, runs our matmul, conv and train-step suites, then the same problems in
# PyTorch (bench/torch_baseline.py), then a comparison table. Files go to $OUT (default
# bench/results/gpu): log.txt, matmul.json, conv.json, train-step.json, torch.json, summary.txt.
# A failing or timed-out step is logged and the next one runs. Each step has a time cap, shrunk
# so that the steps after it keep a reserve (the second number): the whole run ends within
# BUDGET_S seconds (+ a few for kills), under the device tool's 600 s per call. The PyTorch
# sections save what they have when stopped, so a timed-out one still leaves partial results.
set -uo pipefail
OUT=${OUT:-bench/results/gpu}
PYTHON=${PYTHON:-python3}
BUDGET_S=${BUDGET_S:-480}
mkdir -p "$OUT"
LOG=$OUT/log.txt
: > "$LOG"
deadline=$(( $(date +%s) + BUDGET_S ))

# step NAME CAP_S RESERVE_S CMD...: runs CMD under `timeout`, output to stdout and log.txt.
step() {
  local name=$1 cap=$2 reserve=$3
  shift 3
  local left=$(( deadline - $(date +%s) - reserve ))
  local limit=$(( cap < left ? cap : left ))
  if (( limit < 5 )); then
    echo "=== $name: skipped, out of time" | tee -a "$LOG"
    return
  fi
  echo "=== $name (limit ${limit} s): $*" | tee -a "$LOG"
  local t0=$(date +%s)
  timeout -k 5 "$limit" "$@" 2>&1 | tee -a "$LOG"
  local rc=$?
  echo "=== $name: exit $rc$( ((rc == 124)) && echo ' (timed out)') after $(( $(date +%s) - t0 )) s" | tee -a "$LOG"
}

# What ran where; the Vulkan lines matter if Dawn finds no adapter (see ../shared/gpu/README.md).
step machine 15 450 bash -c 'nvidia-smi -L; node --version; '"$PYTHON"' -c "import torch; print(\"torch\", torch.__version__, torch.cuda.is_available())";
  echo "VK_DRIVER_FILES=${VK_DRIVER_FILES:-}"; ls /usr/local/nvidia/share/vulkan/icd.d/ /usr/share/vulkan/icd.d/ 2>&1; ldconfig -p | grep -i vulkan'
step info 60 400 node dist/cli.js info
step matmul 150 300 node dist/cli.js bench matmul --json "$OUT/matmul.json"
step conv 120 200 node dist/cli.js bench conv --json "$OUT/conv.json"
step train-step 180 90 node dist/cli.js bench train-step --reps 3 --json "$OUT/train-step.json"
step torch-matmul 40 70 "$PYTHON" bench/torch_baseline.py matmul --matmul-json "$OUT/matmul.json" --out "$OUT/torch.json"
step torch-conv 60 45 "$PYTHON" bench/torch_baseline.py conv --out "$OUT/torch.json"
step torch-train-step 120 5 "$PYTHON" bench/torch_baseline.py train-step --out "$OUT/torch.json"
step compare 10 0 "$PYTHON" bench/torch_baseline.py compare --dir "$OUT"
# The table again, on its own (the compare step's lines without the step markers).
sed -n '/^=== compare (/,/^=== compare: exit/{/^===/d;p}' "$LOG" > "$OUT/summary.txt"
echo "files in $OUT: $(ls "$OUT" | tr '\n' ' ')"
