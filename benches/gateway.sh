#!/usr/bin/env bash
# Throughput and latency of `dicom-deid serve` (receive, spool, de-identify, queue,
# forward) against dcmtk's storescu sending straight to storescp, which is the limit.
#
# Usage: benches/gateway.sh [N]            (default 3000 files, the mixed corpus)
#        BENCH_DIR=/some/dir benches/gateway.sh   (work there instead of /dev/shm)
#
# Writes N files with `make-corpus tree` (as benches/throughput.sh does), starts a
# storescp (`-pm +xa`) on an unused port, then:
#   1. direct:  storescu +sd +r sends the tree to storescp;
#   2. gateway: storescu sends the tree to `serve`, which forwards to a second
#      storescp; the clock stops when every acknowledged object has arrived there;
#   3. latency: one CT sample, from storescu's start until the file is at storescp,
#      direct and through the gateway (median of 9).
# Objects/s count the success responses storescu logged (storescu proposes only
# uncompressed syntaxes, so compressed corpus files are refused by both ways alike).
# Also prints the gateway's peak RSS (VmHWM). Everything it starts is stopped and
# everything it writes is removed on exit.
set -euo pipefail

N=${1:-3000}
case $N in '' | *[!0-9]*) echo "usage: $0 [N]" >&2; exit 2 ;; esac
cd "$(dirname "$0")/.."
for t in storescu storescp; do
    command -v "$t" >/dev/null || { echo "dcmtk's $t is required (apt-get install dcmtk)" >&2; exit 1; }
done
# shellcheck source=benches/common.sh
. benches/common.sh

base=${BENCH_DIR:-/dev/shm}
[ "$(avail_kib "$base" || echo 0)" -gt $((N * 170 * 4 + 262144)) ] || base=${TMPDIR:-/tmp}
WORK=$(mktemp -d "$base/gateway-bench.XXXXXX")
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 200); do (echo >"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done; echo "port $1 never opened" >&2; exit 1; }
now() { date +%s.%N; }
count() { find "$1" -type f | wc -l; }

TREE=$WORK/tree
say "$GEN" tree "$TREE" "$N"
"$GEN" tree "$TREE" "$N" >/dev/null 2>"$WORK/gen.log"
head -c 32 /dev/urandom | base64 | head -c 32 >"$WORK/key"
chmod 600 "$WORK/key"

start_storescp() { # dir port
    mkdir -p "$1"
    storescp -aet DEST -pm +xa --fork -od "$1" "$2" >"$1.log" 2>&1 &
    PIDS+=($!)
    wait_port "$2"
}

# 1. direct
P1=$(free_port)
start_storescp "$WORK/direct" "$P1"
t0=$(now)
storescu -v -nh +sd +r -aec DEST 127.0.0.1 "$P1" "$TREE" >"$WORK/direct-scu.log" 2>&1 || true
t1=$(now)
ok_direct=$(grep -c 'Received Store Response (Success)' "$WORK/direct-scu.log" || true)
direct_s=$(echo "$t1 - $t0" | bc -l)

# 2. through the gateway
P2=$(free_port)
PG=$(free_port)
start_storescp "$WORK/viagw" "$P2"
printf 'extends: basic\nquarantine: {burned-in-annotation: warn, burned-in-unknown: warn, encapsulated-documents: warn}\n' >"$WORK/lenient.yaml"
"$BIN" serve --listen "127.0.0.1:$PG" --ae-title GW --spool "$WORK/spool" \
    --forward "dimse://DEST@127.0.0.1:$P2" --key-file "$WORK/key" \
    --profile "$WORK/lenient.yaml" >"$WORK/serve.log" 2>&1 &
GW_PID=$!
PIDS+=("$GW_PID")
wait_port "$PG"
t0=$(now)
storescu -v -nh +sd +r -aec GW 127.0.0.1 "$PG" "$TREE" >"$WORK/gw-scu.log" 2>&1 || true
t_ack=$(now)
ok_gw=$(grep -c 'Received Store Response (Success)' "$WORK/gw-scu.log" || true)
# Objects that share a SOP Instance UID arrive as one file: wait for the queue.
while [ "$(find "$WORK/spool/queue" -name '*.dcm' | wc -l)" -gt 0 ]; do sleep 0.02; done
t1=$(now)
gw_s=$(echo "$t1 - $t0" | bc -l)
ack_s=$(echo "$t_ack - $t0" | bc -l)
rss_kib=$(awk '/VmHWM/ { print $2 }' "/proc/$GW_PID/status")

# 3. latency of one object
one=testdata/dicom/ct_explicit_le.dcm
latency() { # port dir -> seconds until a new file shows in dir
    local before t0 t1
    before=$(count "$2")
    t0=$(now)
    storescu -aec "$3" 127.0.0.1 "$1" "$one" >/dev/null 2>&1 &
    while [ "$(count "$2")" -le "$before" ]; do sleep 0.002; done
    t1=$(now)
    wait $! || true
    rm -f "$2"/*
    echo "$t1 - $t0" | bc -l
}
median() { sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
lat_direct=$(for _ in $(seq 9); do latency "$P1" "$WORK/direct" DEST; done | median)
lat_gw=$(for _ in $(seq 9); do latency "$PG" "$WORK/viagw" GW; done | median)

printf '\ncorpus: %s files (make-corpus tree)\n' "$N"
printf '%-28s %8s %10s %10s\n' mode objects seconds objects/s
printf '%-28s %8s %10.2f %10.1f\n' "storescu -> storescp" "$ok_direct" "$direct_s" "$(echo "$ok_direct / $direct_s" | bc -l)"
printf '%-28s %8s %10.2f %10.1f\n' "storescu -> serve -> storescp" "$ok_gw" "$gw_s" "$(echo "$ok_gw / $gw_s" | bc -l)"
printf '  (all acknowledged after %.2f s; ratio to direct: %.2f)\n' "$ack_s" "$(echo "($ok_gw / $gw_s) / ($ok_direct / $direct_s)" | bc -l)"
printf 'gateway peak RSS: %s MiB\n' "$((rss_kib / 1024))"
printf 'one CT object, storescu start to file at storescp (median of 9): direct %.0f ms, through serve %.0f ms\n' \
    "$(echo "$lat_direct * 1000" | bc -l)" "$(echo "$lat_gw * 1000" | bc -l)"
