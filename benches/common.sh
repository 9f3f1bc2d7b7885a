# shellcheck shell=bash
# Shared by the benchmark scripts (sourced from the project root): prints what it
# runs, makes sure GNU time is there (the only thing a benchmark may install, and
# it says so first), builds the release binary and the corpus generator.

say() { printf '+ %s\n' "$*" >&2; }

avail_kib() { df -Pk "$1" 2>/dev/null | awk 'NR == 2 { print $4 }'; }

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
# shellcheck disable=SC2034  # used by the scripts that source this file
BIN=./target/release/dicom-deid
# shellcheck disable=SC2034
GEN=./target/release/examples/make-corpus
