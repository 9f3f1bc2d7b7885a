#!/usr/bin/env bash
# Replays fuzz findings and prints, for each, what went wrong and where:
#
#   fuzz/triage.sh [FILE...]     default: every file in fuzz/artifacts/read_deid_write/
#
# One line per input: the file, the kind (panic / oom / timeout / ok), the panic
# message or the allocation size, and the first frames in this project's src/ (or,
# failing that, in the dicom-* crates). Uses the binary the last fuzz/run.sh built.
set -uo pipefail

FUZZ_DIR=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$FUZZ_DIR")
BIN=$FUZZ_DIR/target/x86_64-unknown-linux-gnu/release/read_deid_write
if [ ! -x "$BIN" ]; then
  echo "fuzz/triage.sh: no $BIN; run fuzz/run.sh (or cargo fuzz build) first" >&2
  exit 2
fi
if [ $# -eq 0 ]; then
  set -- "$FUZZ_DIR"/artifacts/read_deid_write/*
fi
SCRATCH=$(mktemp -d "${TMPDIR:-/tmp}/dicom-deid-triage.XXXXXX")
trap 'rm -rf "$SCRATCH"' EXIT

for f in "$@"; do
  [ -f "$f" ] || continue
  out=$(FUZZ_SCRATCH=$SCRATCH RUST_BACKTRACE=1 "$BIN" -rss_limit_mb=2048 -timeout=20 "$f" 2>&1)
  if grep -q 'panicked at' <<<"$out"; then
    kind=panic
    what=$(grep -A1 'panicked at' <<<"$out" | head -n 2 | tr '\n' ' ')
  elif grep -q 'out-of-memory' <<<"$out"; then
    kind=oom
    what=$(grep -oE 'out-of-memory \([^)]*\)' <<<"$out" | head -n 1)
  elif grep -q 'ERROR: libFuzzer: timeout' <<<"$out"; then
    kind=timeout
    what="over 20 s"
  else
    kind=ok
    what=""
  fi
  # First frames in a dicom-rs crate, then in this project's src/.
  lib=$(grep -oE 'dicom-[a-z]+-[0-9.]+/src/[a-z_/]+\.rs:[0-9]+' <<<"$out" | head -n 1)
  own=$(grep -oE "$ROOT/src/[a-z_/]+\.rs:[0-9]+" <<<"$out" | sed "s|$ROOT/||" | awk '!seen[$0]++' | head -n 3 | tr '\n' ' ')
  where="$lib $own"
  printf '%s\t%s\t%s\t%s\n' "$(basename "$f")" "$kind" "$what" "$where"
done
