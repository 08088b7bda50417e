#!/usr/bin/env bash
# Installs what matador needs on a Debian machine (run as root), only what is
# missing, so it is cheap to call before every demo or test run.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages: build (libpcap-dev), reference peers for tests and
# benchmarks (tshark, tcpdump, scamper, ndpiReader), lab components (adb,
# wireguard-go, dnsmasq, sshd, mksh, iproute2, iptables, nft) and mmdblookup.
pkgs=(libpcap-dev pkg-config adb tshark tcpdump scamper libndpi-bin mmdb-bin
      wireguard-tools wireguard-go dnsmasq openssh-server openssh-client mksh iputils-ping
      iproute2 iptables nftables procps psmisc jq python3 bc chromium debootstrap util-linux hostapd)
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
# Further steps (geolocation databases, …) are added by scripts/install-*.sh.
for extra in scripts/install-*.sh; do
  [ "$extra" = scripts/install-deps.sh ] && continue
  [ -f "$extra" ] && bash "$extra"
done
exit 0
