#!/usr/bin/env bash
# Two matador binaries (e.g. main and a branch, both release builds) and
# ndpiReader on one capture (bench/real_mix.py), interleaved:
# per round, N runs of each command through bench/timeit.py; best CPU
# (user+sys) and largest peak RSS per command.
#   bench/replay_ab.sh CAPTURE BEFORE_BIN AFTER_BIN [ROUNDS=3] [N=10]
# (ratio/ndpi: CPU time over ndpiReader's in the same round; < 1 = matador faster)
set -euo pipefail
cap=$1 before=$2 after=$3 rounds=${4:-3} n=${5:-10}
T="$(dirname "$0")/timeit.py"
tmp=$(mktemp -d)
cat "$cap" >/dev/null
for ((r = 1; r <= rounds; r++)); do
  : >"$tmp/all"
  for ((i = 0; i < n; i++)); do
    python3 "$T" "$tmp/t" "$before" replay --json --jobs 1 "$cap" >/dev/null 2>&1; echo "before $(cat $tmp/t)" >>"$tmp/all"
    python3 "$T" "$tmp/t" "$after" replay --json --jobs 1 "$cap" >/dev/null 2>&1; echo "after $(cat $tmp/t)" >>"$tmp/all"
    python3 "$T" "$tmp/t" ndpiReader -q -i "$cap" -n 1 >/dev/null 2>&1; echo "ndpiReader $(cat $tmp/t)" >>"$tmp/all"
  done
  python3 - "$tmp/all" "$r" "$(cut -d' ' -f1-3 /proc/loadavg)" <<'PY'
import sys
best = {}
for line in open(sys.argv[1]):
    name, wall, user, sys_, kb, ivcsw, minflt = line.split()
    cpu = float(user) + float(sys_)
    b = best.get(name)
    if b is None or cpu < b[0]:
        best[name] = (cpu, float(user), float(sys_), float(wall), max(int(kb), b[4] if b else 0), int(minflt))
    else:
        best[name] = b[:4] + (max(int(kb), b[4]), b[5])
nd = best["ndpiReader"][0]
for name in ("before", "after", "ndpiReader"):
    cpu, u, s, w, kb, mf = best[name]
    print(f"round {sys.argv[2]} {name:<10} CPU {cpu:.3f} s (user {u:.3f} sys {s:.3f}) wall {w:.3f} peakRSS {kb/1024:.1f} MB minflt {mf} ratio/ndpi {cpu/nd:.2f}  load {sys.argv[3]}")
PY
done
rm -rf "$tmp"
