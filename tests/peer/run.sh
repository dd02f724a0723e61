#!/usr/bin/env bash
# Peer check: Recorded Future's own Python SDK (psengine 2.14.0) against `lrci sim`.
#
#   LRCI_BIN=target/debug/lrci tests/peer/run.sh
#
# LRCI_BIN   the lrci binary (required)
# PEER_VENV  virtualenv directory (default target/peer-venv); psengine is installed
#            there unless that exact version already is
# PYTHON     interpreter used to create the venv (default python3)
#
# Starts the simulator on 127.0.0.1 (random port), runs tests/peer/psengine_check.py
# twice (base URL without and with a trailing slash, the second making psengine
# request `//collective-insights/...`), then checks GET /_sim/received: exactly the
# live items psengine sent, in order, and none of the debug ones. Then two profiles
# sync against it with --metrics-file (one succeeds, one has a refused key) and
# tests/peer/metrics_check.py reads the file with prometheus_client's own
# text-format parser (installed into the venv) and checks every series. Last, one
# sync with every item option on, and tests/peer/items_check.py validates each item
# it sent with psengine's own models (extra fields forbidden). The last line is
# `peer: N passed, M failed`; the exit status is non-zero on any failure.
set -euo pipefail

PSENGINE_VERSION=2.14.0
# 32 lower-case characters: the only token shape psengine accepts (RF_TOKEN_VALIDATION_REGEX).
TOKEN=0123456789abcdef0123456789abcdef

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
venv=${PEER_VENV:-target/peer-venv}
passed=0
failed=0
sim_pid=
tmp=$(mktemp -d)

finish() {
    local status=$?
    if [[ -n $sim_pid ]] && kill -0 "$sim_pid" 2>/dev/null; then
        kill "$sim_pid" 2>/dev/null || true
        wait "$sim_pid" 2>/dev/null || true
    fi
    rm -rf "$tmp"
    exit "$status"
}
trap finish EXIT
trap 'exit 130' INT TERM

die() {
    echo "peer: error: $*" >&2
    echo "peer: $passed passed, $((failed + 1)) failed"
    exit 1
}

# Tally the `ok - ` / `not ok - ` lines a step printed.
tally() {
    local log=$1 ok bad
    ok=$(grep -c '^ok - ' "$log" || true)
    bad=$(grep -c '^not ok - ' "$log" || true)
    passed=$((passed + ok))
    failed=$((failed + bad))
}

[[ -n ${LRCI_BIN:-} ]] || die "set LRCI_BIN to the lrci binary"
[[ -x $LRCI_BIN ]] || die "LRCI_BIN=$LRCI_BIN is not an executable file"

# --- virtualenv with psengine ------------------------------------------------------
if [[ ! -x $venv/bin/python ]]; then
    echo "peer: creating virtualenv $venv" >&2
    "${PYTHON:-python3}" -m venv "$venv" || die "could not create virtualenv $venv"
fi
py=$venv/bin/python
installed=$("$py" -c 'import importlib.metadata as m; print(m.version("psengine"))' 2>/dev/null || true)
if [[ $installed != "$PSENGINE_VERSION" ]]; then
    echo "peer: installing psengine==$PSENGINE_VERSION into $venv" >&2
    "$py" -m pip install --quiet --disable-pip-version-check "psengine==$PSENGINE_VERSION" >&2 \
        || die "pip install psengine==$PSENGINE_VERSION failed"
fi

# --- simulator ---------------------------------------------------------------------
"$LRCI_BIN" sim --listen 127.0.0.1:0 --rf-key "$TOKEN" >"$tmp/sim.out" 2>"$tmp/sim.err" &
sim_pid=$!
url=
for _ in $(seq 1 200); do
    if IFS= read -r first <"$tmp/sim.out" 2>/dev/null && [[ -n $first ]]; then
        break
    fi
    kill -0 "$sim_pid" 2>/dev/null || die "simulator exited early: $(tail -n 5 "$tmp/sim.err")"
    sleep 0.1
done
first=${first:-}
if [[ $first =~ ^lrci-sim\ listening\ on\ (http://127\.0\.0\.1:[0-9]+)$ ]]; then
    url=${BASH_REMATCH[1]}
else
    die "unexpected first line from the simulator: '${first}' (stderr: $(tail -n 5 "$tmp/sim.err"))"
fi
echo "peer: simulator at $url" >&2

# Loopback only: never let a proxy setting send this traffic elsewhere.
export NO_PROXY=127.0.0.1,localhost no_proxy=127.0.0.1,localhost
unset HTTP_PROXY HTTPS_PROXY ALL_PROXY http_proxy https_proxy all_proxy

# --- psengine passes -----------------------------------------------------------------
for pass in plain slash; do
    base=$url
    [[ $pass == slash ]] && base=$url/
    set +e
    RF_BASE_URL=$base RF_TOKEN=$TOKEN "$py" "$here/psengine_check.py" "$tmp/$pass.json" "$pass" \
        >"$tmp/$pass.log" 2>"$tmp/$pass.err"
    status=$?
    set -e
    cat "$tmp/$pass.log"
    tally "$tmp/$pass.log"
    if [[ $status -ne 0 ]] && ! grep -q '^not ok - ' "$tmp/$pass.log"; then
        sed -n '1,40p' "$tmp/$pass.err" >&2
        die "psengine check ($pass) crashed with status $status"
    fi
done

# --- what the simulator stored -------------------------------------------------------
set +e
"$py" - "$url/_sim/received" "$tmp/plain.json" "$tmp/slash.json" >"$tmp/received.log" 2>&1 <<'EOF'
import json, sys, urllib.request

url, *expectation_files = sys.argv[1:]
expectations = [json.load(open(p, encoding='utf-8')) for p in expectation_files]
with urllib.request.urlopen(url, timeout=10) as response:
    received = json.load(response)
live = [item for e in expectations for item in e['live']]
debug_values = {v for e in expectations for v in e['debug_values']}
failed = False

def check(name, ok, detail=''):
    global failed
    print(f'ok - {name}' if ok else f'not ok - {name}: {detail}')
    failed = failed or not ok

check('received: a JSON list', isinstance(received, list), type(received).__name__)
check('received: exactly the live items, in order, as psengine sent them',
      received == live, f'{len(received)} received vs {len(live)} sent live')
check('received: no debug item stored',
      not any(item.get('ioc', {}).get('value') in debug_values for item in received))
sys.exit(1 if failed else 0)
EOF
status=$?
set -e
cat "$tmp/received.log"
tally "$tmp/received.log"
if [[ $status -ne 0 ]] && ! grep -q '^not ok - ' "$tmp/received.log"; then
    die "could not verify GET /_sim/received"
fi

# --- the metrics file, read by prometheus_client's own parser ------------------------
# Two profiles of one config file: one succeeds, one has a refused LogRhythm key.
if ! "$py" -c 'import prometheus_client' 2>/dev/null; then
    echo "peer: installing prometheus_client into $venv" >&2
    "$py" -m pip install --quiet --disable-pip-version-check prometheus_client >&2 \
        || die "pip install prometheus_client failed"
fi
m=$tmp/metrics
mkdir -p "$m"
cat >"$m/config.toml" <<EOF
[profile.good]
ledger = "$m/good.sqlite3"
[profile.bad]
ledger = "$m/bad.sqlite3"
EOF
for profile in good bad; do
    key=sim-lr-key
    [[ $profile == bad ]] && key=not-the-key
    set +e
    env -i PATH="$PATH" LOGRHYTHM_API_URL="$url" RF_API_URL="$url" LOGRHYTHM_API_KEY="$key" \
        RF_API_KEY="$TOKEN" LRCI_LOG_DIR="$m/logs" \
        "$LRCI_BIN" --config "$m/config.toml" --profile "$profile" sync --lookback-days 1 \
        --metrics-file "$m/lrci.prom" >"$m/$profile.out" 2>"$m/$profile.err"
    echo "peer: sync --profile $profile exited $?" >&2
    set -e
done
set +e
"$py" "$here/metrics_check.py" "$m/lrci.prom" >"$tmp/metrics.log" 2>&1
status=$?
set -e
cat "$tmp/metrics.log"
tally "$tmp/metrics.log"
if [[ $status -ne 0 ]] && ! grep -q '^not ok - ' "$tmp/metrics.log"; then
    sed -n '1,40p' "$m/good.err" "$m/bad.err" >&2
    die "the metrics check crashed"
fi

# --- every item shape lrci sends, through psengine's own models -----------------------
# The simulator is reset so /_sim/received holds only this sync's items. Every
# option that shapes an item is on: a detection type per pattern (each of the four,
# detection_rule with sub_type and id), mitre_codes and malwares.
d=$tmp/items
mkdir -p "$d"
cat >"$d/types.txt" <<'EOF'
# PATTERN = TYPE[:SUB_TYPE][,ID]
*Risk List Match - IP = detection_rule:sigma,rf-risk-list-ip
*Exploit* = detection_rule:yara,lr-exploit-yara
*Phishing* = sandbox
*Brute Force* = playbook
EOF
"$py" -c 'import sys, urllib.request; urllib.request.urlopen(urllib.request.Request(sys.argv[1], method="POST"), timeout=10)' "$url/_sim/reset" \
    || die "could not reset the simulator"
set +e
env -i PATH="$PATH" LOGRHYTHM_API_URL="$url" RF_API_URL="$url" LOGRHYTHM_API_KEY=sim-lr-key \
    RF_API_KEY="$TOKEN" LRCI_LEDGER="$d/ledger.sqlite3" LRCI_LOG_DIR="$d/logs" \
    "$LRCI_BIN" sync --lookback-days 1 --detection-types "$d/types.txt" --mitre-codes --malwares \
    >"$d/sync.out" 2>"$d/sync.err"
status=$?
set -e
echo "peer: sync with every item option exited $status" >&2
[[ $status -eq 0 ]] || die "sync with every item option exited $status: $(tail -n 3 "$d/sync.err")"
set +e
"$py" "$here/items_check.py" "$url/_sim/received" >"$tmp/items.log" 2>&1
status=$?
set -e
cat "$tmp/items.log"
tally "$tmp/items.log"
if [[ $status -ne 0 ]] && ! grep -q '^not ok - ' "$tmp/items.log"; then
    die "the item check crashed: $(tail -n 5 "$tmp/items.log")"
fi

echo "peer: $passed passed, $failed failed"
[[ $failed -eq 0 && $passed -gt 0 ]]
