#!/usr/bin/env bash
# The cost of the look-behind (issue 9 item 1): LogRhythm list pages of one
# scheduled sync against the relist horizon, the alarm rate and the server's page
# cap. Counts requests, not time, so a debug build and any machine load will do.
#
#   contrib/bench/relist_cost.sh            # builds target/debug/lrci if LRCI_BIN is unset
#   LRCI_BIN=target/release/lrci contrib/bench/relist_cost.sh
#
# For each server profile (harsh: page cap 100, offset ignored; realistic: cap 1000,
# offset in records), each rate (alarms per hour over the last 24 h) and each
# horizon, a fresh ledger is synced once (lookback 1 day), then a second sync runs
# at once, as the next scheduled run would, and the list requests of that second
# run are counted from the simulator's /_sim/stats. Details and events requests of
# the second run are counted too: relisting must not fetch a known alarm again;
# `exit` is the second run's exit code.
# Only loopback is used.
set -euo pipefail
cd "$(dirname "$0")/../.."
if [[ -z ${LRCI_BIN:-} ]]; then
    cargo build --quiet --bin lrci
    LRCI_BIN=$PWD/target/debug/lrci
fi
work=$(mktemp -d)
sim_pid=
cleanup() { [[ -n $sim_pid ]] && kill "$sim_pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
export NO_PROXY=127.0.0.1 no_proxy=127.0.0.1

stat() { # stat URL ROUTE
    python3 - "$1" "$2" <<'EOF'
import json, sys, urllib.request
with urllib.request.urlopen(sys.argv[1] + "/_sim/stats", timeout=10) as r:
    print(json.load(r)["requests"].get(sys.argv[2], 0))
EOF
}

printf '| profile | alarms/h | horizon s | list pages | details+events | exit |\n|---|---|---|---|---|---|\n'
for profile in harsh realistic; do
    for rate in 20 200 1000; do
        for horizon in 0 3600 7200 14400; do
            "$LRCI_BIN" sim --hours 24 --alarms-per-hour "$rate" --server-profile "$profile" \
                >"$work/sim.out" 2>"$work/sim.err" &
            sim_pid=$!
            url=
            for _ in $(seq 1 100); do
                url=$(grep -o 'http://127\.0\.0\.1:[0-9]*' "$work/sim.out" 2>/dev/null | head -1 || true)
                [[ -n $url ]] && break
                sleep 0.1
            done
            [[ -n $url ]] || { echo "the simulator did not start: $(tail -3 "$work/sim.err")" >&2; exit 1; }
            run() {
                env -i PATH="$PATH" LOGRHYTHM_API_URL="$url" RF_API_URL="$url" \
                    LOGRHYTHM_API_KEY=sim-lr-key RF_API_KEY=0123456789abcdef0123456789abcdef \
                    LRCI_LEDGER="$work/l-$profile-$rate-$horizon.sqlite3" LRCI_LOG_DIR="$work/logs" \
                    "$LRCI_BIN" sync --lookback-days 1 --relist-horizon "$horizon" >/dev/null 2>&1 \
                    && code=0 || code=$?
            }
            run
            lists=$(stat "$url" "GET /lr-alarm-api/alarms")
            fetches=$(( $(stat "$url" "GET /lr-alarm-api/alarms/{id}") + $(stat "$url" "GET /lr-alarm-api/alarms/{id}/events") ))
            run
            lists2=$(stat "$url" "GET /lr-alarm-api/alarms")
            fetches2=$(( $(stat "$url" "GET /lr-alarm-api/alarms/{id}") + $(stat "$url" "GET /lr-alarm-api/alarms/{id}/events") ))
            printf '| %s | %s | %s | %s | %s | %s |\n' "$profile" "$rate" "$horizon" \
                "$((lists2 - lists))" "$((fetches2 - fetches))" "$code"
            kill "$sim_pid" 2>/dev/null; wait "$sim_pid" 2>/dev/null || true
            sim_pid=
        done
    done
done
