#!/usr/bin/env bash
# Client CPU per detection submitted (issue 13): `lrci replay` against psengine
# 2.14.0, Recorded Future's Python SDK, posting the same items to the same
# Collective Insights endpoint (`lrci sim`, loopback), side by side in one run.
#
#   contrib/bench/submit_cpu.sh [BACKLOG ...]      # default: 30000 300000
#   RUNS=3 LRCI_ONLY=1 contrib/bench/submit_cpu.sh 10000 1000000   # lrci flat?
#
# For each BACKLOG a ledger with BACKLOG `pending` detections is built once through
# the real write path (examples/build_ledger.rs --unsent: BACKLOG/8 alarms of 10
# indicators, 8 sent-able and 2 excluded by policy). Each run starts from a fresh
# copy of it (`cp -p`: the file as its writer closed it, so no quick_check is due)
# and an emptied simulator (POST /_sim/reset), both untimed:
#   A  lrci replay (failed and pending; batches of 500; daily budget raised so
#      nothing waits), the whole process;
#   B  contrib/bench/psengine_submit.py: psengine builds one detection per due
#      row of the same ledger (read with sqlite3) and submits them in batches of
#      500 with debug=False, the whole Python process.
# Figures: user+sys CPU of the client process from wait4 (the simulator's CPU is
# its own process and not counted for either), divided by BACKLOG. Nothing is
# subtracted: both include their start-up (for psengine the interpreter and its
# imports, for lrci opening and checking the ledger), which the marginal figure
# below removes for both alike: (CPU at the larger backlog − CPU at the smaller)
# ÷ (difference in detections), from the medians.
# Before the timed runs, one run of each is checked: the simulator received
# exactly BACKLOG items from each. With LRCI_ONLY=1, A is lrci at the first
# backlog and B lrci at the second (CPU per detection against backlog).
# Needs python3 (venv with psengine: PEER_VENV, default target/peer-venv, created
# as tests/peer/run.sh does).
source "$(dirname "$0")/lib.sh"
runs=${RUNS:-3}
venv=${PEER_VENV:-$root/target/peer-venv}
if [[ ${LRCI_ONLY:-0} != 1 ]]; then
    if [[ ! -x $venv/bin/python ]]; then python3 -m venv "$venv"; fi
    if [[ $("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("psengine"))' 2>/dev/null) != 2.14.0 ]]; then
        "$venv/bin/python" -m pip install --quiet --disable-pip-version-check psengine==2.14.0
    fi
fi
backlogs=("$@")
[[ ${#backlogs[@]} -gt 0 ]] || backlogs=(30000 300000)
machine
sim_start --hours 1 --alarms-per-hour 1 --rf-key "$RF_TOKEN" --daily-quota 100000000000
reset="python3 -c 'import urllib.request,sys; urllib.request.urlopen(urllib.request.Request(sys.argv[1], method=\"POST\"), timeout=30)' $sim_url/_sim/reset"
received() {
    python3 -c 'import json,sys,urllib.request; print(len(json.load(urllib.request.urlopen(sys.argv[1], timeout=120))))' "$sim_url/_sim/received"
}
copy=$work/replay.sqlite3
restore() { echo "rm -f $copy $copy-wal $copy-shm $copy.lock && cp -p $1 $copy && $reset"; }
lrci_cmd="$(lrci_env "$copy") $lrci replay --daily-budget 100000000000"
ps_cmd="env -i PATH=$PATH RF_BASE_URL=$sim_url RF_TOKEN=$RF_TOKEN $venv/bin/python $root/contrib/bench/psengine_submit.py $copy"

check_one() { # check_one NAME CMD BACKLOG LEDGER
    sh -c "$(restore "$4")"
    sh -c "exec $2" >"$work/check.out" 2>&1 || { echo "$1 failed:"; tail -5 "$work/check.out"; exit 1; }
    local n; n=$(received)
    echo "check: $1 posted $n items (backlog $3)"
    [[ $n == "$3" ]] || { echo "$1 posted $n items, not $3" >&2; exit 1; }
}

if [[ ${LRCI_ONLY:-0} == 1 ]]; then
    a=${backlogs[0]} b=${backlogs[1]}
    la=$(ledger_of $((a / 8)) 10 --unsent) lb=$(ledger_of $((b / 8)) 10 --unsent)
    copy_b=$work/replay-b.sqlite3
    check_one "lrci $a" "$lrci_cmd" "$a" "$la"
    $pairs --runs "$runs" --warmup 0 \
        --label-a "lrci replay, $a backlog" --prep-a "$(restore "$la")" --a "$lrci_cmd" --per-a "$a" \
        --label-b "lrci replay, $b backlog" --prep-b "$(restore "$lb")" --b "$lrci_cmd" --per-b "$b"
    exit 0
fi

for n in "${backlogs[@]}"; do
    ledger=$(ledger_of $((n / 8)) 10 --unsent)
    echo "== backlog $n: $ledger"
    check_one lrci "$lrci_cmd" "$n" "$ledger"
    check_one psengine "$ps_cmd" "$n" "$ledger"
    $pairs --runs "$runs" --warmup 0 \
        --label-a "lrci replay" --prep-a "$(restore "$ledger")" --a "$lrci_cmd" --per-a "$n" \
        --label-b "psengine" --prep-b "$(restore "$ledger")" --b "$ps_cmd" --per-b "$n" \
        | tee "$work/pairs-$n.txt"
done
if [[ ${#backlogs[@]} -ge 2 ]]; then
    python3 - "$work" "${backlogs[0]}" "${backlogs[-1]}" <<'PY'
import re, sys
work, small, large = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
def cpu(n, label):
    text = open(f'{work}/pairs-{n}.txt').read().split('medians of')[1]
    return float(re.search(rf'{label}\s+wall\s+\S+ s\s+cpu\s+(\S+) s', text).group(1))
l = (cpu(large, 'lrci replay') - cpu(small, 'lrci replay')) / (large - small)
p = (cpu(large, 'psengine') - cpu(small, 'psengine')) / (large - small)
print(f'marginal cpu per detection ({small} -> {large}): lrci {l * 1e6:.2f} µs, psengine {p * 1e6:.2f} µs, ratio {l / p:.4f} (1/{p / l:.1f})')
PY
fi
