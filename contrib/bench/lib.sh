# Shared by the issue-13 benchmarks in contrib/bench/ (sourced, not run).
# Release build, loopback only. Sets: root, lrci, build (the build_ledger example),
# work (a scratch directory removed at exit unless KEEP=1), pairs (pairs.py).

set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
export NO_PROXY=127.0.0.1,localhost no_proxy=127.0.0.1,localhost
unset HTTP_PROXY HTTPS_PROXY ALL_PROXY http_proxy https_proxy all_proxy

# 32 lower-case characters: the simulator's default CI key, a token shape psengine accepts.
RF_TOKEN=0123456789abcdef0123456789abcdef
LR_KEY=sim-lr-key

if [[ -z ${LRCI_BIN:-} ]]; then
    cargo build --release --quiet --bin lrci --example build_ledger
    LRCI_BIN=$root/target/release/lrci
fi
lrci=$LRCI_BIN
build=${BUILD_LEDGER:-$root/target/release/examples/build_ledger}
pairs="python3 $root/contrib/bench/pairs.py"
work=${WORK:-$(mktemp -d)}
mkdir -p "$work"
sim_pid=
sim_url=

bench_cleanup() {
    [[ -n $sim_pid ]] && kill "$sim_pid" 2>/dev/null && wait "$sim_pid" 2>/dev/null
    [[ ${KEEP:-0} == 1 ]] || rm -rf "$work"
}
trap bench_cleanup EXIT

machine() {
    echo "machine: $(nproc) cpu ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), $(free -g | awk '/Mem:/ {print $2}') GiB RAM; load average $(cut -d' ' -f1-3 /proc/loadavg); $(date -u +%FT%TZ); $(git -C "$root" rev-parse --short HEAD)"
}

# sim_start ARGS...: starts `lrci sim` on a random loopback port; sets sim_url.
sim_start() {
    "$lrci" sim --listen 127.0.0.1:0 "$@" >"$work/sim.out" 2>"$work/sim.err" &
    sim_pid=$!
    sim_url=
    for _ in $(seq 1 200); do
        sim_url=$(grep -o 'http://127\.0\.0\.1:[0-9]*' "$work/sim.out" 2>/dev/null | head -1 || true)
        [[ -n $sim_url ]] && return 0
        kill -0 "$sim_pid" 2>/dev/null || break
        sleep 0.1
    done
    echo "the simulator did not start: $(tail -3 "$work/sim.err")" >&2
    exit 1
}

sim_stop() {
    [[ -n $sim_pid ]] && kill "$sim_pid" 2>/dev/null && wait "$sim_pid" 2>/dev/null || true
    sim_pid=
}

# The environment of an lrci run against the simulator, as `env` arguments.
lrci_env() { # lrci_env LEDGER
    echo "env -i PATH=$PATH HOME=$work LOGRHYTHM_API_URL=$sim_url RF_API_URL=$sim_url LOGRHYTHM_API_KEY=$LR_KEY RF_API_KEY=$RF_TOKEN LRCI_LEDGER=$1 LRCI_LOG_DIR=$work/logs"
}

# ledger_of ALARMS PER_ALARM [--unsent]: a ledger built once through the real write
# path (examples/build_ledger.rs), kept in $LEDGERS (default $work) between calls.
ledger_of() {
    local dir=${LEDGERS:-$work} name
    name=$dir/ledger-$1x$2${3:-}.sqlite3
    mkdir -p "$dir"
    [[ -e $name ]] || "$build" "$name" "$@" >&2
    echo "$name"
}
