#!/usr/bin/env bash
# Session 13: the cluster's CPU per acknowledged placement, process by process.
#
#   bench/runs/session13/cluster.sh OUT RATE [RATE...]
#
# Starts scripts/dev-cluster (2 edges, 3 shards, the local PostgreSQL and Redis) with the limits
# bench/run uses, runs the ingest scenario of bench/run at each RATE against both edges, with
# every node, every postgres process and Redis given to loadgen as --server-pid, and writes
# OUT/cluster-ingest-RATE.json. Then stops the cluster and drops its schema and keys.
#
# HOTSPOTS=1 makes each RATE a number of players over 8 hot spots at 1,000 placements/s (bench/run's
# fan-out scenario, binary), written to OUT/cluster-hotspots-PLAYERS.json.
#
# PERF_NODES="shard-1 edge-1" also records a profile of each named node for 4 s of each step's
# steady phase (OUT/NODE-RATE.perf; `perf report -i FILE --children --sort symbol -g none`).
set -euo pipefail
cd "$(dirname "$0")/../../.."
out=$1
shift
mkdir -p "$out"
export DEV_CLUSTER_DIR=/tmp/s13-cluster DEV_CLUSTER_NAME=s13 DEV_CLUSTER_PORT=3900
PLACE=${PLACE_BIN:-$PWD/target/release/place}
LOADGEN=${LOADGEN:-$PWD/target/release/loadgen}
down() {
  PLACE_BIN=$PLACE scripts/dev-cluster down >/dev/null 2>&1 || true
  psql -h 127.0.0.1 -U postgres -d postgres -qc "DROP SCHEMA IF EXISTS $DEV_CLUSTER_NAME CASCADE" >/dev/null 2>&1 || true
  redis-cli -h 127.0.0.1 --scan --pattern "place:$DEV_CLUSTER_NAME:*" | xargs -r redis-cli -h 127.0.0.1 del >/dev/null 2>&1 || true
}
down
trap down EXIT
ulimit -n "$(ulimit -Hn)"
PLACE_MAX_CONNECTIONS_PER_ADDRESS=1000000 PLACE_MAX_WEBSOCKETS_PER_ADDRESS=1000000 \
  PLACE_PLACEMENTS_PER_ADDRESS_PER_MINUTE=0 PLACE_GUEST_POW_BITS=0 \
  PLACE_BIN=$PLACE PLACE_COOLDOWN_SECS=0 PLACE_GUEST_RATE_PER_MINUTE=0 PLACE_WIDTH=2000 \
  PLACE_HEIGHT=2000 PLACE_BATCH_WINDOW_MS=10 RUST_LOG=warn scripts/dev-cluster up >"$out/urls"
mapfile -t edges < <(head -2 "$out/urls" | sed 's/^http:/ws:/')
for rate in "$@"; do
  pids=()
  for pid in $(awk '{ print $1 }' "$DEV_CLUSTER_DIR/pids") $(pgrep -x postgres) $(pgrep -x redis-server); do
    pids+=(--server-pid "$pid")
  done
  sync
  for node in ${PERF_NODES:-}; do
    pid=$(awk -v n="$node" '$2 == n { print $1 }' "$DEV_CLUSTER_DIR/pids")
    (sleep 8; perf record -F 999 --call-graph dwarf,16384 -p "$pid" -o "$out/$node-$rate.perf" \
      -- sleep 4 >/dev/null 2>&1) &
  done
  if [ -n "${HOTSPOTS:-}" ]; then
    name=cluster-hotspots-$rate
    scenario=(--clients "$rate" --place-rate 1000 --viewport 1280x720 --zoom 2 --pan-every 30s
      --hotspots 8 --hotspot-radius 300 --format binary)
  else
    name=cluster-ingest-$rate
    scenario=(--clients $((rate / 5)) --place-rate "$rate" --spread uniform --viewport 64x64 --zoom 1
      --pan-every 0)
  fi
  "$LOADGEN" --url "${edges[0]}/ws" --url "${edges[1]}/ws" "${pids[@]}" --quiet \
    --json "$out/$name.json" --ramp-per-sec 500 --duration 10s "${scenario[@]}" \
    | tee "$out/$name.txt" || true
  sleep 3
done
