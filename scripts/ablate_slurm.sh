#!/usr/bin/env bash
# One ablation grid as a SLURM job array: task i of N runs `melody-lab ablate GRID --shard i/N`
# into one shared OUT (on a file system every node sees). Rows are assigned by config hash
# (int(key, 16) % N == i); shared stages are trained once under file locks; every task rebuilds
# OUT/results.csv, results.json and summary.md from all row files present, so the table is complete
# when the last task ends. Re-submitting resumes (finished rows are never recomputed).
#
#   N=8 GRID=ablations/denoisers.yaml OUT=/shared/results/denoisers \
#     sbatch --array=0-7 scripts/ablate_slurm.sh [extra ablate flags, e.g. --corpus DIR]
#
# --array must be 0-(N-1). Adjust the #SBATCH lines (or override them on the sbatch line).
#SBATCH --job-name=melody-ablate
#SBATCH --output=slurm-%A_%a.out
#SBATCH --nodes=1
#SBATCH --ntasks=1
#SBATCH --cpus-per-task=8
#SBATCH --gres=gpu:1
#SBATCH --time=04:00:00
set -euo pipefail
: "${N:?set N, the number of shards (= the array size)}"
: "${GRID:?set GRID, the grid file}"
: "${OUT:?set OUT, the shared output folder}"
: "${SLURM_ARRAY_TASK_ID:?submit with sbatch --array=0-$((N - 1))}"
if [ "$SLURM_ARRAY_TASK_ID" -ge "$N" ]; then
  echo "array task $SLURM_ARRAY_TASK_ID >= N=$N: submit with --array=0-$((N - 1))" >&2
  exit 2
fi
export OMP_NUM_THREADS="${SLURM_CPUS_PER_TASK:-1}"
exec "${MELODY_LAB:-melody-lab}" ablate "$GRID" --out "$OUT" --shard "$SLURM_ARRAY_TASK_ID/$N" "$@"
