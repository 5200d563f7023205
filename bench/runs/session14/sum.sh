#!/usr/bin/env bash
# sum.sh DIR...: one line per cluster run: acked/s, ack p50/p99, cluster us/placement, and cores by role
for d in "$@"; do for f in $d/cluster-ingest-*.json; do
  [ -f "$f" ] || continue
  jq -r --arg f "$f" '
    def role: if (.name|test("shard ")) then "shard" elif (.name|test("edge ")) then "edge" elif (.name|test("postgres")) then "pg" elif (.name|test("redis")) then "redis" else "other" end;
    ([.server_processes[] | {r: role, c: .cpu_cores_steady}] | group_by(.r) | map("\(.[0].r)=\((map(.c)|add)*100|round/100)") | join(" ")) as $roles |
    "\($f|sub("/tmp/";"")) acked=\(.placements.acked_per_sec|round) p50=\(.latency_ms.ack.p50) p99=\(.latency_ms.ack.p99) us=\((.server.cpu_cores_steady / .placements.acked_per_sec * 1e6)|round) \($roles)"' "$f"
done; done
