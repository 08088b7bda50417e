#!/usr/bin/env bash
# Post-processing time of a campaign of the paper's size: 1,624 message
# measurements x 4 messages = 6,496 messages (MATAdOR, PAM 2016), plus one
# empty baseline run per app and phone pair (14), two router captures each,
# written by the independent generator bench/measgen (noise 30 flows/min,
# receipt lag <= 3 s, clock error <= 0.3 s). Target: < 60 s.
#
#   bench/correlate.sh              (PROFILE=release|debug, default release;
#                                    BENCH_DIR, default /tmp/matador-bench)
#
# Times `matador replay CAMPAIGN` (every capture decoded once, baselines
# once, correlation, pooling, every analysis.json rewritten) and, in the
# same run as a peer, tcpdump reading every capture of the campaign
# (decode + print, no analysis). Each is run REPEAT times (default 2) from
# the page cache; the run with the least CPU time is kept (shared machine).
# Wall and CPU seconds come from bench/timeit.py; the ratio is matador's
# CPU time over tcpdump's.
set -euo pipefail
cd "$(dirname "$0")/.."
PROFILE=${PROFILE:-release}
REPEAT=${REPEAT:-2}
BENCH_DIR=${BENCH_DIR:-/tmp/matador-bench}
CAMPAIGN="$BENCH_DIR/paper-campaign-seed2016"
for tool in tcpdump python3; do
  command -v "$tool" >/dev/null || { echo "bench/correlate.sh: $tool is missing (bash scripts/install-deps.sh)" >&2; exit 1; }
done
if [ "$PROFILE" = release ]; then
  cargo build --release --quiet --bin matador
  MATADOR=./target/release/matador
else
  cargo build --quiet --bin matador
  MATADOR=./target/debug/matador
fi
if [ ! -f "$CAMPAIGN/truth.json" ]; then
  rm -rf "$CAMPAIGN"
  cargo run --quiet --release --manifest-path bench/measgen/Cargo.toml --target-dir target -- \
    "$CAMPAIGN" --measurements 1624 --messages 4-4 --seed 2016
  rm -f bench/measgen/Cargo.lock
fi
CAPS="$BENCH_DIR/paper-captures.txt"
find "$CAMPAIGN/measurements" -name 'capture-*.pcap' | sort > "$CAPS"
NCAPS=$(wc -l < "$CAPS")
MB=$(du -sm "$CAMPAIGN/measurements" | cut -f1)
xargs cat < "$CAPS" >/dev/null   # warm the page cache

best() { # best TAG CMD... : keeps the run with the least CPU time
  local tag=$1; shift
  local keep=""
  for _ in $(seq "$REPEAT"); do
    python3 bench/timeit.py "$BENCH_DIR/$tag.time" "$@" >/dev/null 2>&1 || true
    local line; line=$(cat "$BENCH_DIR/$tag.time")
    if [ -z "$keep" ] || awk -v a="$line" -v b="$keep" 'BEGIN{split(a,x," ");split(b,y," ");exit !((x[2]+x[3])<(y[2]+y[3]))}'; then
      keep=$line
    fi
  done
  echo "$keep"
}
M=$(best matador "$MATADOR" replay "$CAMPAIGN")
T=$(best tcpdump sh -c "xargs -n 64 sh -c 'for f; do tcpdump -nr \"\$f\" 2>/dev/null; done' _ < '$CAPS' >/dev/null")
echo "campaign: $(ls "$CAMPAIGN/measurements" | wc -l) measurements, 6496 messages, $NCAPS captures, $MB MB ($PROFILE build)"
echo "$M" | awk '{printf "matador replay: wall %.1f s, cpu %.1f s (user %.1f + sys %.1f), peak RSS %.0f MB\n", $1, $2+$3, $2, $3, $4/1024}'
echo "$T" | awk '{printf "tcpdump -nr, every capture: wall %.1f s, cpu %.1f s\n", $1, $2+$3}'
awk -v m="$M" -v t="$T" 'BEGIN{split(m,x," ");split(t,y," ");printf "ratio matador/tcpdump (cpu): %.2f\n", (x[2]+x[3])/(y[2]+y[3])}'
echo "$M" | awk '{ if ($1 < 60) print "target < 60 s wall: met"; else print "target < 60 s wall: NOT met (wall " $1 " s; load: '"$(cut -d' ' -f1-3 /proc/loadavg)"')" }'
