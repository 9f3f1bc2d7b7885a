#!/usr/bin/env bash
# Peak memory of `dicom-deid run` on one large native multi-frame file.
#
# Usage: benches/memory.sh [MiB]      (default 1024)
#        BENCH_DIR=/some/dir benches/memory.sh   (work there instead of /dev/shm)
#
# Builds the release binary and the make-corpus example, writes a file whose Pixel
# Data is MiB MiB (in /dev/shm when it has room, else in a temporary directory on
# disk), times a plain `cp` of it as a baseline, de-identifies it under GNU time,
# prints peak RSS and wall time, and checks that the output's Pixel Data element is
# byte for byte the input's. Everything it writes is removed on exit. The only thing
# it may install is GNU time (the `time` package, through apt-get), and it says so
# first.
set -euo pipefail

MIB=${1:-1024}
case $MIB in '' | *[!0-9]*) echo "usage: $0 [MiB]" >&2; exit 2 ;; esac

cd "$(dirname "$0")/.."

# shellcheck source=benches/common.sh
. benches/common.sh

# Input, output and the cp baseline copy (after the run) each take MiB; keep 256 MiB spare.
need_kib=$(((3 * MIB + 256) * 1024))
if [ -n "${BENCH_DIR:-}" ]; then
    WORK=$(mktemp -d "$BENCH_DIR/dicom-deid-memory.XXXXXX")
    where="$WORK (BENCH_DIR)"
    if [ "$(avail_kib "$WORK")" -lt "$need_kib" ]; then
        echo "need $((need_kib / 1024)) MiB free in $WORK" >&2
        rm -rf "$WORK"
        exit 1
    fi
elif [ -d /dev/shm ] && [ "$(avail_kib /dev/shm || echo 0)" -ge "$need_kib" ]; then
    WORK=$(mktemp -d /dev/shm/dicom-deid-memory.XXXXXX)
    where="tmpfs (/dev/shm)"
else
    WORK=$(mktemp -d "${TMPDIR:-/tmp}/dicom-deid-memory.XXXXXX")
    where="disk ($WORK)"
    if [ "$(avail_kib "$WORK")" -lt "$need_kib" ]; then
        echo "need $((need_kib / 1024)) MiB free in $WORK" >&2
        rm -rf "$WORK"
        exit 1
    fi
fi
trap 'rm -rf "$WORK"' EXIT

IN=$WORK/bigframe.dcm
OUT=$WORK/out
KEY=$WORK/key
# A text key of 64 hex digits. (A raw 32-byte key is refused whenever its last
# byte happens to be ASCII whitespace, about 1 run in 50: dicom-deid trims trailing
# whitespace from key files before checking the 32-byte minimum.)
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$KEY"
chmod 600 "$KEY"

say "$GEN" bigframe "$IN" "$MIB"
info=$("$GEN" bigframe "$IN" "$MIB")
in_off=$(sed -n 's/.*pixel_data_offset=\([0-9]*\).*/\1/p' <<<"$info")
px_len=$(sed -n 's/.*pixel_data_length=\([0-9]*\).*/\1/p' <<<"$info")
in_size=$(stat -c %s "$IN")
elem_len=$((px_len + 12)) # element header (tag, VR, reserved, length) + value
if [ $((in_off + elem_len)) -ne "$in_size" ]; then
    echo "make-corpus output is inconsistent: $info, size $in_size" >&2
    exit 1
fi

# Baseline: a plain copy of the same file to the same file system, once before and
# once after the run (on a VM the first writes into fresh memory can be slower).
cp_timed() {
    local c0 c1
    c0=$(date +%s%N)
    cp "$IN" "$WORK/copy.dcm"
    c1=$(date +%s%N)
    rm -f "$WORK/copy.dcm"
    awk -v a="$c0" -v b="$c1" 'BEGIN { printf "%.3f", (b - a) / 1e9 }'
}
say cp "$IN" "$WORK/copy.dcm"
cp_before=$(cp_timed)

say /usr/bin/time -v "$BIN" run "$IN" --out "$OUT" --key-file "$KEY" --report "$WORK/report.jsonl"
t0=$(date +%s%N)
set +e
/usr/bin/time -v -o "$WORK/time.txt" \
    "$BIN" run "$IN" --out "$OUT" --key-file "$KEY" --report "$WORK/report.jsonl" \
    2>"$WORK/run.err"
status=$?
set -e
t1=$(date +%s%N)
cp_after=$(cp_timed)
cp_wall=$(awk -v a="$cp_before" -v b="$cp_after" 'BEGIN { printf "%.3f", a < b ? a : b }')

sed 's/^/  /' "$WORK/run.err" >&2
rss_kib=$(awk -F': ' '/Maximum resident set size/ { print $2 }' "$WORK/time.txt")
elapsed=$(awk -F': ' '/Elapsed \(wall clock\)/ { print $2 }' "$WORK/time.txt")
wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", (b - a) / 1e9 }')

echo
echo "machine:        $(nproc) cores, $(uname -sr)"
echo "work dir:       $where"
echo "input:          $in_size bytes, Pixel Data $px_len bytes ($MIB MiB) at offset $in_off"
echo "exit status:    $status"
echo "peak RSS:       $rss_kib KiB ($(awk -v k="$rss_kib" 'BEGIN { printf "%.1f", k / 1024 }') MiB)"
echo "wall time:      $wall s (GNU time: $elapsed)"
echo "throughput:     $(awk -v b="$in_size" -v s="$wall" 'BEGIN { printf "%.0f", b / s / 1e6 }') MB/s"
echo "cp baseline:    $cp_before s before, $cp_after s after; best $cp_wall s ($(awk -v b="$in_size" -v s="$cp_wall" 'BEGIN { printf "%.0f", b / s / 1e6 }') MB/s)"
echo "vs cp:          dicom-deid wall / best cp wall = $(awk -v a="$wall" -v b="$cp_wall" 'BEGIN { printf "%.2f", a / b }')"
grep -E 'User time|System time|Major|Minor|File system' "$WORK/time.txt" | sed 's/^\t*/  /'

mapfile -t outputs < <(find "$OUT" -type f -name '*.dcm')
if [ "$status" -ne 0 ] || [ "${#outputs[@]}" -ne 1 ]; then
    echo "FAIL: expected exit 0 and one output, got exit $status and ${#outputs[@]} output(s)" >&2
    cat "$WORK/report.jsonl" >&2 || true
    exit 1
fi
O=${outputs[0]}
out_size=$(stat -c %s "$O")
out_off=$((out_size - elem_len))
echo "output:         $out_size bytes, Pixel Data expected at offset $out_off"
# The element header must sit there (nothing may follow Pixel Data in this file),
# then the whole element must match the input's.
hdr_in=$(od -An -tx1 -j "$in_off" -N 12 "$IN" | tr -d ' \n')
hdr_out=$(od -An -tx1 -j "$out_off" -N 12 "$O" | tr -d ' \n')
if [ "$out_off" -lt 132 ] || [ "$hdr_in" != "$hdr_out" ]; then
    echo "FAIL: no Pixel Data element header at offset $out_off of the output ($hdr_out vs $hdr_in)" >&2
    exit 1
fi
say cmp -i "$in_off:$out_off" "$IN" "$O"
if cmp -i "$in_off:$out_off" "$IN" "$O"; then
    echo "pixel data:     identical ($elem_len bytes: element header and value)"
else
    echo "FAIL: Pixel Data differs" >&2
    exit 1
fi
if command -v dcmdump >/dev/null; then
    if dcmdump -q "$O" >/dev/null 2>"$WORK/dcmdump.err" && [ ! -s "$WORK/dcmdump.err" ]; then
        echo "dcmdump:        reads the output cleanly"
    else
        echo "dcmdump:        problems reading the output:"
        head -5 "$WORK/dcmdump.err"
    fi
fi
