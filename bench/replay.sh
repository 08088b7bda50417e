#!/usr/bin/env bash
# Throughput and peak memory of `matador replay` against tshark, tcpdump and
# ndpiReader on the same large capture, measured in the same run.
#
#   bench/replay.sh [SIZE_MB]        (default 520; file cached in $BENCH_DIR)
#
# The capture comes from bench/gen_capture.py (TLS with SNI/ALPN, DNS,
# QUIC, ~1500 concurrent flows). Each tool reads it once from the page cache
# (warmed first); times are wall-clock seconds from GNU time, memory is
# peak RSS. tshark is timed twice: extracting the same DNS/SNI fields
# matador extracts, and computing TCP conversations (flows).
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE_MB=${1:-520}
BENCH_DIR=${BENCH_DIR:-/tmp/matador-bench}
CAP="$BENCH_DIR/bench-${SIZE_MB}mb-seed1.pcap"
mkdir -p "$BENCH_DIR"
for tool in tshark tcpdump ndpiReader /usr/bin/time python3; do
  command -v "$tool" >/dev/null || { echo "bench/replay.sh: $tool is missing (bash scripts/install-deps.sh)" >&2; exit 1; }
done
if [ ! -s "$CAP" ]; then
  python3 bench/gen_capture.py "$CAP" --size-mb "$SIZE_MB"
fi
cargo build --release --quiet
MATADOR=./target/release/matador
BYTES=$(stat -c %s "$CAP")
PACKETS=$(capinfos -c -M "$CAP" 2>/dev/null | awk -F: '/Number of packets/ {gsub(/ /, "", $2); print $2}')
cat "$CAP" >/dev/null   # warm the page cache so every tool reads from memory

RESULTS=$(mktemp)
trap 'rm -f "$RESULTS" "$BENCH_DIR"/*.out "$BENCH_DIR"/*.time' EXIT

# run NAME CMD... : times CMD (stdout to a file, so output cost is included
# but no terminal), records "NAME wall_s user_s sys_s peak_kb". The machine
# may be shared: CPU time (user+sys) is the steadier figure, wall time the
# one a user sees.
run() {
  local name=$1; shift
  local t
  /usr/bin/time -o "$BENCH_DIR/$name.time" -f '%e %U %S %M' "$@" >"$BENCH_DIR/$name.out" 2>/dev/null
  t=$(tail -1 "$BENCH_DIR/$name.time")
  echo "$name $t" >>"$RESULTS"
  printf '  %-20s wall %s s, user %s s, sys %s s, peak RSS %s kB\n' "$name" ${t}
}

echo "capture: $CAP ($BYTES bytes, ${PACKETS:-?} packets)"
run matador-json        "$MATADOR" replay --json --jobs 1 "$CAP"
run matador-table       "$MATADOR" replay --summary --jobs 1 "$CAP"
run tshark-fields       tshark -r "$CAP" -n -Y 'dns.flags.response==1 || tls.handshake.type==1' \
                          -T fields -e frame.number -e dns.qry.name -e dns.a -e dns.aaaa \
                          -e tls.handshake.extensions_server_name -e tls.handshake.extensions_alpn_str
run tshark-conv-tcp     tshark -r "$CAP" -n -q -z conv,tcp
run tcpdump             tcpdump -nn -r "$CAP"
run ndpiReader          ndpiReader -q -i "$CAP" -n 1

# Scaling of --jobs over many files: the same capture listed 4 times.
run matador-4files-j1   "$MATADOR" replay --summary --jobs 1 "$CAP" "$CAP" "$CAP" "$CAP"
run matador-4files-j2   "$MATADOR" replay --summary --jobs 2 "$CAP" "$CAP" "$CAP" "$CAP"

# What matador found, to show the work was done.
jq -r '"matador: \(.packets) packets, \(.flows|length) flows, \(.dns|length) DNS records, \(.tls|length) ClientHellos, \(.servers|length) servers"' \
  "$BENCH_DIR/matador-json.out"
grep -c . "$BENCH_DIR/tshark-fields.out" | sed 's/^/tshark-fields: /; s/$/ lines/'

python3 - "$RESULTS" "$BYTES" <<'PY'
import sys
rows = {}
for line in open(sys.argv[1]):
    name, wall, user, sys_, kb = line.split()
    rows[name] = (max(float(wall), 0.001), max(float(user) + float(sys_), 0.001), int(kb))
size = int(sys.argv[2])
mw, mc, _ = rows["matador-json"]
print()
print("matador --json is N times as fast as each tool (wall / CPU time ratios):")
print(f"{'tool':<20} {'wall s':>7} {'CPU s':>7} {'MB/s wall':>10} {'MB/s CPU':>9} {'peak RSS MB':>12} {'ratio wall':>11} {'ratio CPU':>10}")
for name, (wall, cpu, kb) in rows.items():
    files = 4 if "4files" in name else 1
    single = files == 1 and name != "matador-json"
    rw = f"{wall / mw:.1f}x" if single else ""
    rc = f"{cpu / mc:.1f}x" if single else ""
    print(f"{name:<20} {wall:>7.2f} {cpu:>7.2f} {size * files / wall / 1e6:>10.0f} {size * files / cpu / 1e6:>9.0f} {kb / 1024:>12.1f} {rw:>11} {rc:>10}")
j1, j2 = rows["matador-4files-j1"][0], rows["matador-4files-j2"][0]
print(f"\n--jobs 2 vs --jobs 1 on 4 files (wall): {j1 / j2:.2f}x ({__import__('os').cpu_count()} CPUs, shared)")
PY
