#!/usr/bin/env bash
# ing.sh TAG ROUNDS BUILDS...: the 10,000/s ingest step against each /work/bin/place-BUILD in turn
tag=$1; rounds=$2; shift 2
for r in $(seq 1 $rounds); do for b in "$@"; do
  echo "== $b $r"
  RUST_LOG=warn,place_store=debug LOADGEN=/work/bin/loadgen bash "$(dirname "$0")/../session12/one.sh" /work/bin/place-$b $tag-$b-$r \
    --clients $(( ${RATE:-10000} / 5 )) --ramp-per-sec 500 --place-rate ${RATE:-10000} --spread uniform --viewport 64x64 --zoom 1 --pan-every 0 --duration 20s
done; done
