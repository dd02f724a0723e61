#!/usr/bin/env bash
# A quiet sync on a ledger of 1 M detections against one on a fresh ledger
# (issue 13; goal: within 2x), side by side in one run, against `lrci sim`.
#
#   contrib/bench/quiet_sync.sh            # RUNS=5 by default
#
# The large ledger: 100 000 alarms of 10 indicators (1 000 000 detections, most
# sent) built once through the real write path (examples/build_ledger.rs), closed
# cleanly and checked at creation, as a scheduled agent leaves it. The simulator
# serves 24 h of 20 alarms an hour. Each ledger (the large one, and a new one)
# is synced once untimed, so both then hold the simulator's alarms and only the
# relist horizon is listed again; then
#   A  lrci sync on the large ledger,
#   B  lrci sync on the small one,
# alternate, whole processes (wall and user+sys CPU). A third pair repeats A with
# the large ledger's modification time changed first (`touch`), which makes the
# writer run PRAGMA quick_check as it does after an unclean shutdown or once a
# day: the cost of a check when one is due.
source "$(dirname "$0")/lib.sh"
runs=${RUNS:-5}
machine
big=$(ledger_of 100000 10)
ls -l "$big"
sim_start --hours 24 --alarms-per-hour 20 --daily-quota 100000000
small=$work/fresh.sqlite3
for l in "$big" "$small"; do
    $(lrci_env "$l") "$lrci" sync --daily-budget 100000000000 >"$work/warm.out" 2>&1 || { tail -5 "$work/warm.out"; exit 1; }
done
echo "== quiet sync, 1 M detections vs a fresh ledger"
$pairs --runs "$runs" --warmup 1 \
    --label-a "sync, 1 M detections" --a "$(lrci_env "$big") $lrci sync --daily-budget 100000000000" \
    --label-b "sync, fresh ledger" --b "$(lrci_env "$small") $lrci sync --daily-budget 100000000000"
echo "== the same with a quick_check due on the large ledger (file touched)"
$pairs --runs "$runs" --warmup 0 \
    --label-a "sync, 1 M, check due" --prep-a "touch $big" --a "$(lrci_env "$big") $lrci sync --daily-budget 100000000000" \
    --label-b "sync, fresh ledger" --b "$(lrci_env "$small") $lrci sync --daily-budget 100000000000"
