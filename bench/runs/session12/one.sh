#!/usr/bin/env bash
# one.sh BIN NAME [loadgen args...]: one run against a fresh place serve with bench flags.
# env: PROF=1 PROF_AFTER=secs PROF_FOR=secs, LGNICE, EXTRA (extra serve flags)
set -u
BIN=$1; NAME=$2; shift 2
LOADGEN=${LOADGEN:-/work/main/target/release/loadgen}
OUT=/tmp/runs; mkdir -p $OUT
DATA=$(mktemp -d /tmp/data.XXXX)
FLAGS="--width 2000 --height 2000 --cooldown-secs 0 --guest-rate-per-minute 0 --batch-window-ms ${BW:-10} --max-connections-per-address 1000000 --max-websockets-per-address 1000000 --placements-per-address-per-minute 0 --guest-pow-bits 0 ${EXTRA:-}"
: > $OUT/$NAME.server.out
RUST_LOG=${RUST_LOG:-warn} $BIN serve --listen 127.0.0.1:0 --data-dir $DATA $FLAGS > $OUT/$NAME.server.out 2>$OUT/$NAME.server.log &
PID=$!
for i in $(seq 1 300); do grep -q '^listening on' $OUT/$NAME.server.out && break; sleep 0.1; done
URL=$(sed -n 's/^listening on http:\/\//ws:\/\//p' $OUT/$NAME.server.out | head -1)
sync
if [ -n "${PROF:-}" ]; then
  ( sleep ${PROF_AFTER:-8}; perf record -F 999 -g -p $PID -o $OUT/$NAME.perf.data -- sleep ${PROF_FOR:-6} >/dev/null 2>&1 ) &
fi
nice -n ${LGNICE:-0} timeout 300 $LOADGEN --url $URL --server-pid $PID --json $OUT/$NAME.json --quiet "$@" > $OUT/$NAME.txt 2>&1
curl -s "${URL/ws:/http:}/metrics" > $OUT/$NAME.metrics; for t in /proc/$PID/task/*; do echo "$(cat $t/comm) $(awk '{print $14+$15}' $t/stat)"; done | awk '{a[$1]+=$2} END {for (k in a) printf "%s=%.1fs ", k, a[k]/100; print ""}' > $OUT/$NAME.threads
kill -INT $PID; wait $PID 2>/dev/null
rm -rf $DATA
wait
jq -c "{ack_p99: .latency_ms.ack.p99, bc_p99: .latency_ms.broadcast.p99, acked_s: .placements.acked_per_sec, srv_cores: .server.cpu_cores_steady, us_per_placement: (.server.cpu_cores_steady / .placements.acked_per_sec * 1e6), msgs: .totals.messages_steady, lg_cores: .loadgen.cpu_cores_steady, other: .machine.other_cores_steady}" $OUT/$NAME.json 2>/dev/null || tail -5 $OUT/$NAME.txt
cat $OUT/$NAME.threads
