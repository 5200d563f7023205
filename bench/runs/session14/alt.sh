#!/usr/bin/env bash
# alt.sh OUT "BUILD..." ROUNDS RATE...: bench/runs/session13/cluster.sh for /work/bin/place-BUILD, in turn
out=$1; bins=$2; rounds=$3; shift 3
cd "$(dirname "$0")/../../.."
for r in $(seq 1 $rounds); do
  for b in $bins; do
    PLACE_BIN=/work/bin/place-$b LOADGEN=/work/bin/loadgen timeout 600 bash bench/runs/session13/cluster.sh $out/$b-$r "$@" > /dev/null 2>&1
  done
done
