#!/usr/bin/env bash
# The main job: install what is missing, build, and run the demo campaign in
# the virtual lab (as root): `matador run scenarios/lab-demo.yaml --lab`
# brings the lab up, drives the two simulated phones over ADB through their
# tunnels, captures on the router and (via the node agent over SSH) on the
# nodes, correlates, traces the paths, writes campaigns/lab-demo-<time>/,
# prints the report (report.html beside it) and tears the lab down.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -ne 0 ]; then
  echo "error: the demo needs root (network namespaces of the virtual lab)" >&2
  exit 1
fi
# Only what the demo needs (the test command installs the rest); the
# geolocation step builds the same release binary, so matador is built once.
bash scripts/install-deps.sh demo
cargo build --release --locked
# The stored sample captures first (a second), then the campaign, whose
# report ends the output.
./target/release/matador replay --summary captures/
./target/release/matador run scenarios/lab-demo.yaml --lab
