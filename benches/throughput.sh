#!/usr/bin/env bash
# Throughput of `dicom-deid run` on a tree of many small files, against `cp -r`.
#
# Usage: benches/throughput.sh [N]     (default 2000 files)
#        REPEAT=5 benches/throughput.sh          (runs per mode, default 3; median shown)
#        BENCH_DIR=/some/dir benches/throughput.sh   (work there instead of /dev/shm)
#
# Builds the release binary and the make-corpus example, writes N files with
# `make-corpus tree` (in /dev/shm when it has room, else in a temporary directory on
# disk, where the page cache keeps the inputs warm after the first pass), then times
# `cp -r` of the tree, `dicom-deid run --jobs 1` and `dicom-deid run --jobs <cores>`,
# each into a fresh output directory and each under GNU time for peak RSS. Prints
# files/s, MB/s (input bytes / wall time, 1 MB = 10^6 bytes), peak RSS and the wall
# time relative to `cp -r`. Everything it writes is removed on exit. The only thing
# it may install is GNU time (the `time` package, through apt-get), and it says so
# first.
#
# Peers are timed on the same tree when they are on PATH, and named as skipped
# otherwise (nothing is installed for them): dicognito, `deid` (pydicom deid),
# gdcmanon (GDCM) and dcmodify (dcmtk). Each writes into its own output directory;
# dcmodify edits in place, so its time includes a `cp -r` of the tree first. Their
# settings are close to, not the same as, the Basic Profile. PEERS=0 skips them.
set -euo pipefail

N=${1:-2000}
REPEAT=${REPEAT:-3}
SEED=${SEED:-1}
case $N in '' | *[!0-9]*) echo "usage: $0 [N]" >&2; exit 2 ;; esac
case $REPEAT in '' | 0 | *[!0-9]*) echo "REPEAT must be a positive number" >&2; exit 2 ;; esac

cd "$(dirname "$0")/.."

say() { printf '+ %s\n' "$*" >&2; }

if [ ! -x /usr/bin/time ]; then
    echo "GNU time (/usr/bin/time) is missing: installing the 'time' package with apt-get" >&2
    if [ "$(id -u)" -ne 0 ]; then
        echo "not root: run 'sudo apt-get install -y time' and try again" >&2
        exit 1
    fi
    say apt-get install -y time
    apt-get install -y time >&2
fi

say cargo build --release --bin dicom-deid --example make-corpus
cargo build --release --bin dicom-deid --example make-corpus
BIN=./target/release/dicom-deid
GEN=./target/release/examples/make-corpus
CORES=$(nproc)

# The samples average about 30 KB; the tree, one copy and one output exist at once.
need_kib=$((N * 32 * 3 + 256 * 1024))
avail_kib() { df -Pk "$1" 2>/dev/null | awk 'NR == 2 { print $4 }'; }
if [ -n "${BENCH_DIR:-}" ]; then
    WORK=$(mktemp -d "$BENCH_DIR/dicom-deid-throughput.XXXXXX")
    where="$WORK (BENCH_DIR)"
elif [ -d /dev/shm ] && [ "$(avail_kib /dev/shm || echo 0)" -ge "$need_kib" ]; then
    WORK=$(mktemp -d /dev/shm/dicom-deid-throughput.XXXXXX)
    where="tmpfs (/dev/shm)"
else
    WORK=$(mktemp -d "${TMPDIR:-/tmp}/dicom-deid-throughput.XXXXXX")
    where="disk ($WORK)"
fi
trap 'rm -rf "$WORK"' EXIT
if [ "$(avail_kib "$WORK")" -lt "$need_kib" ]; then
    echo "need about $((need_kib / 1024)) MiB free in $WORK" >&2
    exit 1
fi

TREE=$WORK/tree
KEY=$WORK/key
# The generated tree holds secondary captures without Burned In Annotation NO, which
# the default profile quarantines; measure the same work on every file instead.
PROFILE=$WORK/bench-profile.yaml
printf 'extends: basic\nquarantine: {burned-in-annotation: off, burned-in-unknown: off, encapsulated-documents: off}\n' > "$PROFILE"
# A text key of 64 hex digits, as `openssl rand -hex 32` writes it.
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$KEY"
chmod 600 "$KEY"

say "$GEN" tree "$TREE" "$N" --seed "$SEED"
"$GEN" tree "$TREE" "$N" --seed "$SEED" 2>"$WORK/gen.log" || {
    cat "$WORK/gen.log" >&2
    exit 1
}
sed 's/^/  /' "$WORK/gen.log" >&2
files=$(find "$TREE" -type f | wc -l)
bytes=$(find "$TREE" -type f -printf '%s\n' | awk '{ s += $1 } END { printf "%d", s }')

# run_timed NAME OUTDIR CMD...: runs CMD under GNU time into a fresh OUTDIR and
# appends "wall_seconds rss_kib exit_status" to $WORK/NAME.runs.
run_timed() {
    local name=$1 out=$2
    shift 2
    rm -rf "$out"
    local t0 t1 status
    t0=$(date +%s%N)
    set +e
    /usr/bin/time -v -o "$WORK/$name.time" "$@" >"$WORK/$name.out" 2>"$WORK/$name.err"
    status=$?
    set -e
    t1=$(date +%s%N)
    local rss
    rss=$(awk -F': ' '/Maximum resident set size/ { print $2 }' "$WORK/$name.time")
    echo "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.4f", (b - a) / 1e9 }') $rss $status" \
        >>"$WORK/$name.runs"
    rm -rf "$out"
}

# Checks a dicom-deid report: every input written, nothing failed or skipped.
check_report() {
    local report=$1 summary
    if [ ! -s "$report" ]; then
        echo "WARNING: no report was written to $report" >&2
        return
    fi
    summary=$(tail -n 1 "$report")
    local written failed skipped
    written=$(sed -n 's/.*"written":\([0-9]*\).*/\1/p' <<<"$summary")
    failed=$(sed -n 's/.*"failed":\([0-9]*\).*/\1/p' <<<"$summary")
    skipped=$(sed -n 's/.*"skipped":\([0-9]*\).*/\1/p' <<<"$summary")
    if [ "$written" != "$files" ] || [ "$failed" != 0 ] || [ "$skipped" != 0 ]; then
        echo "WARNING: $report: written $written of $files, failed $failed, skipped $skipped" >&2
        # (no pipe into head: under pipefail, SIGPIPE would end the script)
        awk '!/"status":"ok"/ && n++ < 10' "$report" >&2
    fi
}

# Peers: name, then the command line (TREE and OUT are substituted at run time).
peer_modes=()
skipped_peers=()
if [ "${PEERS:-1}" != 0 ]; then
    if command -v dicognito >/dev/null; then peer_modes+=(dicognito); else skipped_peers+=(dicognito); fi
    if command -v deid >/dev/null; then peer_modes+=(pydicom-deid); else skipped_peers+=("deid (pydicom deid)"); fi
    if command -v gdcmanon >/dev/null; then peer_modes+=(gdcmanon); else skipped_peers+=("gdcmanon (GDCM)"); fi
    if command -v dcmodify >/dev/null; then peer_modes+=(dcmodify); else skipped_peers+=("dcmodify (dcmtk)"); fi
fi
# run_peer NAME OUT: one de-identification of $TREE into OUT by a peer tool.
run_peer() {
    local name=$1 out=$2
    case $name in
        dicognito) dicognito --output-directory "$out" --quiet "$TREE" ;;
        pydicom-deid) deid --outfolder "$out" clean --input "$TREE" ;;
        gdcmanon) gdcmanon --continue --recursive --dumb \
            --empty 10,10 --empty 10,20 --empty 10,30 --empty 8,90 --empty 8,50 \
            -i "$TREE" -o "$out" ;;
        dcmodify)
            cp -r "$TREE" "$out"
            find "$out" -type f -print0 | xargs -0 -n 200 -P "$CORES" dcmodify -nb -q -ie -imt \
                -ma "(0010,0010)=ANON" -ma "(0010,0020)=ANON" -ea "(0010,0030)" \
                -ea "(0008,0090)" -ea "(0008,0080)" -ea "(0008,0050)" ;;
    esac
}
export -f run_peer
export TREE CORES

modes=(cp jobs1 "jobs$CORES" "${peer_modes[@]}")
for r in $(seq 1 "$REPEAT"); do
    for p in "${peer_modes[@]}"; do
        [ "$r" = 1 ] && say "$p" on "$TREE"
        run_timed "$p" "$WORK/peer" bash -c 'run_peer "$1" "$2"' _ "$p" "$WORK/peer"
    done
    [ "$r" = 1 ] && say cp -r "$TREE" "$WORK/cp"
    run_timed cp "$WORK/cp" cp -r "$TREE" "$WORK/cp"
    for jobs in 1 "$CORES"; do
        rm -f "$WORK/report.jsonl"
        [ "$r" = 1 ] && say "$BIN" run "$TREE" --out "$WORK/out" --key-file "$KEY" --profile "$PROFILE" --no-resume --jobs "$jobs" --report "$WORK/report.jsonl"
        run_timed "jobs$jobs" "$WORK/out" \
            "$BIN" run "$TREE" --out "$WORK/out" --key-file "$KEY" --profile "$PROFILE" --no-resume --jobs "$jobs" --report "$WORK/report.jsonl"
        check_report "$WORK/report.jsonl"
    done
done

failed_modes=()
for m in cp jobs1 "jobs$CORES"; do
    if awk '$3 != 0 { bad = 1 } END { exit !bad }' "$WORK/$m.runs"; then
        failed_modes+=("$m")
        echo "WARNING: $m exited non-zero in some run; its stderr:" >&2
        head -n 20 "$WORK/$m.err" >&2
    fi
done

median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
cp_wall=$(awk '{ print $1 }' "$WORK/cp.runs" | median)

echo
echo "machine:   $CORES cores, $(uname -sr)"
echo "work dir:  $where"
echo "corpus:    $files files, $bytes bytes (make-corpus tree, seed $SEED)"
echo "runs:      $REPEAT per mode; wall time is the median, RSS the maximum"
echo
printf '%-22s %9s %10s %9s %12s %12s\n' mode "wall s" "files/s" "MB/s" "peak RSS MiB" "time vs cp"
for m in "${modes[@]}"; do
    case $m in
        cp) label="cp -r" ;;
        jobs*) label="dicom-deid --jobs ${m#jobs}" ;;
        *) label=$m ;;
    esac
    wall=$(awk '{ print $1 }' "$WORK/$m.runs" | median)
    rss=$(awk '$2 > m { m = $2 } END { print m }' "$WORK/$m.runs")
    awk -v l="$label" -v w="$wall" -v r="$rss" -v f="$files" -v b="$bytes" -v c="$cp_wall" \
        'BEGIN { printf "%-22s %9.3f %10.0f %9.1f %12.1f %11.2fx", l, w, f / w, b / w / 1e6, r / 1024, w / c }'
    if awk '$3 != 0 { bad = 1 } END { exit !bad }' "$WORK/$m.runs"; then
        printf '  FAILED (non-zero exit)'
    fi
    echo
done
if [ "${#peer_modes[@]}" -gt 0 ]; then
    ours=$(awk '{ print $1 }' "$WORK/jobs$CORES.runs" | median)
    echo
    echo "dicom-deid --jobs $CORES vs peers (peer wall / our wall = how many times faster we are):"
    for p in "${peer_modes[@]}"; do
        pw=$(awk '{ print $1 }' "$WORK/$p.runs" | median)
        awk -v p="$p" -v a="$pw" -v b="$ours" 'BEGIN { printf "  %-14s %8.1fx\n", p, a / b }'
    done
fi
if [ "${#skipped_peers[@]}" -gt 0 ]; then
    echo
    echo "peers skipped (not on PATH; nothing installed): ${skipped_peers[*]}"
fi
echo
echo "all runs (wall s, peak RSS KiB, exit status):"
for m in "${modes[@]}"; do
    echo "  $m: $(tr '\n' ';' <"$WORK/$m.runs" | sed 's/;$//; s/;/; /g')"
done
if [ "${#failed_modes[@]}" -gt 0 ]; then
    echo "FAIL: non-zero exit in: ${failed_modes[*]}" >&2
    exit 1
fi
