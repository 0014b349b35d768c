#!/usr/bin/env bash
# The prepared GPU check (docs/fidelity.md, "Training on a GPU"): paper-size training steps of
# every stage, a timed 10-s generation at 5/10/20 steps, and a one-rank nccl group under torchrun.
#
#   scripts/device_check.sh                 # on a CUDA machine (about 3-5 minutes on one GPU, untested)
#   scripts/device_check.sh --cpu --quick   # the same code on the CPU at paper_micro sizes
#
# PYTHON (default python3) must have the project's dependencies. With OUT set, the JSON summaries
# go to $OUT/device_check.json and $OUT/device_check_distributed.json. Each part is cut at
# DEVICE_CHECK_TIMEOUT seconds (default 420); any failure makes the exit status non-zero.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
LIMIT=${DEVICE_CHECK_TIMEOUT:-420}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
main=() dist=()
if [ -n "${OUT:-}" ]; then
    main=(--summary "$OUT/device_check.json") dist=(--summary "$OUT/device_check_distributed.json")
fi
status=0
timeout "$LIMIT" "$PY" scripts/device_check.py "$@" ${main[@]+"${main[@]}"} || status=1
timeout "$LIMIT" "$PY" -m torch.distributed.run --standalone --nproc_per_node 1 \
    scripts/device_check.py --distributed "$@" ${dist[@]+"${dist[@]}"} || status=1
[ "$status" -eq 0 ] && echo "device_check: all passed" || echo "device_check: FAILED (see above)" >&2
exit "$status"
