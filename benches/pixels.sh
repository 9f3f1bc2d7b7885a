#!/usr/bin/env bash
# Pixel redaction speed: frames per second of `dicom-deid run` on native
# ultrasound cines, redacted by the built-in `ultrasound-regions` rule, against the
# same files taken through the plain byte-copy path (a profile with no pixel rule
# and the burned-in quarantine off). Then the same cines compressed as JPEG
# Baseline by dcmtk's dcmcjpeg (decode, redact, write native Explicit VR LE; skipped
# with a note when dcmcjpeg is missing). Then peak RSS while redacting one large
# cine.
#
# Usage: benches/pixels.sh [FRAMES_512] [FRAMES_800x600] [BIG_MiB]
#        (defaults 600, 300, 1024; BIG_MiB 0 skips the memory run)
#
# Files are written in /dev/shm when it has room, else in a temporary directory,
# and removed on exit. The only thing it may install is GNU time (see common.sh).
set -euo pipefail

F512=${1:-600}
F800=${2:-300}
BIG=${3:-1024}
cd "$(dirname "$0")/.."

# shellcheck source=benches/common.sh
. benches/common.sh

base=/dev/shm
need_kib=$(((BIG * 2 + 1024) * 1024))
if [ "$(avail_kib "$base")" -lt "$need_kib" ]; then base=${TMPDIR:-/tmp}; fi
WORK=$(mktemp -d "$base/dicom-deid-pixels.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
KEY=$WORK/key
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$KEY"
chmod 600 "$KEY"
cat >"$WORK/copy.yaml" <<'YAML'
extends: basic
quarantine: {burned-in-unknown: off}
pixels: {builtin-rules: false}
YAML

# run NAME PROFILE INPUT: seconds of wall time for one run (best of 3).
timed_run() {
    local best="" t0 t1 s
    for _ in 1 2 3; do
        rm -rf "$WORK/out"
        t0=$(date +%s%N)
        "$BIN" run "$3" --out "$WORK/out" --key-file "$KEY" --profile "$2" \
            --report "$WORK/report.jsonl" 2>/dev/null
        t1=$(date +%s%N)
        s=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.4f", (b - a) / 1e9 }')
        if [ -z "$best" ] || awk -v a="$s" -v b="$best" 'BEGIN { exit !(a < b) }'; then best=$s; fi
    done
    grep -q '"status":"ok"' "$WORK/report.jsonl" || { echo "FAIL: $1 not written" >&2; cat "$WORK/report.jsonl" >&2; exit 1; }
    echo "$best"
}

echo "machine: $(nproc) cores, $(uname -sr); work dir $WORK"
printf '%-28s %8s %10s %10s %10s %8s\n' "cine" "frames" "copy f/s" "redact f/s" "MB/s red." "ratio"
for spec in "512x512-mono 512 512 1 $F512" "800x600-rgb 600 800 3 $F800"; do
    read -r name rows cols samples frames <<<"$spec"
    IN=$WORK/$name.dcm
    "$GEN" uscine "$IN" "$rows" "$cols" "$samples" "$frames" >/dev/null
    copy=$(timed_run "$name copy" "$WORK/copy.yaml" "$IN")
    redact=$(timed_run "$name redact" basic "$IN")
    grep -q 'ultrasound-regions' "$WORK/report.jsonl" || { echo "FAIL: $name not redacted" >&2; exit 1; }
    size=$(stat -c %s "$IN")
    awk -v n="$name" -v f="$frames" -v c="$copy" -v r="$redact" -v s="$size" 'BEGIN {
        printf "%-28s %8d %10.0f %10.0f %10.0f %8.2f\n", n, f, f / c, f / r, s / r / 1e6, r / c }'
    rm -f "$IN"
done

if command -v dcmcjpeg >/dev/null; then
    for spec in "512x512-mono-jpeg 512 512 1 $F512" "800x600-rgb-jpeg 600 800 3 $F800"; do
        read -r name rows cols samples frames <<<"$spec"
        IN=$WORK/$name.dcm
        "$GEN" uscine "$WORK/native.dcm" "$rows" "$cols" "$samples" "$frames" >/dev/null
        dcmcjpeg +eb "$WORK/native.dcm" "$IN"
        rm -f "$WORK/native.dcm"
        copy=$(timed_run "$name copy" "$WORK/copy.yaml" "$IN")
        redact=$(timed_run "$name redact" basic "$IN")
        grep -q 'decompressed JPEG Baseline' "$WORK/report.jsonl" || { echo "FAIL: $name not decoded" >&2; exit 1; }
        size=$(stat -c %s "$IN")
        awk -v n="$name" -v f="$frames" -v c="$copy" -v r="$redact" -v s="$size" 'BEGIN {
            printf "%-28s %8d %10.0f %10.0f %10.0f %8.2f\n", n, f, f / c, f / r, s / r / 1e6, r / c }'
        rm -f "$IN"
    done
else
    echo "JPEG Baseline rows skipped: dcmcjpeg (dcmtk) not installed"
fi

if [ "$BIG" -gt 0 ]; then
    frames=$((BIG * 1024 * 1024 / (800 * 600 * 3)))
    IN=$WORK/big.dcm
    "$GEN" uscine "$IN" 600 800 3 "$frames" >/dev/null
    rm -rf "$WORK/out"
    /usr/bin/time -v -o "$WORK/time.txt" "$BIN" run "$IN" --out "$WORK/out" --key-file "$KEY" \
        --report "$WORK/report.jsonl" 2>/dev/null
    grep -q 'ultrasound-regions' "$WORK/report.jsonl" || { echo "FAIL: big cine not redacted" >&2; exit 1; }
    rss=$(awk -F': ' '/Maximum resident set size/ { print $2 }' "$WORK/time.txt")
    echo "redacting a $(($(stat -c %s "$IN") / 1048576)) MiB cine ($frames frames 800x600 RGB): peak RSS $((rss / 1024)) MiB"
fi
