#!/usr/bin/env bash
# commits.sh BIN OUT RATE: a cluster run with PostgreSQL's commit count over 5 s of its steady phase
bin=$1; out=$2; rate=$3
( 
  # wait until loadgen runs
  for i in $(seq 1 600); do pgrep -x loadgen >/dev/null && break; sleep 0.2; done
  sleep 4
  a=$(psql -h 127.0.0.1 -U postgres -d postgres -Atc "select sum(xact_commit) from pg_stat_database")
  sleep 5
  b=$(psql -h 127.0.0.1 -U postgres -d postgres -Atc "select sum(xact_commit) from pg_stat_database")
  echo "commits/s $(( (b - a) / 5 ))" > $out.commits ) &
cd "$(dirname "$0")/../../.." && PLACE_BIN=$bin LOADGEN=/work/bin/loadgen timeout 600 bash bench/runs/session13/cluster.sh $out $rate > /dev/null 2>&1
wait
cat $out.commits
