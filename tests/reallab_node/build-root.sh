#!/bin/sh
# Builds the cached Debian root used by tests/reallab_node.rs as a "clean
# remote node": debootstrap minbase + openssh-server (the node's own sshd),
# with the packages `matador node install` will install downloaded into
# apt's cache but NOT installed (the test node has no route to the
# internet; apt installs from the cache like from a mirror).
# Usage: build-root.sh CACHE_DIR SUITE   (idempotent; atomic rename at the end)
set -eu
cache=$1
suite=$2
final="$cache/root-$suite"
[ -d "$final" ] && exit 0
mkdir -p "$cache"
tmp="$cache/root-$suite.tmp.$$"
trap 'rm -rf "$tmp"' EXIT
debootstrap --variant=minbase --include=openssh-server,iproute2 "$suite" "$tmp" http://deb.debian.org/debian
cp /etc/resolv.conf "$tmp/etc/resolv.conf"
chroot "$tmp" apt-get update -q
# libpcap0.8t64 from Debian 13 on (the name `matador node install` picks too)
pcap=libpcap0.8
chroot "$tmp" apt-cache show libpcap0.8t64 >/dev/null 2>&1 && pcap=libpcap0.8t64
chroot "$tmp" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --download-only --no-install-recommends \
    wireguard-tools wireguard-go "$pcap" iptables libcap2-bin
rm -f "$tmp/etc/ssh/ssh_host_"*
mv "$tmp" "$final"
trap - EXIT
