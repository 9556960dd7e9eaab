#!/usr/bin/env bash
# scripts/slurm-ablate.sh against a real Slurm (issue 17, item 8).
#
#   bash scripts/test-slurm.sh          (run by `make test`; skipped with a reason unless root)
#
# Installs Debian's slurm-wlm and munge when missing, then, in a temporary folder: generates
# a munge key and a slurm.conf for a one-node cluster on this host (127.0.0.1, private ports),
# starts munged, slurmctld and slurmd in the foreground (so their pids are known), submits
# `sbatch --array=1-4 scripts/slurm-ablate.sh --preset freeze --quick` (one CPU per task),
# waits (bounded), checks every array task COMPLETED, merges the four shard stores, runs the
# same study on this machine with the same threads per run, and compares the two reports'
# tables and per-run results (they must be identical). On exit — success, failure or Ctrl-C —
# it stops exactly the daemons it started, by pid, and removes the folder.
#
# NORMLAB: the binary to test (default: `swift build --show-bin-path`/normlab, built if missing).
# SLURM_TEST_TIMEOUT: seconds to wait for the array job (default 600).
# NORMLAB_SLURM_KEEP=1 keeps the temporary folder (logs, stores, reports) for inspection.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

skip() { echo "test-slurm: SKIPPED: $*"; exit 0; }
fail() { echo "test-slurm: FAILED: $*" >&2; exit 1; }
say() { echo "test-slurm: $*"; }

[ "$(id -u)" -eq 0 ] || skip "needs root (installs slurm-wlm and munge, runs slurmctld and slurmd as root)"
[ "$(uname -s)" = Linux ] || skip "needs Linux (Debian's slurm-wlm)"

if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v sbatch >/dev/null \
   || ! command -v munged >/dev/null; then
    command -v apt-get >/dev/null || skip "slurm-wlm/munge are not installed and there is no apt-get"
    say "installing slurm-wlm and munge (apt-get)"
    # policy-rc.d 101: the packages' init scripts must not start system-wide daemons.
    policy=/usr/sbin/policy-rc.d; made_policy=0
    if [ ! -e "$policy" ]; then printf '#!/bin/sh\nexit 101\n' > "$policy"; chmod +x "$policy"; made_policy=1; fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends slurm-wlm munge >/dev/null \
        || { [ "$made_policy" = 1 ] && rm -f "$policy"; skip "apt-get install slurm-wlm munge failed (offline?)"; }
    [ "$made_policy" = 1 ] && rm -f "$policy"
fi

NORMLAB=${NORMLAB:-}
if [ -z "$NORMLAB" ]; then
    NORMLAB="$(swift build --show-bin-path)/normlab"
    [ -x "$NORMLAB" ] || swift build
fi
[ -x "$NORMLAB" ] || fail "no normlab binary at $NORMLAB"
NORMLAB=$(cd "$(dirname "$NORMLAB")" && pwd)/$(basename "$NORMLAB")

tmp=$(mktemp -d /tmp/normlab-slurm.XXXXXX)
chmod 755 "$tmp"
pids=()
cleanup() {
    local status=$?
    local pid
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    if [ "$status" -ne 0 ] && [ -d "$tmp" ]; then
        for log in "$tmp"/*.log "$tmp"/jobs/*.out; do
            [ -f "$log" ] && { echo "--- $log (last lines)" >&2; tail -n 15 "$log" >&2; }
        done
    fi
    if [ -n "${NORMLAB_SLURM_KEEP:-}" ]; then echo "test-slurm: kept $tmp" >&2; else rm -rf "$tmp"; fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Free TCP ports for slurmctld and slurmd.
read -r ctld_port slurmd_port < <(/usr/bin/python3 - <<'EOF'
import socket
socks = [socket.socket() for _ in range(2)]
for s in socks: s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in socks])
EOF
)
host=$(hostname -s)
cpus=$(nproc)

# munge: a private key, socket and daemon.
mkdir -p "$tmp/munge"
chmod 700 "$tmp/munge"
dd if=/dev/urandom of="$tmp/munge/munge.key" bs=1024 count=1 status=none
chmod 400 "$tmp/munge/munge.key"
socket="$tmp/munge/munge.socket"
munged --foreground --force --key-file="$tmp/munge/munge.key" --socket="$socket" \
    --pid-file="$tmp/munge/munged.pid" --seed-file="$tmp/munge/munge.seed" --log-file="$tmp/munged.log" &
pids+=($!)
for _ in $(seq 100); do [ -S "$socket" ] && break; sleep 0.1; done
[ -S "$socket" ] || fail "munged did not create its socket"

mkdir -p "$tmp/state" "$tmp/spool" "$tmp/jobs"
cat > "$tmp/slurm.conf" <<EOF
ClusterName=normlabtest
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$socket
CredType=cred/munge
StateSaveLocation=$tmp/state
SlurmdSpoolDir=$tmp/spool
SlurmctldPidFile=$tmp/slurmctld.pid
SlurmdPidFile=$tmp/slurmd.pid
SlurmctldLogFile=$tmp/slurmctld.log
SlurmdLogFile=$tmp/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
MinJobAge=600
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus State=UNKNOWN
PartitionName=normlab Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
export SLURM_CONF="$tmp/slurm.conf"

slurmctld -D -i -f "$SLURM_CONF" > "$tmp/slurmctld.out" 2>&1 &
pids+=($!)
slurmd -D -f "$SLURM_CONF" -N "$host" > "$tmp/slurmd.out" 2>&1 &
pids+=($!)
ready=0
for _ in $(seq 150); do
    if sinfo -h -o '%t' 2>/dev/null | grep -Eq '^(idle|mix|alloc)'; then ready=1; break; fi
    sleep 0.2
done
[ "$ready" = 1 ] || fail "the node did not become idle (sinfo: $(sinfo -h 2>&1 | tr '\n' ' '))"
say "one-node cluster up on $host (slurmctld :$ctld_port, slurmd :$slurmd_port, $cpus CPUs)"

# The study as a 4-task array, one CPU (so one compute thread) per task.
started=$(date +%s)
job=$(cd "$tmp/jobs" && sbatch --parsable --array=1-4 --cpus-per-task=1 --output="$tmp/jobs/task-%a.out" \
        --export=ALL,NORMLAB="$NORMLAB" "$repo/scripts/slurm-ablate.sh" --preset freeze --quick)
job=${job%%;*}
say "submitted array job $job; running the same study on this machine meanwhile"

# Single-machine reference with the same threads per run (results depend only on that).
"$NORMLAB" ablate run --preset freeze --quick --threads 1 --store "$tmp/single.sqlite" --no-report \
    > "$tmp/single.log" 2>&1 || fail "the single-machine run failed: $(tail -n 3 "$tmp/single.log")"

limit=${SLURM_TEST_TIMEOUT:-600}
while squeue -h -j "$job" 2>/dev/null | grep -q .; do
    [ $(( $(date +%s) - started )) -lt "$limit" ] || { scancel "$job" || true; fail "array job $job still running after ${limit}s"; }
    sleep 1
done
states=$(scontrol -o show job "$job" | grep -o 'JobState=[A-Z_]*' | sort | uniq -c | tr -s ' ' | tr '\n' ';')
[ "$(scontrol -o show job "$job" | grep -c 'JobState=COMPLETED')" = 4 ] || fail "array tasks did not all complete: $states"
say "array job $job: 4 tasks COMPLETED in $(( $(date +%s) - started ))s"

shards=("$tmp"/jobs/results/freeze-quick.shard-*-of-4.sqlite)
[ "${#shards[@]}" = 4 ] || fail "expected 4 shard stores, found ${#shards[@]}"
"$NORMLAB" ablate merge "${shards[@]}" --into "$tmp/merged.sqlite" > "$tmp/merge.log" 2>&1 \
    || fail "merge failed: $(tail -n 3 "$tmp/merge.log")"
"$NORMLAB" ablate report --store "$tmp/merged.sqlite" --out "$tmp/report-slurm" > /dev/null 2>&1 || fail "report of the merged store failed"
"$NORMLAB" ablate report --store "$tmp/single.sqlite" --out "$tmp/report-single" > /dev/null 2>&1 || fail "report of the single-machine store failed"
# table.csv: every metric's mean, std, n, min and max per cell (table.md adds the run's
# provenance: hosts and compute time, which differ by design).
cmp -s "$tmp/report-slurm/table.csv" "$tmp/report-single/table.csv" \
    || fail "table.csv differs between Slurm and single machine: $(diff "$tmp/report-slurm/table.csv" "$tmp/report-single/table.csv" | head -n 6 | tr '\n' ' ')"
if ! diff "$tmp/report-slurm/table.md" "$tmp/report-single/table.md" > "$tmp/table-md.diff"; then
    say "table.md differs only in provenance: $(grep '^>' "$tmp/table-md.diff" | cut -c3- | head -n 2 | tr '\n' ' ')"
fi
# Per-run results without provenance columns (host and times differ by design).
/usr/bin/python3 - "$tmp/report-slurm/runs.csv" "$tmp/report-single/runs.csv" <<'EOF' || fail "runs.csv differs between Slurm and single machine"
import csv, sys
def rows(path):
    with open(path) as f:
        table = list(csv.DictReader(f))
    drop = {"host", "started_at", "finished_at", "duration_s", "seconds", "git_commit", "git_dirty"}
    return sorted(tuple((k, v) for k, v in r.items() if k not in drop) for r in table)
a, b = rows(sys.argv[1]), rows(sys.argv[2])
sys.exit(0 if a == b and len(a) == 16 else 1)
EOF
say "PASSED: merged 4-task array equals the single-machine run (16 runs) in $(( $(date +%s) - started ))s"
