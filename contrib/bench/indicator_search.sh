#!/usr/bin/env bash
# `lrci ledger indicators --value X` at 1 M detections (issue 13; goal <= 20 ms),
# through the trigram index, against the scan the command did before (and still
# does for values under 3 characters), side by side in one run.
#
#   contrib/bench/indicator_search.sh          # RUNS=15 by default
#
# The ledger: 100 000 alarms of 10 indicators (1 000 000 detections) built once
# through the real write path (examples/build_ledger.rs). Whole processes, wall
# time (process start-up included):
#   rare    --value c2-777780   (matches 1 row): index
#   common  --value example     (matches most rows; the first page): index
#   scan    --value zq          (2 characters, matches none): the statement of the
#           old code, which reads and compares every row, as it did for any value
#           not found near the newest rows
source "$(dirname "$0")/lib.sh"
runs=${RUNS:-15}
machine
big=$(ledger_of 100000 10)
ls -l "$big"
env=$(lrci_env "$big")
for v in c2-777780 example zq; do
    echo "--value $v: $($env "$lrci" ledger indicators --value "$v" --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)), "rows")')"
done
echo "== rare value (index) vs the scan"
$pairs --runs "$runs" --warmup 2 \
    --label-a "indicators --value c2-777780" --a "$env $lrci ledger indicators --value c2-777780" \
    --label-b "scan (--value zq)" --b "$env $lrci ledger indicators --value zq"
echo "== common value (index) vs the scan"
$pairs --runs "$runs" --warmup 2 \
    --label-a "indicators --value example" --a "$env $lrci ledger indicators --value example" \
    --label-b "scan (--value zq)" --b "$env $lrci ledger indicators --value zq"
