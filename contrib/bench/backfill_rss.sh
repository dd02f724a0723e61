#!/usr/bin/env bash
# Peak RSS of a 30-day backfill of 100 000 alarms (issue 13: keep it <= 30 MB),
# against `lrci sim`, each run on a new ledger.
#
#   contrib/bench/backfill_rss.sh          # RUNS=1 by default (about a minute each)
#
# The simulator serves 720 h of 139 alarms an hour (100 080 alarms, one event
# each); `lrci backfill --days 30` fetches, records and submits them all. The
# peak RSS is the process's own (wait4), as GNU time -v reports it.
source "$(dirname "$0")/lib.sh"
runs=${RUNS:-1}
machine
sim_start --hours 720 --alarms-per-hour 139 --daily-quota 100000000000
l=$work/backfill.sqlite3
$pairs --runs "$runs" --warmup 0 \
    --label-a "backfill --days 30" --prep-a "rm -f $l $l-wal $l-shm $l.lock" \
    --a "$(lrci_env "$l") $lrci backfill --days 30 --daily-budget 100000000000"
