#!/usr/bin/env python3
"""Side-by-side timing of two commands, for the contrib/bench/ scripts.

    pairs.py [--runs N] [--warmup N] [--per-a N] [--per-b N]
             --a 'CMD' [--prep-a 'CMD'] [--label-a NAME]
             [--b 'CMD' [--prep-b 'CMD'] [--label-b NAME]]

Runs A and B in turn (A B A B ...), --warmup pairs first (not counted), then
--runs counted pairs. Each command runs as `sh -c 'exec CMD'`, so the figures
are those of the command's own process (its output is discarded) (and any children it waited for), read
with os.wait4: user and system CPU seconds and the peak RSS, plus the wall time
from a monotonic clock around the spawn and the reap. A --prep command runs,
untimed, before each run of its side (e.g. restoring a ledger copy). With
--per-a/--per-b the CPU is also given per item (e.g. per detection, in µs).

Prints one line per run, then the median of each figure and the median of the
pair-by-pair ratios A/B (pairing keeps a ratio meaningful when the machine's
speed drifts), and the load average before and after. A command that exits
non-zero is reported and the script exits 1.
"""

import argparse
import os
import statistics
import subprocess
import sys
import time


def run(cmd):
    """(wall s, user s, sys s, max RSS KiB, exit status) of `sh -c 'exec CMD'`."""
    start = time.monotonic()
    child = subprocess.Popen(['/bin/sh', '-c', 'exec ' + cmd],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.monotonic() - start
    return wall, usage.ru_utime, usage.ru_stime, usage.ru_maxrss, os.waitstatus_to_exitcode(status)


def prep(cmd):
    if cmd:
        subprocess.run(['sh', '-c', cmd], check=True)


def main():
    p = argparse.ArgumentParser()
    p.add_argument('--runs', type=int, default=3)
    p.add_argument('--warmup', type=int, default=1)
    p.add_argument('--a', required=True)
    p.add_argument('--b', help='the second command; without it only A is run')
    p.add_argument('--prep-a')
    p.add_argument('--prep-b')
    p.add_argument('--label-a', default='A')
    p.add_argument('--label-b', default='B')
    p.add_argument('--per-a', type=int)
    p.add_argument('--per-b', type=int)
    args = p.parse_args()

    print(f'load average before: {" ".join(f"{x:.2f}" for x in os.getloadavg())}')
    rows = {'a': [], 'b': []}
    sides = ('a', 'b') if args.b else ('a',)
    failed = False
    for i in range(args.warmup + args.runs):
        counted = i >= args.warmup
        for side in sides:
            prep(getattr(args, 'prep_' + side))
            wall, user, system, rss, code = run(getattr(args, side))
            label = getattr(args, 'label_' + side)
            tag = f'run {i - args.warmup + 1}' if counted else 'warm-up'
            print(f'{tag:8} {label:28} wall {wall:8.3f} s  cpu {user + system:8.3f} s '
                  f'(user {user:.3f} sys {system:.3f})  peak RSS {rss / 1024:7.1f} MiB  exit {code}')
            if code != 0:
                failed = True
            if counted:
                rows[side].append((wall, user + system, rss))

    def med(side, k):
        return statistics.median(r[k] for r in rows[side])

    print(f'load average after: {" ".join(f"{x:.2f}" for x in os.getloadavg())}')
    print(f'medians of {args.runs} runs each:')
    for side in sides:
        label = getattr(args, 'label_' + side)
        per = getattr(args, 'per_' + side)
        extra = ''
        if per:
            extra = f'  cpu per item {med(side, 1) / per * 1e6:8.2f} µs ({per} items)'
        print(f'  {label:28} wall {med(side, 0):8.3f} s  cpu {med(side, 1):8.3f} s  '
              f'peak RSS {med(side, 2) / 1024:7.1f} MiB{extra}')
    if not args.b:
        sys.exit(1 if failed else 0)
    wall_ratio = statistics.median(a[0] / b[0] for a, b in zip(rows['a'], rows['b']))
    cpu_ratio = statistics.median(a[1] / b[1] for a, b in zip(rows['a'], rows['b']))
    print(f'  ratio {args.label_a} / {args.label_b} (median of pairs): wall {wall_ratio:.3f}  cpu {cpu_ratio:.3f}')
    if args.per_a and args.per_b:
        per = statistics.median((a[1] / args.per_a) / (b[1] / args.per_b)
                                for a, b in zip(rows['a'], rows['b']))
        print(f'  ratio of cpu per item (median of pairs): {per:.4f} (1/{1 / per:.1f})')
    sys.exit(1 if failed else 0)


if __name__ == '__main__':
    main()
