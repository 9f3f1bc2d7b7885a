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
# Peers are timed in the same run when they are on PATH, and named as skipped
# otherwise, with how to install them (nothing is installed for them): dicognito,
# `deid` (pydicom deid), gdcmanon (GDCM) and dcmodify (dcmtk). PEERS=0 skips them;
# PEERS="dicognito gdcmanon" (names: dicognito pydicom-deid gdcmanon dcmodify)
# times only those. The C++ ones (gdcmanon, dcmodify) run on the whole tree; the
# Python ones (dicognito, pydicom deid: tens of files/s) on PEER_N evenly spaced
# files of it copied into a subtree (default 1000), which the output says. Files/s
# and MB/s compare across sizes; wall s does not. Each peer writes into its own output
# directory; dcmodify edits in place, so its time includes a `cp -r` of the tree.
# Their settings are close to, not the same as, our Basic Profile (see run_peer).
# The table counts each mode's output files and how many still hold, anywhere in
# their bytes, a PatientName value of the tree (read with perl); a peer that exits
# non-zero or writes no files shows as FAILED, one that writes fewer files than it
# read as INCOMPLETE, one that leaves names as NAME LEFT. Below the table, ours/peer
# is our all-cores files/s over the peer's.
set -euo pipefail

N=${1:-2000}
REPEAT=${REPEAT:-3}
SEED=${SEED:-1}
# ONLY=slice (or small, multiframe): every generated file of that kind (make-corpus
# --only), e.g. to time typical 0.5 MiB CT/MR slices alone.
ONLY=${ONLY:-}
case $ONLY in '' | small | slice | multiframe) ;; *) echo "ONLY must be small, slice or multiframe" >&2; exit 2 ;; esac
gen_only=()
[ -n "$ONLY" ] && gen_only=(--only "$ONLY")
case $N in '' | *[!0-9]*) echo "usage: $0 [N]" >&2; exit 2 ;; esac
case $REPEAT in '' | 0 | *[!0-9]*) echo "REPEAT must be a positive number" >&2; exit 2 ;; esac
PEER_N=${PEER_N:-1000}
case $PEER_N in '' | 0 | *[!0-9]*) echo "PEER_N must be a positive number" >&2; exit 2 ;; esac
all_peers=(dicognito pydicom-deid gdcmanon dcmodify)
wanted_peers=()
case ${PEERS:-1} in
    1 | all) wanted_peers=("${all_peers[@]}") ;;
    0 | none) ;;
    *)
        read -ra peer_args <<<"${PEERS//,/ }"
        for p in "${peer_args[@]}"; do
            if [ "$p" = deid ]; then p=pydicom-deid; fi
            case " ${all_peers[*]} " in
                *" $p "*) ;;
                *) echo "PEERS: unknown peer '$p' (known: ${all_peers[*]}; 0 for none)" >&2; exit 2 ;;
            esac
            case " ${wanted_peers[*]} " in *" $p "*) ;; *) wanted_peers+=("$p") ;; esac
        done
        ;;
esac

cd "$(dirname "$0")/.."

# shellcheck source=benches/common.sh
. benches/common.sh
CORES=$(nproc)

# Generated files average about 150 KB (a mix of small objects, 0.5 MiB slices and a
# few 16-48 MiB multi-frame files); the tree, one copy and one output exist at once.
case $ONLY in
    slice) per_file_kib=540 ;;
    multiframe) per_file_kib=$((33 * 1024)) ;;
    *) per_file_kib=170 ;;
esac
need_kib=$((N * per_file_kib * 3 + 256 * 1024))
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

say "$GEN" tree "$TREE" "$N" --seed "$SEED" "${gen_only[@]}"
"$GEN" tree "$TREE" "$N" --seed "$SEED" "${gen_only[@]}" 2>"$WORK/gen.log" || {
    cat "$WORK/gen.log" >&2
    exit 1
}
sed 's/^/  /' "$WORK/gen.log" >&2
files=$(find "$TREE" -type f | wc -l)
bytes=$(find "$TREE" -type f -printf '%s\n' | awk '{ s += $1 } END { printf "%d", s }')

# Whether outputs still hold the inputs' patient names: perl collects every
# PatientName (0010,0010) value in the tree, nested ones too, from explicit and
# implicit VR little endian data (deflated files hide theirs), keeping values with a
# letter on both sides of a ^, which little but a name holds; grep then counts the
# files that hold any of them. Without perl the check is left out.
NAMES=$WORK/patient-names
cat >"$WORK/patient-names.pl" <<'PERL'
local $/;
for my $f (@ARGV) {
    open(my $h, '<:raw', $f) or next;
    my $d = <$h>;
    while ($d =~ /\x10\x00\x10\x00/g) {
        my $p = pos($d);
        my $v;
        if (substr($d, $p, 2) eq 'PN') {
            $v = substr($d, $p + 4, unpack('v', substr($d, $p + 2, 2)));
        } else {
            my $len = unpack('V', substr($d, $p, 4));
            next if $len > 320;
            $v = substr($d, $p + 4, $len);
        }
        $v =~ s/[ \0]+$//;
        print "$v\n" if $v =~ /[A-Za-z]\^[A-Za-z]/ && $v !~ /[\0-\x1f]/;
    }
}
PERL
if command -v perl >/dev/null; then
    find "$TREE" -type f -print0 | xargs -0 perl "$WORK/patient-names.pl" | sort -u >"$NAMES"
else
    : >"$NAMES"
fi
# count_named DIR: how many files under DIR (names starting with a dot aside) hold one.
count_named() {
    if [ -s "$NAMES" ]; then
        (grep -rlF --exclude='.*' -f "$NAMES" "$1" || true) | wc -l
    else
        echo 0
    fi
}

# run_timed NAME OUTDIR CMD...: runs CMD under GNU time into a fresh OUTDIR and
# appends "wall_seconds rss_kib exit_status files_out files_named" to $WORK/NAME.runs
# (files_out leaves out files whose names start with a dot, as our ledger's does).
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
    local rss nout=0 named=0
    rss=$(awk -F': ' '/Maximum resident set size/ { print $2 }' "$WORK/$name.time")
    if [ -d "$out" ]; then
        nout=$(find "$out" -type f ! -name '.*' | wc -l)
        named=$(count_named "$out")
    fi
    echo "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.4f", (b - a) / 1e9 }') $rss $status $nout $named" \
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

# Peers. A peer that is asked for (PEERS) but not on PATH is skipped and named, with
# how to install it; nothing is installed for it.
peer_modes=()
skipped_peers=()
for p in "${wanted_peers[@]}"; do
    case $p in
        dicognito) tool=dicognito hint="pip install dicognito" ;;
        pydicom-deid) tool=deid hint="pip install deid" ;;
        gdcmanon) tool=gdcmanon hint="apt-get install libgdcm-tools" ;;
        dcmodify) tool=dcmodify hint="apt-get install dcmtk" ;;
    esac
    if command -v "$tool" >/dev/null; then
        peer_modes+=("$p")
    else
        skipped_peers+=("$p ($tool not on PATH; $hint)")
    fi
done
has_peer() { case " ${peer_modes[*]} " in *" $1 "*) return 0 ;; esac; return 1; }

# dicognito 0.19.0's `dicognito` script calls main() without the argument list that
# main now takes, and dies with a TypeError whatever the options; `python -m
# dicognito` works in every version. So run the module with the interpreter named on
# the script's #! line when it imports dicognito, else the script itself.
DICOGNITO_PY=
if has_peer dicognito; then
    shebang=$(head -n 1 "$(command -v dicognito)")
    if [[ $shebang == '#!'*python* ]]; then
        read -ra py <<<"${shebang#'#!'}"
        if "${py[@]}" -c 'import dicognito' 2>/dev/null; then DICOGNITO_PY=${shebang#'#!'}; fi
    fi
fi

# gdcmanon's Basic Application Level Confidentiality Profile (-e, PS3.15 E.1.1) needs
# a certificate to encrypt the original values into the Encrypted Attributes Sequence;
# a throwaway self-signed one is made here, outside the timing. Without openssl it
# falls back to --dumb mode, which only empties the attributes it is given.
GDCM_CERT=
if has_peer gdcmanon && command -v openssl >/dev/null; then
    if openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=dicom-deid-throughput \
        -keyout "$WORK/gdcm-key.pem" -out "$WORK/gdcm-cert.pem" >"$WORK/openssl.log" 2>&1; then
        GDCM_CERT=$WORK/gdcm-cert.pem
    else
        echo "WARNING: openssl could not make a certificate; gdcmanon runs in --dumb mode" >&2
        cat "$WORK/openssl.log" >&2
    fi
fi

# The Python peers run on PEER_N of the tree's files, when it has more: evenly spaced
# in path order (file i * files / PEER_N for i = 0, 1, ...), so that they span all the
# patients and the mix of small and large files, copied with their directories into
# a subtree.
PY_TREE=$TREE
if { has_peer dicognito || has_peer pydicom-deid; } && [ "$PEER_N" -lt "$files" ]; then
    PY_TREE=$WORK/py-tree
    mkdir -p "$PY_TREE"
    mapfile -d '' -t tree_files < <(cd "$TREE" && find . -type f -print0 | sort -z)
    subset=()
    for ((i = 0; i < PEER_N; i++)); do subset+=("${tree_files[i * ${#tree_files[@]} / PEER_N]}"); done
    (cd "$TREE" && printf '%s\0' "${subset[@]}" | xargs -0 cp --parents -t "$PY_TREE")
fi

# run_peer NAME IN OUT: one de-identification of the tree IN into OUT by a peer, as
# `set -euo pipefail; run_peer ...` in a child bash (so GNU time can run it).
# peer_cmd prints the same commands for the log; keep the two in step.
run_peer() {
    local name=$1 in=$2 out=$3 py
    case $name in
        # dicognito: its own fixed set (names, IDs, UIDs, dates, addresses replaced by
        # consistent made-up values); writes OUT/<new SOP Instance UID>.dcm, flat.
        dicognito)
            if [ -n "$DICOGNITO_PY" ]; then
                read -ra py <<<"$DICOGNITO_PY"
                "${py[@]}" -m dicognito --output-directory "$out" --quiet "$in"
            else
                dicognito --output-directory "$out" --quiet "$in"
            fi
            ;;
        # pydicom deid: `identifiers --action all` gets the identifiers and replaces
        # them with deid's default dicom recipe (REMOVE of names, IDs, dates, times,
        # UIDs and more; adds PatientIdentityRemoved). It writes OUT/<input basename>,
        # flat, and OUT must exist.
        pydicom-deid)
            mkdir -p "$out"
            deid --quiet --outfolder "$out" identifiers --action all --input "$in"
            ;;
        # gdcmanon -e: GDCM's Basic Profile (new UIDs, the profile's attributes emptied
        # or removed, PatientIdentityRemoved and DeidentificationMethod added) plus the
        # encryption of the originals. --dumb: only empties the tags listed.
        gdcmanon)
            if [ -n "$GDCM_CERT" ]; then
                gdcmanon --de-identify --certificate "$GDCM_CERT" --continue --recursive \
                    --input "$in" --output "$out"
            else
                gdcmanon --dumb --continue --recursive \
                    --empty 10,10 --empty 10,20 --empty 10,30 --empty 8,90 --empty 8,50 \
                    --input "$in" --output "$out"
            fi
            ;;
        # dcmodify: PatientName and PatientID set to ANON, BirthDate, Referring
        # Physician, Institution and Accession Number erased, everywhere in the data
        # set (UIDs kept); in place on a copy, 200 files a process, $CORES processes.
        dcmodify)
            cp -r "$in" "$out"
            find "$out" -type f -print0 | xargs -0 -n 200 -P "$CORES" dcmodify -nb -q -ie -imt \
                -ma "(0010,0010)=ANON" -ma "(0010,0020)=ANON" -ea "(0010,0030)" \
                -ea "(0008,0090)" -ea "(0008,0080)" -ea "(0008,0050)"
            ;;
    esac
}
peer_cmd() {
    local name=$1 in=$2 out=$3
    case $name in
        dicognito) echo "${DICOGNITO_PY:+$DICOGNITO_PY -m }dicognito --output-directory $out --quiet $in" ;;
        pydicom-deid) echo "mkdir -p $out && deid --quiet --outfolder $out identifiers --action all --input $in" ;;
        gdcmanon)
            if [ -n "$GDCM_CERT" ]; then
                echo "gdcmanon --de-identify --certificate $GDCM_CERT --continue --recursive --input $in --output $out"
            else
                echo "gdcmanon --dumb --continue --recursive --empty 10,10 --empty 10,20 --empty 10,30 --empty 8,90 --empty 8,50 --input $in --output $out"
            fi
            ;;
        dcmodify) echo "cp -r $in $out && find $out -type f -print0 | xargs -0 -n 200 -P $CORES dcmodify -nb -q -ie -imt -ma \"(0010,0010)=ANON\" -ma \"(0010,0020)=ANON\" -ea \"(0010,0030)\" -ea \"(0008,0090)\" -ea \"(0008,0080)\" -ea \"(0008,0050)\"" ;;
    esac
}
export -f run_peer
export CORES DICOGNITO_PY GDCM_CERT

# What each mode reads: "files bytes files_named".
tree_named=$(count_named "$TREE")
declare -A mode_in
for m in cp jobs1 "jobs$CORES"; do mode_in[$m]="$files $bytes $tree_named"; done
declare -A peer_in
for p in "${peer_modes[@]}"; do
    case $p in dicognito | pydicom-deid) peer_in[$p]=$PY_TREE ;; *) peer_in[$p]=$TREE ;; esac
    if [ "${peer_in[$p]}" = "$TREE" ]; then
        mode_in[$p]="$files $bytes $tree_named"
    else
        mode_in[$p]="$(find "${peer_in[$p]}" -type f | wc -l) $(find "${peer_in[$p]}" -type f -printf '%s\n' | awk '{ s += $1 } END { printf "%d", s }') $(count_named "${peer_in[$p]}")"
    fi
done

modes=(cp jobs1 "jobs$CORES" "${peer_modes[@]}")
for r in $(seq 1 "$REPEAT"); do
    for p in "${peer_modes[@]}"; do
        [ "$r" = 1 ] && say "$(peer_cmd "$p" "${peer_in[$p]}" "$WORK/peer")"
        run_timed "$p" "$WORK/peer" bash -c 'set -euo pipefail; run_peer "$@"' _ "$p" "${peer_in[$p]}" "$WORK/peer"
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
ours_wall=$(awk '{ print $1 }' "$WORK/jobs$CORES.runs" | median)

# mode_status MODE: "ok", or what went wrong in its worst run.
mode_status() {
    local m=$1 fin named
    read -r fin _ named <<<"${mode_in[$m]}"
    awk -v fin="$fin" -v named="$named" -v cp="$([ "$m" = cp ] && echo 1 || echo 0)" '
        $3 != 0 && !ex { ex = $3 }
        NR == 1 || $4 < out { out = $4 }
        $5 > left { left = $5 }
        END {
            if (ex) print "FAILED (exit " ex ")"
            else if (out == 0) print "FAILED (wrote no files)"
            else if (out < fin) print "INCOMPLETE (wrote " out " of " fin " files)"
            else if (!cp && named > 0 && left > 0) print "NAME LEFT in " left " files"
            else print "ok"
        }' "$WORK/$m.runs"
}

for p in "${peer_modes[@]}"; do
    status=$(mode_status "$p")
    case $status in
        ok | NAME*) ;;
        *)
            echo "WARNING: peer $p: $status; the end of its stderr:" >&2
            tail -n 15 "$WORK/$p.err" >&2
            ;;
    esac
done

echo
echo "machine:   $CORES cores, $(uname -sr)"
echo "work dir:  $where"
echo "corpus:    $files files, $bytes bytes (make-corpus tree, seed $SEED${ONLY:+, only $ONLY})"
echo "runs:      $REPEAT per mode; wall time is the median, RSS the maximum"
if [ "$PY_TREE" != "$TREE" ]; then
    read -r sub_files sub_bytes _ <<<"${mode_in[$(has_peer dicognito && echo dicognito || echo pydicom-deid)]}"
    echo "subset:    the Python peers (dicognito, pydicom-deid) ran on $sub_files evenly spaced files of the tree"
    echo "           ($sub_bytes bytes; PEER_N=$PEER_N); files/s and MB/s compare across sizes, wall s does not"
fi
echo
printf '%-22s %8s %9s %9s %9s %10s %9s %12s %10s  %s\n' \
    mode "files in" "files out" "name left" "wall s" "files/s" "MB/s" "peak RSS MiB" "time vs cp" status
for m in "${modes[@]}"; do
    case $m in
        cp) label="cp -r" ;;
        jobs*) label="dicom-deid --jobs ${m#jobs}" ;;
        gdcmanon) if [ -n "$GDCM_CERT" ]; then label="gdcmanon -e"; else label="gdcmanon --dumb"; fi ;;
        *) label=$m ;;
    esac
    read -r fin bin named <<<"${mode_in[$m]}"
    wall=$(awk '{ print $1 }' "$WORK/$m.runs" | median)
    rss=$(awk '$2 > m { m = $2 } END { print m }' "$WORK/$m.runs")
    fout=$(awk 'NR == 1 || $4 < m { m = $4 } END { print m }' "$WORK/$m.runs")
    left=$(awk '$5 > m { m = $5 } END { print m + 0 }' "$WORK/$m.runs")
    [ "$named" -gt 0 ] || left=-
    status=$(mode_status "$m")
    # time vs cp is per file (wall / files over cp's), the plain wall-time ratio when
    # the mode read the whole tree.
    awk -v l="$label" -v fi="$fin" -v fo="$fout" -v nl="$left" -v w="$wall" -v r="$rss" -v f="$fin" \
        -v b="$bin" -v c="$cp_wall" -v cf="$files" -v s="$status" 'BEGIN {
            if (s ~ /^FAILED/) { rate = "-"; mbs = "-"; vs = "-" }
            else { rate = sprintf("%.0f", f / w); mbs = sprintf("%.1f", b / w / 1e6); vs = sprintf("%.2fx", (w / f) / (c / cf)) }
            printf "%-22s %8d %9d %9s %9.3f %10s %9s %12.1f %10s  %s\n", l, fi, fo, nl, w, rate, mbs, r / 1024, vs, s }'
done
echo "(files out: files written, dot files aside; name left: output files that still hold one"
if [ -s "$NAMES" ]; then
    echo " of the $(wc -l <"$NAMES") PatientName values read from the tree anywhere in their bytes, in"
    echo " PatientName or elsewhere, such as a private attribute; $tree_named of the tree's files do)"
else
    echo " of the tree's PatientName values: not checked, no perl or no names read)"
fi
if [ "${#peer_modes[@]}" -gt 0 ]; then
    echo
    echo "ours/peer: dicom-deid --jobs $CORES files/s over the peer's files/s (how many times faster we are):"
    for p in "${peer_modes[@]}"; do
        read -r fin _ <<<"${mode_in[$p]}"
        pw=$(awk '{ print $1 }' "$WORK/$p.runs" | median)
        status=$(mode_status "$p")
        case $status in
            FAILED*) printf '  %-14s %9s  (%s)\n' "$p" n/a "$status" ;;
            *) awk -v p="$p" -v pw="$pw" -v pf="$fin" -v ow="$ours_wall" -v of="$files" -v s="$status" \
                'BEGIN { printf "  %-14s %8.1fx  (%.0f files/s vs %.0f files/s, peer on %d files%s)\n", p, (of / ow) / (pf / pw), of / ow, pf / pw, pf, (s == "ok") ? "" : "; " s }' ;;
        esac
    done
fi
if [ "${#skipped_peers[@]}" -gt 0 ]; then
    echo
    echo "peers skipped (nothing installed for them):"
    printf '  %s\n' "${skipped_peers[@]}"
fi
if [ "${#wanted_peers[@]}" -lt "${#all_peers[@]}" ]; then
    not_asked=()
    for p in "${all_peers[@]}"; do
        case " ${wanted_peers[*]} " in *" $p "*) ;; *) not_asked+=("$p") ;; esac
    done
    echo "peers not asked for (PEERS=${PEERS:-}): ${not_asked[*]}"
fi
echo
echo "all runs (wall s, peak RSS KiB, exit status, files out, name left):"
for m in "${modes[@]}"; do
    echo "  $m: $(tr '\n' ';' <"$WORK/$m.runs" | sed 's/;$//; s/;/; /g')"
done
if [ "${#failed_modes[@]}" -gt 0 ]; then
    echo "FAIL: non-zero exit in: ${failed_modes[*]}" >&2
    exit 1
fi
