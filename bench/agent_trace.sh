#!/usr/bin/env bash
# Overhead of tracing through the node agent: the same 12 Paris traces
# (TCP/UDP/ICMP × IPv4/IPv6, straight chain and ECMP split, 1 probe per hop,
# 400 pps, 700 ms wait) from the source namespace of tests/paths_common's
# router chain, once by the engine run locally in that namespace and once by
# `matador agent` running inside it (request/response over its stdin/stdout,
# as over SSH), in the same run. Prints each run's figures and the median
# agent/local ratio.
#
#   bash bench/agent_trace.sh          # 5 runs
#   RUNS=10 bash bench/agent_trace.sh
#
# Needs root (namespaces, raw sockets). Builds the test in debug mode.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-5}
[ "$(id -u)" -eq 0 ] || { echo "error: needs root (network namespaces, raw sockets)" >&2; exit 1; }
cargo test -q --test paths_agent --no-run 2>/dev/null
ratios=()
for i in $(seq 1 "$RUNS"); do
  line=$(cargo test -q --test paths_agent agent_trace_finds_the_hops_of_a_local_trace -- --nocapture 2>&1 \
    | grep 'agent trace overhead' || true)
  [ -n "$line" ] || { echo "error: run $i printed no figure (test failed?)" >&2; exit 1; }
  echo "run $i: ${line#*overhead: }"
  ratios+=("$(sed -E 's/.*ratio ([0-9.]+).*/\1/' <<<"$line")")
done
printf '%s\n' "${ratios[@]}" | sort -n | awk '{a[NR]=$1} END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "median agent/local time ratio over %d runs: %.2f\n", NR, m}'
