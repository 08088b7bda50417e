#!/usr/bin/env bash
# Lookup rate of the installed geolocation databases on one core.
# Needs the databases: bash scripts/install-geo.sh. Usage: bench/geo.sh [N]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-geo.sh
cargo build --release --quiet --example geo_bench
taskset -c 0 ./target/release/examples/geo_bench "${1:-5000000}" 2>/dev/null \
  || ./target/release/examples/geo_bench "${1:-5000000}"
