#!/usr/bin/env bash
# Fuzzes read -> de-identify -> write -> re-read for a bounded time.
#
#   fuzz/run.sh [SECONDS]        default 120
#
# Environment:
#   FUZZ_CORPUS=DIR   keep the corpus there (created, seeded, grown) instead of a
#                     temporary directory removed at exit; a longer run by hand can
#                     then build on an earlier one (fuzz/corpus/ is git-ignored)
#   FUZZ_TIMEOUT=N    seconds one input may take before it counts as a hang (20)
#   FUZZ_FORK=N       N worker processes that go on after a finding (long runs by
#                     hand while bugs are open); every finding lands in artifacts/
#   FUZZ_SEED=N, FUZZ_RUNS=N  fixed seed and number of runs (reproducible, as in CI)
#   FUZZ_SANITIZER=S  cargo fuzz --sanitizer (default address; `none` runs faster,
#                     and -rss_limit_mb still catches runaway allocations)
#
# Stable toolchain: cargo-fuzz needs nightly flags, RUSTC_BOOTSTRAP=1 allows them.
# Prints executions, exec/s and coverage; exits non-zero when libFuzzer reports a
# crash, a hang or an out-of-memory (the input is then in fuzz/artifacts/).
set -euo pipefail

SECONDS_TO_RUN=${1:-120}
TARGET=read_deid_write
FUZZ_DIR=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$FUZZ_DIR")
cd "$FUZZ_DIR"

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz/run.sh: installing cargo-fuzz" >&2
  cargo install cargo-fuzz --locked
fi

SCRATCH=$(mktemp -d "${TMPDIR:-/tmp}/dicom-deid-fuzz.XXXXXX")
cleanup() { rm -rf "$SCRATCH"; }
trap cleanup EXIT

if [ -n "${FUZZ_CORPUS:-}" ]; then
  CORPUS=$FUZZ_CORPUS
else
  CORPUS=$SCRATCH/corpus
fi
mkdir -p "$CORPUS"
# Seeds: every sample of testdata/ (good, derived, bad, without meta, character
# sets, repairable quirks) and every kept regression input; copied, never committed twice.
seeded=0
for dir in dicom derived bad nometa charset quirks pixels; do
  for f in "$ROOT/testdata/$dir"/*; do
    [ -f "$f" ] || continue
    cp "$f" "$CORPUS/seed-$dir-$(basename "$f")"
    seeded=$((seeded + 1))
  done
done
for f in "$FUZZ_DIR/regressions"/*.bin; do
  [ -f "$f" ] || continue
  # Inputs of bugs not fixed yet would stop the run at once (regressions/OPEN).
  if grep -qxF "$(basename "$f")" "$FUZZ_DIR/regressions/OPEN" 2>/dev/null; then
    continue
  fi
  cp "$f" "$CORPUS/regression-$(basename "$f")"
  seeded=$((seeded + 1))
done
echo "fuzz/run.sh: $seeded seed files into $CORPUS; fuzzing $TARGET for ${SECONDS_TO_RUN}s"

mkdir -p "$SCRATCH/work"
touch "$SCRATCH/start"
LOG=$SCRATCH/fuzz.log
extra=()
# FUZZ_SEED and FUZZ_RUNS make a run reproducible (CI): the same binary, corpus,
# seed and number of runs explore the same inputs, so a green run stays green.
if [ -n "${FUZZ_SEED:-}" ]; then
  extra+=(-seed="$FUZZ_SEED")
fi
if [ -n "${FUZZ_RUNS:-}" ]; then
  extra+=(-runs="$FUZZ_RUNS")
fi
if [ -n "${FUZZ_FORK:-}" ]; then
  extra+=(-fork="$FUZZ_FORK" -ignore_crashes=1 -ignore_ooms=1 -ignore_timeouts=1)
fi
set +e
FUZZ_SCRATCH=$SCRATCH/work RUSTC_BOOTSTRAP=1 cargo fuzz run \
  --sanitizer "${FUZZ_SANITIZER:-address}" "$TARGET" "$CORPUS" -- \
  -max_total_time="$SECONDS_TO_RUN" -rss_limit_mb=2048 -max_len=262144 \
  -timeout="${FUZZ_TIMEOUT:-20}" -dict="$FUZZ_DIR/dicom.dict" -print_final_stats=1 \
  "${extra[@]}" 2>&1 | tee "$LOG" |
  grep -a --line-buffered -E '#[0-9]+:? +(INITED|pulse|DONE)|ERROR|panicked at|SUMMARY|Test unit written|stat::|crash|Done'
status=${PIPESTATUS[0]}
set -e
mkdir -p "$FUZZ_DIR/artifacts"
cp "$LOG" "$FUZZ_DIR/artifacts/last-run.log"

# Final figures. One process: libFuzzer's final stats. Fork mode: its last
# "#N: cov: .. ft: .. corp: .. exec/s: .. oom/timeout/crash: a/b/c time: Ts" line
# (whose exec/s is the last job's; the average is N / T).
last=$(grep -aE '^#[0-9]+' "$LOG" | tail -n 1 || true)
execs=$(awk '/^stat::number_of_executed_units/ {print $2}' "$LOG" | tail -n 1)
rate=$(awk '/^stat::average_exec_per_sec/ {print $2}' "$LOG" | tail -n 1)
if [ -z "$execs" ] && [ -n "$last" ]; then
  execs=$(sed -E 's/^#([0-9]+).*/\1/' <<<"$last")
  secs=$(sed -nE 's/.* time: ([0-9]+)s.*/\1/p' <<<"$last")
  if [ -n "$secs" ] && [ "$secs" -gt 0 ]; then
    rate=$((execs / secs))
  fi
fi
echo "fuzz/run.sh: executions=${execs:-?} exec/s=${rate:-?}"
echo "fuzz/run.sh: last status: ${last:-none}"

findings=0
if grep -aqE '==[0-9]+== ERROR|deadly signal|Test unit written' "$LOG"; then
  findings=1
fi
if grep -aE 'oom/timeout/crash: ' "$LOG" | tail -n 1 | grep -qvE 'oom/timeout/crash: 0/0/0'; then
  findings=1
fi
if [ "$status" -ne 0 ] || [ "$findings" -ne 0 ]; then
  echo "fuzz/run.sh: FAILED (libFuzzer exit $status); findings:" >&2
  grep -aE -A45 'panicked at|==[0-9]+== ERROR: (AddressSanitizer|libFuzzer: (out-of-memory|timeout))' "$LOG" |
    head -n 100 >&2 || true
  # What each new input does and where (fuzz/triage.sh replays them).
  find "$FUZZ_DIR/artifacts/$TARGET" -type f -newer "$SCRATCH/start" 2>/dev/null | sort |
    xargs -r "$FUZZ_DIR/triage.sh" >&2 || true
  echo "fuzz/run.sh: full log in fuzz/artifacts/last-run.log" >&2
  exit 1
fi
echo "fuzz/run.sh: no crash, hang or OOM in ${SECONDS_TO_RUN}s"
