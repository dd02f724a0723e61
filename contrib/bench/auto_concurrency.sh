#!/usr/bin/env bash
# concurrency = "auto" against fixed concurrency (issue 13): the wall time of one
# sync against `lrci sim` with a capacity model, auto (concurrency_max 32) side
# by side with fixed 4, 8 and 32, as ratios auto ÷ fixed measured run by run.
#
#   contrib/bench/auto_concurrency.sh            # builds target/release/lrci if LRCI_BIN is unset
#   RUNS=5 HOURS=6 LATENCY=20 SCENARIOS="8 24 0 16:24" contrib/bench/auto_concurrency.sh
#
# A scenario is a capacity N (`--lr-capacity N`: LogRhythm serves N requests at
# a time at LATENCY ms each and queues the rest, so latency grows beyond N in
# flight; 0 = unlimited), optionally `N:M` to also answer 429 beyond M in flight
# (`--lr-reject-above M`). For each scenario and run, the four modes run one
# after another (auto, fixed 4, fixed 8, fixed 32), each against a fresh
# simulator (HOURS h × 200 alarms/h) and a fresh ledger: `lrci sync --json`,
# whole process timed. Each figure is the median over RUNS (default 3); a ratio
# is the median of the per-run ratios (auto ÷ fixed N of the same run), so a
# drift of the machine's speed between runs cancels out. The auto columns show
# its final and peak limit (run summary), the most LogRhythm requests the
# simulator saw in flight, and the 429s it answered. Only loopback is used.
# The build, scratch directory, proxy settings, keys and simulator start/stop
# are lib.sh's (shared by the issue-13 benchmarks).
source "$(dirname "$0")/lib.sh"
RUNS=${RUNS:-3}
HOURS=${HOURS:-6}
LATENCY=${LATENCY:-20}
SCENARIOS=${SCENARIOS:-8 24 0 16:24}
MODES=(auto 4 8 32)

# sync LEDGER CONCURRENCY: one timed `lrci sync --json`; prints
# "wall exit final peak backoffs sim_in_flight_peak rejected".
sync() {
    python3 - "$LRCI_BIN" "$1" "$sim_url" "$RF_TOKEN" "$work/logs" "$2" <<'PY'
import json, os, subprocess, sys, time, urllib.request
bin, ledger, url, rf, logs, conc = sys.argv[1:]
env = {"PATH": os.environ["PATH"], "LOGRHYTHM_API_URL": url, "RF_API_URL": url,
       "LOGRHYTHM_API_KEY": "sim-lr-key", "RF_API_KEY": rf, "LRCI_LEDGER": ledger,
       "LRCI_LOG_DIR": logs, "NO_PROXY": "127.0.0.1"}
args = [bin, "sync", "--json", "--lookback-days", "1", "--daily-budget", "1000000",
        "--concurrency", conc, "--concurrency-max", "32"]
t = time.monotonic()
p = subprocess.run(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
wall = time.monotonic() - t
lines = [l for l in p.stdout.decode().splitlines() if l.strip()]
c = (json.loads(lines[-1]).get("concurrency") or {}) if lines else {}
o = urllib.request.build_opener(urllib.request.ProxyHandler({}))
with o.open(url + "/_sim/stats", timeout=10) as r:
    s = json.load(r)
print(f"{wall:.3f} {p.returncode} {c.get('final', '-')} {c.get('peak', '-')} {c.get('backoffs', '-')} "
      f"{s['lr_in_flight']['peak']} {s['faults'].get('capacity-429', 0)}")
PY
}

median() { python3 -c 'import statistics,sys; v=[float(x) for x in sys.argv[1:]]; print(f"{statistics.median(v):.3f}")' "$@"; }
median_int() { python3 -c 'import statistics,sys; v=[float(x) for x in sys.argv[1:]]; print(f"{statistics.median(v):g}")' "$@"; }
calc() { python3 -c "print(f'{$1:.3f}')"; }

echo "machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg) at start; runs: $RUNS; sync of $HOURS h × 200 alarms/h at $LATENCY ms; lrci: $LRCI_BIN"
echo
printf '| capacity | 429 above | auto s | fixed 4 s | fixed 8 s | fixed 32 s | auto ÷ 4 | auto ÷ 8 | auto ÷ 32 | auto final / peak limit | in flight at LogRhythm, auto / 32 | 429s, auto / 32 | exits |\n'
printf '|---|---|---|---|---|---|---|---|---|---|---|---|---|\n'
for scenario in $SCENARIOS; do
    cap=${scenario%%:*}
    reject=0
    [[ $scenario == *:* ]] && reject=${scenario#*:}
    declare -A wall=() ratio=()
    finals=() peaks=() inflight_auto=() inflight_32=() rej_auto=() rej_32=() exits=""
    for r in $(seq 1 "$RUNS"); do
        declare -A this=()
        for mode in "${MODES[@]}"; do
            sim_start --hours "$HOURS" --alarms-per-hour 200 --lr-latency-ms "$LATENCY" \
                --lr-capacity "$cap" --lr-reject-above "$reject"
            read -r w code final peak _backoffs inflight rejected \
                < <(sync "$work/l-$scenario-$r-$mode.sqlite3" "$mode")
            sim_stop
            [[ $code == 0 ]] || echo "warning: concurrency $mode exited $code (scenario $scenario)" >&2
            exits+="$code"
            this[$mode]=$w
            wall[$mode]+="$w "
            if [[ $mode == auto ]]; then
                finals+=("$final") peaks+=("$peak") inflight_auto+=("$inflight") rej_auto+=("$rejected")
            elif [[ $mode == 32 ]]; then
                inflight_32+=("$inflight") rej_32+=("$rejected")
            fi
        done
        for mode in 4 8 32; do
            ratio[$mode]+="$(calc "${this[auto]} / ${this[$mode]}") "
        done
        unset this
        exits+=" "
    done
    # shellcheck disable=SC2086
    printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s / %s | %s / %s | %s / %s | %s|\n' \
        "$( [[ $cap == 0 ]] && echo unlimited || echo "$cap")" "$( [[ $reject == 0 ]] && echo - || echo "$reject")" \
        "$(median ${wall[auto]})" "$(median ${wall[4]})" "$(median ${wall[8]})" "$(median ${wall[32]})" \
        "$(median ${ratio[4]})" "$(median ${ratio[8]})" "$(median ${ratio[32]})" \
        "$(median_int "${finals[@]}")" "$(median_int "${peaks[@]}")" \
        "$(median_int "${inflight_auto[@]}")" "$(median_int "${inflight_32[@]}")" \
        "$(median_int "${rej_auto[@]}")" "$(median_int "${rej_32[@]}")" "$exits"
    unset wall ratio
done
