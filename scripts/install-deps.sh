#!/usr/bin/env bash
# Installs what matador needs on a Debian machine (run as root), only what is
# missing, so it is cheap to call before every demo or test run.
#
#   bash scripts/install-deps.sh [demo|test] [--no-geo]
#
# demo: what building matador and `matador run --lab` need (the demo);
# test (default): that plus the reference peers and tools of the test suite.
# Then the geolocation databases (scripts/install-geo.sh, which needs a
# matador binary: $MATADOR_BIN, else it builds the release one the demo
# uses); --no-geo leaves them to the caller (scripts/test.sh installs them
# with its own debug build, so each script builds matador once).
set -euo pipefail
cd "$(dirname "$0")/.."

what=test
geo=1
for a in "$@"; do
  case "$a" in
    demo|test) what="$a" ;;
    --no-geo) geo=0 ;;
    *) echo "usage: $0 [demo|test] [--no-geo]" >&2; exit 2 ;;
  esac
done

# The demo: build (libpcap-dev, pkg-config) and the virtual lab's components
# (ip/tc, iptables, nft, sysctl, ping, WireGuard, dnsmasq, the nodes' sshd
# and ssh-keygen, the lab's adb server), curl for the geolocation databases.
demo_pkgs=(libpcap-dev pkg-config curl ca-certificates adb wireguard-tools wireguard-go dnsmasq
           openssh-server openssh-client iputils-ping iproute2 iptables nftables procps)
# The tests and benchmarks add: reference peers (tshark, tcpdump, scamper,
# ndpiReader, mmdblookup, mksh), the clean-node root (debootstrap), router
# config checks (hostapd), report rendering (chromium), script tools
# (python3-venv for the DuckDB venv below), and a real batch scheduler for
# the shard recipe (tests/slurm_shards.rs starts its own slurmctld, slurmd
# and munged; the packages' own services are not used).
test_pkgs=(tshark tcpdump scamper libndpi-bin mmdb-bin mksh psmisc jq python3 python3-venv bc
           chromium debootstrap util-linux hostapd slurmctld slurmd slurm-client munge)
pkgs=("${demo_pkgs[@]}")
[ "$what" = test ] && pkgs+=("${test_pkgs[@]}")

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}" >&2
  if [ "$(id -u)" -ne 0 ]; then
    echo "error: missing Debian packages (${missing[*]}); run as root or install them" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if ! command -v cargo >/dev/null 2>&1; then
  echo "error: cargo not found; install the Rust toolchain (rustup) first" >&2
  exit 1
fi
# The test runner (scripts/test.sh, .config/nextest.toml): on this kind of
# machine from the start; elsewhere built once from crates.io.
if [ "$what" = test ] && ! cargo nextest --version >/dev/null 2>&1; then
  echo "installing: cargo-nextest (crates.io)" >&2
  cargo install --locked cargo-nextest
fi
# DuckDB (PyPI), the independent reader of the Parquet dataset in
# tests/report_dataset.rs: a venv under target/ (Debian's Python refuses
# system-wide pip installs, PEP 668), version pinned.
duckdb_version=2.0.1
if [ "$what" = test ]; then
  root="$(cd "$(dirname "$0")/.." && pwd)"
  py="$root/target/pyenv/bin/python3"
  if ! "$py" -c "import duckdb, sys; sys.exit(duckdb.__version__ != '$duckdb_version')" 2>/dev/null; then
    echo "installing: duckdb $duckdb_version (PyPI) into target/pyenv" >&2
    python3 -m venv "$root/target/pyenv"
    "$root/target/pyenv/bin/pip" install -q "duckdb==$duckdb_version"
  fi
fi
if [ "$geo" = 1 ]; then
  bash scripts/install-geo.sh
fi
exit 0
