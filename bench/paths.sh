#!/usr/bin/env bash
# Traceroute benchmark: matador's engine vs scamper on the same namespace
# chain in the same run (src → r1 → r2 → r3 → dst, N target addresses on
# dst), with the same probe settings: protocol, probes per hop (scamper -q N
# -Q), wait, packets per second. Prints time, packets and hops found for
# each, and the ratios matador/scamper.
#
#   bash bench/paths.sh                  # N=20 targets, ICMP Paris, 100 pps
#   N=50 PPS=200 PROTO=udp bash bench/paths.sh
#   RATELIMIT=default bash bench/paths.sh  # keep the kernel's ICMP rate limits
#   SILENT=1 bash bench/paths.sh           # r2 sends no time-exceeded (a "*" hop)
#   AF=6 bash bench/paths.sh               # IPv6 chain and targets (icmp, tcp)
#
# Needs root, iproute2, scamper, jq, bc. Uses target/debug/matador (built if
# needed; the engine is I/O-bound) unless MATADOR=path/to/binary is given.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-20}; PPS=${PPS:-100}; PROBES=${PROBES:-3}; WAIT=${WAIT:-1}; PROTO=${PROTO:-icmp}
RATELIMIT=${RATELIMIT:-off}; SILENT=${SILENT:-0}; AF=${AF:-4}
if [ "$AF" = 6 ] && [ "$PROTO" = udp ]; then
  echo "error: scamper 20211212 records no answers for UDP over IPv6 (see docs/paths.md); use PROTO=icmp or tcp" >&2; exit 2
fi
[ "$(id -u)" -eq 0 ] || { echo "error: needs root (network namespaces, raw sockets)" >&2; exit 1; }
for c in ip scamper jq; do command -v $c >/dev/null || { echo "error: $c missing (scripts/install-deps.sh)" >&2; exit 1; }; done
M=${MATADOR:-}
if [ -z "$M" ]; then cargo build -q; M=target/debug/matador; fi
case $PROTO in icmp) SM="icmp-paris";; udp) SM="udp-paris";; tcp) SM="tcp -d 443";; *) echo "PROTO: icmp|udp|tcp" >&2; exit 2;; esac

P=pb$$x; NS=(s r1 r2 r3 d)
cleanup() { for n in "${NS[@]}"; do ip netns del "$P$n" 2>/dev/null || true; done; rm -rf "$TMP"; }
TMP=$(mktemp -d); trap cleanup EXIT
for n in "${NS[@]}"; do
  ip netns add "$P$n"; ip -n "$P$n" link set lo up
  ip netns exec "$P$n" sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.all.rp_filter=0
  ip netns exec "$P$n" sysctl -qw net.ipv6.conf.all.forwarding=1 net.ipv6.conf.default.accept_dad=0
  if [ "$RATELIMIT" = off ]; then ip netns exec "$P$n" sysctl -qw net.ipv4.icmp_ratelimit=0 net.ipv6.icmp.ratelimit=0; fi
done
i=1; prev=s
for n in r1 r2 r3 d; do
  ip -n "$P$prev" link add l${i}a type veth peer name l${i}b netns "$P$n"
  ip -n "$P$prev" addr add 198.18.$i.1/24 dev l${i}a; ip -n "$P$n" addr add 198.18.$i.2/24 dev l${i}b
  ip -n "$P$prev" addr add fd00:$i::1/64 dev l${i}a nodad; ip -n "$P$n" addr add fd00:$i::2/64 dev l${i}b nodad
  ip -n "$P$prev" link set l${i}a up; ip -n "$P$n" link set l${i}b up
  prev=$n; i=$((i+1))
done
ip -n "${P}s" route add default via 198.18.1.2
ip -n "${P}r1" route add default via 198.18.2.2
ip -n "${P}r2" route add default via 198.18.3.2; ip -n "${P}r2" route add 198.18.1.0/24 via 198.18.2.1
ip -n "${P}r3" route add default via 198.18.4.2; ip -n "${P}r3" route add 198.18.1.0/24 via 198.18.3.1
ip -n "${P}d" route add default via 198.18.4.1
ip -n "${P}s" -6 route add default via fd00:1::2
ip -n "${P}r1" -6 route add default via fd00:2::2
ip -n "${P}r2" -6 route add default via fd00:3::2; ip -n "${P}r2" -6 route add fd00:1::/64 via fd00:2::1
ip -n "${P}r3" -6 route add default via fd00:4::2; ip -n "${P}r3" -6 route add fd00:1::/64 via fd00:3::1
ip -n "${P}d" -6 route add default via fd00:4::1
if [ "$SILENT" = 1 ]; then
  ip netns exec "${P}r2" iptables -A OUTPUT -p icmp --icmp-type time-exceeded -j DROP
  ip netns exec "${P}r2" ip6tables -A OUTPUT -p icmpv6 --icmpv6-type time-exceeded -j DROP
fi
: > "$TMP/targets"
for t in $(seq 1 "$N"); do
  if [ "$AF" = 6 ]; then
    a=fd00:99::$(printf %x "$t"); ip -n "${P}d" addr add $a/128 dev lo nodad
  else
    a=198.19.$((10 + t / 250)).$((t % 250 + 1)); ip -n "${P}d" addr add $a/32 dev lo
  fi
  echo $a >> "$TMP/targets"
done
if [ "$AF" = 6 ]; then ip netns exec "${P}s" ping -6 -c1 -W2 fd00:4::2 >/dev/null
else ip netns exec "${P}s" ping -c1 -W2 198.18.4.2 >/dev/null; fi
now() { date +%s.%N; }
t0=$(now)
ip netns exec "${P}s" scamper -O json -p "$PPS" -c "trace -P $SM -q $PROBES -Q -w $WAIT" -f "$TMP/targets" > "$TMP/scamper.json"
t1=$(now)
# Let the routers' ICMP rate-limit buckets (burst 6, 1/s) refill in between.
if [ "$RATELIMIT" = off ]; then sleep 1; else sleep 8; fi
t2=$(now)
"$M" trace --netns "${P}s" --lab --json ${SPREAD_MS:+--spread-ms $SPREAD_MS} --proto "$PROTO" --probes "$PROBES" --wait "$WAIT" --pps "$PPS" $(cat "$TMP/targets") > "$TMP/matador.json"
t3=$(now)
"$M" trace --import-scamper "$TMP/scamper.json" --json > "$TMP/scamper-imported.json"
stats() { jq -s '[length, (map(.packets) | add), (map([.result[] | select([.result[] | has("from")] | any)] | length) | add), (map(select(.stop_reason=="reached")) | length)] | @tsv' -r "$1"; }
read -r sn sp sh sr < <(stats "$TMP/scamper-imported.json")
read -r mn mp mh mr < <(stats "$TMP/matador.json")
st=$(echo "$t1 - $t0" | bc -l); mt=$(echo "$t3 - $t2" | bc -l)
printf 'af=%s targets=%s proto=%s probes/hop=%s pps=%s wait=%ss icmp-ratelimit=%s silent-hop=%s binary=%s\n' "$AF" "$N" "$PROTO" "$PROBES" "$PPS" "$WAIT" "$RATELIMIT" "$SILENT" "$M"
printf '%-8s %8s %8s %10s %8s\n' engine time_s packets hops_found reached
printf '%-8s %8.2f %8s %10s %8s\n' scamper "$st" "$sp" "$sh" "$sr/$sn"
printf '%-8s %8.2f %8s %10s %8s\n' matador "$mt" "$mp" "$mh" "$mr/$mn"
printf 'ratio matador/scamper: time %.2f  packets %.2f  hops found %.2f\n' \
  "$(echo "$mt / $st" | bc -l)" "$(echo "$mp / $sp" | bc -l)" "$(echo "$mh / $sh" | bc -l)"
