#!/usr/bin/env bash
# The fetch pipeline's figures (issue 13), each a ratio from one run of this script:
#
#  1. wall ÷ ideal for a 24 h × 200 alarms/h sync at 20 ms and 100 ms LogRhythm
#     latency, concurrency 8 and 32 (goal ≤ 1.10): ideal = needed requests ×
#     latency ÷ concurrency, the requests counted by the simulator's /_sim/stats;
#     "needed" are list pages and events (details are not needed without
#     min_rbp / fetch_details). With MAIN_BIN set, the same runs of that binary
#     (say, the main branch's) go side by side, run by run, with its own figures.
#     Each run also times contrib/bench/reference_client.py making the same
#     requests with nothing else done: the floor of this machine and simulator;
#  2. LogRhythm requests per alarm without an RBP filter (goal 1 + list);
#  3. lrci ÷ the sequential vendor-style baseline (contrib/bench/vendor_baseline.py)
#     fetching the same alarms at the same latency (goal ≤ 1/15);
#  4. peak RSS of a 30-day backfill of 100 k alarms (goal ≤ 30 MB; GNU time).
#
#   contrib/bench/pipeline.sh                       # builds target/release/lrci if LRCI_BIN is unset
#   RUNS=3 MAIN_BIN=/tmp/lrci-main contrib/bench/pipeline.sh
#   SECTIONS="ratio vendor rss" LATENCIES="20 100" CONCURRENCIES="8 32" contrib/bench/pipeline.sh
#
# Each figure is the median of RUNS runs (default 3); every run starts a fresh
# simulator (`lrci sim --server-profile realistic`: page cap 1000, offset in
# records) and a fresh ledger, so each sync probes the server first (its 7
# list requests, in three rounds, are in the wall time and in the request count).
# The simulator's latency is exact to tens of microseconds (sim::delay), so
# "ideal" is what the latency allows and the reference client shows the rest.
# Wall time is the whole `lrci sync` process: start-up (settings, ledger,
# TLS roots), probe, listing and fetching, then submission to the simulated CI
# (no latency). "fetch" is the LogRhythm part alone, from the log (see `lrci`
# below). The simulator runs on the same machine, so at low latency and high
# concurrency its own CPU (it generates every events body) is in the figures too.
# Only loopback is used.
# The build, scratch directory, proxy settings, keys and simulator start/stop
# are lib.sh's (shared by the issue-13 benchmarks); every simulator here runs
# the realistic profile.
source "$(dirname "$0")/lib.sh"
RUNS=${RUNS:-3}
LATENCIES=${LATENCIES:-20 100}
CONCURRENCIES=${CONCURRENCIES:-8 32}
SECTIONS=${SECTIONS:-ratio vendor rss}
start_sim() { sim_start --server-profile realistic "$@"; }

stats() { # stats URL: "lists details events"
    python3 - "$1" <<'PY'
import json, sys, urllib.request
o = urllib.request.build_opener(urllib.request.ProxyHandler({}))
with o.open(sys.argv[1] + "/_sim/stats", timeout=10) as r:
    q = json.load(r)["requests"]
print(q.get("GET /lr-alarm-api/alarms", 0), q.get("GET /lr-alarm-api/alarms/{id}", 0),
      q.get("GET /lr-alarm-api/alarms/{id}/events", 0))
PY
}

# lrci BIN LEDGER ARGS...: runs lrci against the simulator; prints "wall exit
# fetch": fetch is the time from the engine's "run started" log line to "slices
# fetched and committed" (probe, listing and fetching: the LogRhythm part of the
# run), "-" when the binary does not log the latter (older builds).
lrci() {
    local bin=$1 ledger=$2
    shift 2
    local logs
    logs=$(mktemp -d -p "$work")
    python3 - "$bin" "$ledger" "$sim_url" "$RF_TOKEN" "$logs" "$@" <<'PY'
import glob, os, subprocess, sys, time
from datetime import datetime
bin, ledger, url, rf, logs, *args = sys.argv[1:]
env = {"PATH": os.environ["PATH"], "LOGRHYTHM_API_URL": url, "RF_API_URL": url,
       "LOGRHYTHM_API_KEY": "sim-lr-key", "RF_API_KEY": rf, "LRCI_LEDGER": ledger,
       "LRCI_LOG_DIR": logs, "NO_PROXY": "127.0.0.1"}
t = time.monotonic()
code = subprocess.run([bin, *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode
wall = time.monotonic() - t
start = end = None
for f in glob.glob(os.path.join(logs, "*.log")):
    for line in open(f, errors="replace"):
        at = line.split(" ", 1)[0].rstrip("Z")
        if "lrci::engine:" in line and "run started" in line and start is None:
            start = datetime.fromisoformat(at[:26])
        if "slices fetched and committed" in line:
            end = datetime.fromisoformat(at[:26])
fetch = f"{(end - start).total_seconds():.3f}" if start and end else "-"
print(f"{wall:.3f} {code} {fetch}")
PY
}

median() { python3 -c 'import statistics,sys; v=[float(x) for x in sys.argv[1:]]; print(f"{statistics.median(v):.3f}")' "$@"; }
calc() { python3 -c "print(f'{$1:.3f}')"; }

echo "machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg) at start; runs: $RUNS; lrci: $LRCI_BIN${MAIN_BIN:+; main: $MAIN_BIN}"

if [[ " $SECTIONS " == *" ratio "* ]]; then
    echo
    echo "## wall ÷ ideal, 24 h × 200 alarms/h sync (needed requests = list pages + events)"
    printf '| binary | latency ms | concurrency | alarms | lists | details | events | ideal s (needed) | wall s | wall ÷ ideal (needed) | wall ÷ ideal (own requests) | fetch s | fetch ÷ ideal (needed) | reference ÷ ideal | fetch ÷ reference | requests per alarm |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n'
    bins=("$LRCI_BIN")
    [[ -n ${MAIN_BIN:-} ]] && bins+=("$MAIN_BIN")
    for lat in $LATENCIES; do
        for conc in $CONCURRENCIES; do
            declare -A walls=() needed=() own=() rows=() fetches=() fratio=() fref=()
            refr=()
            for r in $(seq 1 "$RUNS"); do
                # The machine's floor: the same requests by the simplest concurrent client.
                start_sim --hours 24 --alarms-per-hour 200 --lr-latency-ms "$lat"
                rfrom=$(date -u -d '24 hours ago' +%Y-%m-%dT%H:00:00)
                rto=$(date -u -d '120 seconds ago' +%Y-%m-%dT%H:%M:%S)
                out=$(python3 "$root/contrib/bench/reference_client.py" "$sim_url" "$LR_KEY" "$rfrom" "$rto" "$conc")
                sim_stop
                ref_wall=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["wall_seconds"])' "$out")
                ref_req=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["requests"])' "$out")
                refr+=("$(calc "$ref_wall / ($ref_req * $lat / 1000 / $conc)")")
                for bin in "${bins[@]}"; do
                    start_sim --hours 24 --alarms-per-hour 200 --lr-latency-ms "$lat"
                    read -r wall code fetch < <(lrci "$bin" "$work/l-$r-$lat-$conc-$(basename "$bin").sqlite3" \
                        sync --lookback-days 1 --concurrency "$conc" --daily-budget 1000000)
                    read -r lists details events < <(stats "$sim_url")
                    sim_stop
                    [[ $code == 0 ]] || echo "warning: $bin exited $code (latency $lat, concurrency $conc)" >&2
                    n=$(calc "($lists + $events) * $lat / 1000 / $conc")
                    o=$(calc "($lists + $details + $events) * $lat / 1000 / $conc")
                    walls[$bin]+="$wall "
                    needed[$bin]+="$(calc "$wall / $n") "
                    own[$bin]+="$(calc "$wall / $o") "
                    if [[ $fetch != - ]]; then
                        fetches[$bin]+="$fetch "
                        fratio[$bin]+="$(calc "$fetch / $n") "
                        fref[$bin]+="$(calc "($fetch / $n) / ${refr[-1]}") "
                    fi
                    rows[$bin]="$events $lists $details $events $n"
                done
            done
            for bin in "${bins[@]}"; do
                read -r alarms lists details events ideal <<<"${rows[$bin]}"
                f=- fr=- frr=-
                if [[ -n ${fetches[$bin]:-} ]]; then
                    # shellcheck disable=SC2086
                    f=$(median ${fetches[$bin]}) fr=$(median ${fratio[$bin]}) frr=$(median ${fref[$bin]})
                fi
                # shellcheck disable=SC2086
                printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$(basename "$bin")" "$lat" "$conc" \
                    "$alarms" "$lists" "$details" "$events" "$ideal" "$(median ${walls[$bin]})" \
                    "$(median ${needed[$bin]})" "$(median ${own[$bin]})" "$f" "$fr" "$(median "${refr[@]}")" "$frr" \
                    "$(calc "($details + $events) / $alarms") + $(calc "$lists / $alarms") list"
            done
            unset walls needed own rows fetches fratio fref
        done
    done
fi

if [[ " $SECTIONS " == *" vendor "* ]]; then
    lat=${VENDOR_LATENCY:-20}
    end=$(date -u +%Y-%m-%dT%H:00:00Z)
    from=$(date -u -d "$end - 24 hours" +%Y-%m-%dT%H:%M:%SZ)
    echo
    echo "## lrci ÷ sequential vendor-style baseline, 24 h × 50 alarms/h, $lat ms latency (backfill of the same window)"
    printf '| concurrency | alarms (baseline) | alarms (lrci) | baseline s | lrci s | lrci ÷ baseline |\n|---|---|---|---|---|---|\n'
    for conc in $CONCURRENCIES; do
        base=() mine=() ratio=()
        for r in $(seq 1 "${VENDOR_RUNS:-$RUNS}"); do
            start_sim --hours 24 --alarms-per-hour 50 --end "$end" --lr-latency-ms "$lat"
            out=$(python3 "$root/contrib/bench/vendor_baseline.py" "$sim_url" "$LR_KEY" "$from" "$end")
            b=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["wall_seconds"])' "$out")
            va=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["alarms"])' "$out")
            sim_stop
            start_sim --hours 24 --alarms-per-hour 50 --end "$end" --lr-latency-ms "$lat"
            read -r wall code _ < <(lrci "$LRCI_BIN" "$work/v-$r-$conc.sqlite3" backfill --from "$from" --to "$end" \
                --concurrency "$conc" --daily-budget 1000000)
            read -r _ _ la < <(stats "$sim_url")
            sim_stop
            [[ $code == 0 ]] || echo "warning: lrci exited $code" >&2
            base+=("$b") mine+=("$wall") ratio+=("$(calc "$wall / $b")")
        done
        printf '| %s | %s | %s | %s | %s | %s (1/%s) |\n' "$conc" "$va" "$la" "$(median "${base[@]}")" \
            "$(median "${mine[@]}")" "$(median "${ratio[@]}")" "$(calc "1 / $(median "${ratio[@]}")")"
    done
fi

if [[ " $SECTIONS " == *" rss "* ]]; then
    echo
    echo "## peak RSS, 30-day backfill of 100 k alarms (no latency; GNU time's maximum resident set)"
    end=$(date -u +%Y-%m-%dT%H:00:00Z)
    from=$(date -u -d "$end - 30 days" +%Y-%m-%dT%H:%M:%SZ)
    printf '| run | alarms | exit | wall s | peak RSS MB |\n|---|---|---|---|---|\n'
    for r in $(seq 1 "${RSS_RUNS:-1}"); do
        start_sim --hours 720 --alarms-per-hour 139 --end "$end" --daily-quota 10000000
        t0=$(date +%s.%N)
        code=0
        env -i PATH="$PATH" LOGRHYTHM_API_URL="$sim_url" RF_API_URL="$sim_url" NO_PROXY=127.0.0.1 \
            LOGRHYTHM_API_KEY="$LR_KEY" RF_API_KEY="$RF_TOKEN" LRCI_LEDGER="$work/rss-$r.sqlite3" \
            LRCI_LOG_DIR="$work/logs" /usr/bin/time -f '%M' -o "$work/rss" \
            "$LRCI_BIN" backfill --from "$from" --to "$end" --daily-budget 100000000 >/dev/null 2>&1 || code=$?
        wall=$(calc "$(date +%s.%N) - $t0")
        read -r _ _ events < <(stats "$sim_url")
        sim_stop
        printf '| %s | %s | %s | %s | %s |\n' "$r" "$events" "$code" "$wall" "$(calc "$(tail -1 "$work/rss") / 1024")"
    done
fi
exit 0
