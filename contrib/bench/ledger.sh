#!/usr/bin/env bash
# Benchmark of the audit commands on large ledgers built through the real write path
# (examples/build_ledger.rs: Ledger::ingest per slice, mark_sent/failed/rejected).
#
#   contrib/bench/ledger.sh [WORKDIR]
#
# Builds two ledgers: 10 000 alarms (100 000 detections) and 100 000 alarms
# (1 000 000 detections). On the large one, hyperfine times `lrci ledger status`
# (target < 200 ms) and `lrci ledger show ID` (target < 20 ms). On both, GNU time
# reports the maximum RSS of `lrci ledger export --format jsonl > /dev/null`
# (constant memory: the two figures should be about equal).
# Needs: cargo, hyperfine, /usr/bin/time (GNU). Release build.
set -euo pipefail

cd "$(dirname "$0")/../.."
work=${1:-$(mktemp -d)}
mkdir -p "$work"
runs=${RUNS:-30}

cargo build --release --quiet --example build_ledger --bin lrci
lrci=$PWD/target/release/lrci
build=$PWD/target/release/examples/build_ledger

for alarms in 10000 100000; do
    ledger=$work/ledger-$alarms.sqlite3
    [ -e "$ledger" ] || "$build" "$ledger" "$alarms" 10
done

small=$work/ledger-10000.sqlite3
large=$work/ledger-100000.sqlite3
echo "machine: $(nproc) cpu ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), $(free -g | awk '/Mem:/ {print $2}') GiB RAM"
ls -l "$small" "$large"

export LRCI_LEDGER=$large
hyperfine --warmup 3 --runs "$runs" -N \
    --export-json "$work/status.json" \
    "$lrci ledger status" \
    "$lrci ledger status --json" \
    "$lrci ledger show 4711" \
    "$lrci ledger show 4711 --json" \
    "$lrci ledger runs" \
    "$lrci ledger alarms" \
    "$lrci ledger indicators --state failed"

for ledger in "$small" "$large"; do
    echo "export --format jsonl of $ledger:"
    LRCI_LEDGER=$ledger /usr/bin/time -v "$lrci" ledger export --format jsonl 2>"$work/time.txt" >/dev/null
    grep -E "Maximum resident set size|Elapsed \(wall clock\)" "$work/time.txt"
    LRCI_LEDGER=$ledger /usr/bin/time -v "$lrci" ledger export --format csv 2>"$work/time.txt" >/dev/null
    echo "  csv:"; grep -E "Maximum resident set size|Elapsed \(wall clock\)" "$work/time.txt"
done
