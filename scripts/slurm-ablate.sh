#!/usr/bin/env bash
# One shard of a normlab ablation study per Slurm array task.
#
#   sbatch --array=1-8 scripts/slurm-ablate.sh --preset freeze          # or: ... scripts/slurm-ablate.sh my-study.yaml
#
# Task i of n runs `normlab ablate ... --shard i/n`: a deterministic i-th of the study's
# (cell, seed) runs, into its own store results/<name>.shard-<i>-of-<n>.sqlite (on the shared
# file system, relative to the submission directory). A task that is preempted, requeued or
# resubmitted resumes: runs already stored are never run again. When every task is done:
#
#   normlab ablate merge results/freeze.shard-*-of-8.sqlite --into results/freeze.sqlite
#   normlab ablate report --store results/freeze.sqlite --notebook notebooks-export/freeze.ipynb
#
# Arguments are passed to `normlab ablate` (add --jobs, --quick, ...). Set NORMLAB to the binary
# (default: .build/release/normlab in the submission directory).
#SBATCH --job-name=normlab-ablate
#SBATCH --cpus-per-task=2
#SBATCH --time=02:00:00
#SBATCH --requeue
#SBATCH --output=normlab-ablate-%A_%a.out
set -euo pipefail

: "${SLURM_ARRAY_TASK_ID:?submit with sbatch --array=1-N}"
first=${SLURM_ARRAY_TASK_MIN:-1}
count=${SLURM_ARRAY_TASK_COUNT:-$(( ${SLURM_ARRAY_TASK_MAX:?} - first + 1 ))}
shard=$(( SLURM_ARRAY_TASK_ID - first + 1 ))
NORMLAB=${NORMLAB:-.build/release/normlab}

[ $# -gt 0 ] || { echo "usage: sbatch --array=1-N $0 (SPEC.yaml | --preset NAME) [normlab ablate options]" >&2; exit 2; }
echo "normlab ablate shard $shard/$count on $(hostname): $*"
exec "$NORMLAB" ablate "$@" --shard "$shard/$count" --threads "${SLURM_CPUS_PER_TASK:-1}"
