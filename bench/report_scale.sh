#!/usr/bin/env bash
# Report time on the 10,000-measurement synthetic campaign of
# tests/report_scale.rs (load + build + md/csv/json/html, debug build as the
# test runs it). Fails when it exceeds the budget: 60 s by default, the
# bound the test itself used to assert. Usage: bench/report_scale.sh [BUDGET_S]
set -euo pipefail
cd "$(dirname "$0")/.."
budget="${1:-60}"
out="$(cargo nextest run --test report_scale --no-capture 2>&1)" || { echo "$out"; exit 1; }
echo "$out" | grep -E "^10,000 measurements|^drop"
total="$(echo "$out" | awk '/^report_total_s /{print $2}')"
[ -n "$total" ] || { echo "no report_total_s line"; exit 1; }
echo "report total: ${total} s (budget ${budget} s)"
awk -v t="$total" -v b="$budget" 'BEGIN{exit !(t < b)}' \
  || { echo "over budget"; exit 1; }
