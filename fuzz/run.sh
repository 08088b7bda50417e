#!/usr/bin/env bash
# Bounded cargo-fuzz run of every target (docs/reliability.md lists them).
#
#   fuzz/run.sh [SECONDS_PER_TARGET] [TARGET...]     (default 60 s, all)
#   MATADOR_FUZZ_STABLE=1 fuzz/run.sh 20              (no nightly: see below)
#
# Needs the nightly toolchain (rustup toolchain install nightly) and
# cargo-fuzz (installed here from crates.io if missing). Each corpus is
# seeded with real inputs (sample captures, scenarios, ADB/agent/DNS/TLS
# messages); crashes, leaks, timeouts and allocations over 256 MB
# (-malloc_limit_mb: a length field claiming 4 GB must not be believed)
# land in fuzz/artifacts/<target>/ and make this script fail. The last
# line per target is libFuzzer's "Done N runs in S second(s)".
set -euo pipefail
cd "$(dirname "$0")"
SECS=${1:-60}
shift || true
ALL=(capture frames dns tls wechat adb_sim adb_device agent scenario)
TARGETS=("${@:-${ALL[@]}}")
[ ${#TARGETS[@]} -eq 0 ] && TARGETS=("${ALL[@]}")
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
for t in "${ALL[@]}"; do mkdir -p "corpus/$t"; done
cp -n ../captures/*.pcap ../captures/*.pcapng corpus/capture/ 2>/dev/null || true
cp -n ../scenarios/*.yaml corpus/scenario/ 2>/dev/null || true
python3 - <<'PY'
import struct, glob, os, zlib

def put(target, name, data):
    p = os.path.join("corpus", target, name)
    if not os.path.exists(p):
        open(p, "wb").write(data)

# frames: link-type byte 0 (Ethernet), then length-prefixed frames of a sample.
for path in glob.glob("../captures/*.pcap"):
    b = open(path, "rb").read()
    if b[:4] != b"\xd4\xc3\xb2\xa1":
        continue
    link = struct.unpack("<I", b[20:24])[0]
    sel = {1: 0, 101: 1, 113: 2, 276: 3, 0: 4, 228: 5, 229: 6, 108: 7}.get(link)
    if sel is None:
        continue
    out, o = bytearray([sel]), 24
    while o + 16 <= len(b) and len(out) < 60000:
        n = struct.unpack("<I", b[o + 8:o + 12])[0]
        frame = b[o + 16:o + 16 + n][:65535]
        out += struct.pack(">H", len(frame)) + frame
        o += 16 + n
    put("frames", os.path.basename(path), bytes(out))

def name(n):
    return b"".join(bytes([len(l)]) + l for l in n.split(b".")) + b"\0"

# dns: a query and an answer with a compression pointer.
q = struct.pack(">HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0) + name(b"g.whatsapp.net") + struct.pack(">HH", 1, 1)
a = struct.pack(">HHHHHH", 0x1234, 0x8180, 1, 1, 0, 0) + name(b"g.whatsapp.net") + struct.pack(">HH", 1, 1)
a += b"\xc0\x0c" + struct.pack(">HHIH", 1, 1, 60, 4) + bytes([198, 18, 0, 10])
put("dns", "query", q)
put("dns", "answer", a)

# tls: a ClientHello with SNI and ALPN in one record.
sni = b"web.whatsapp.com"
ext_sni = struct.pack(">HHHBH", 0, len(sni) + 5, len(sni) + 3, 0, len(sni)) + sni
alpn = b"\x02h2"
ext_alpn = struct.pack(">HHH", 16, len(alpn) + 2, len(alpn)) + alpn
exts = ext_sni + ext_alpn
body = b"\x03\x03" + bytes(32) + b"\x00" + b"\x00\x02\x13\x01" + b"\x01\x00" + struct.pack(">H", len(exts)) + exts
hs = b"\x01" + struct.pack(">I", len(body))[1:] + body
put("tls", "client_hello", b"\x16\x03\x01" + struct.pack(">H", len(hs)) + hs)
put("tls", "handshake", hs)

# wechat: a newgetdns domain list, plain and zlib-compressed.
xml = (b'<dns><domainlist><domain name="short.weixin.qq.com" timeout="1800">'
       b'<ip>198.19.5.10</ip><ip>198.19.5.11</ip></domain></domainlist></dns>')
put("wechat", "list.xml", xml)
put("wechat", "list.z", zlib.compress(xml))

def adb(cmd, a0, a1, data):
    c = struct.unpack("<I", cmd)[0]
    return struct.pack("<IIIIII", c, a0, a1, len(data), sum(data) & 0xffffffff, c ^ 0xffffffff) + data

# adb_sim: what a host sends to the simulated adbd.
s = adb(b"CNXN", 0x01000000, 1 << 20, b"host::matador\0")
s += adb(b"OPEN", 1, 0, b"shell:input text 'hello world'; echo $?\0")
s += adb(b"WRTE", 1, 1, b"ls -l /sdcard")
s += adb(b"CLSE", 1, 1, b"")
put("adb_sim", "session", s)
put("adb_sim", "sync", adb(b"OPEN", 2, 0, b"sync:\0") + adb(b"WRTE", 2, 1, b"STAT\x08\0\0\0/sdcard/"))
# adb_device: what a phone sends back (byte 0: chunk size).
d = adb(b"CNXN", 0x01000000, 1 << 20, b"device::ro.product.model=Pixel 6;\0")
d += adb(b"OKAY", 1, 1, b"") + adb(b"WRTE", 1, 1, b"hello\n__MATADOR_RC=0\n")
put("adb_device", "session", b"\x07" + d)
put("adb_device", "huge_len", b"\x18" + struct.pack("<IIIIII", 0x45545257, 1, 1, 0xffffffff, 0, 0))

# agent: a session of requests.
put("agent", "session", b"\n".join([
    b'{"id":1,"op":"hello","protocol":1}',
    b'{"id":2,"op":"health"}',
    b'{"id":3,"op":"clock"}',
    b'{"id":4,"op":"capture_list"}',
    b'{"id":5,"op":"file_info","capture":"c","file":"../../etc/passwd"}',
    b'{"id":6,"op":"fetch","capture":"c","file":"x.pcap","offset":0,"len":4294967295}',
    b'{"id":7,"op":"capture_stop","capture":"nope"}',
    b'{"id":8,"op":"bogus"}',
    b'not json',
    b'{"id":9,"op":"shutdown"}',
]) + b"\n")
put("agent", "response", b'{"id":1,"ok":true,"result":{"protocol":1}}\n')
PY
status=0
# MATADOR_FUZZ_STABLE=1: no nightly build (the instrumented release build of
# matador takes long on a small machine): the same targets built with the
# stable toolchain in the main target dir (debug: overflow checks on) and
# run by libFuzzer without coverage feedback (mutations of the seeds only).
LIBFUZZER_ARGS=(-max_total_time="$SECS" -max_len=262144 -rss_limit_mb=1024
  -malloc_limit_mb=256 -timeout=10 -print_final_stats=1)
if [ "${MATADOR_FUZZ_STABLE:-}" = 1 ]; then
  cargo build --manifest-path Cargo.toml --target-dir ../target --bins
fi
for t in "${TARGETS[@]}"; do
  echo "== fuzzing $t for ${SECS}s"
  mkdir -p "artifacts/$t"
  set +e
  if [ "${MATADOR_FUZZ_STABLE:-}" = 1 ]; then
    "../target/debug/$t" "corpus/$t" -artifact_prefix="artifacts/$t/" "${LIBFUZZER_ARGS[@]}" \
        >"/tmp/matador-fuzz-$t.log" 2>&1
  else
    cargo +nightly fuzz run "$t" -- "${LIBFUZZER_ARGS[@]}" >"/tmp/matador-fuzz-$t.log" 2>&1
  fi
  rc=$?
  set -e
  grep -E "^Done|stat::number_of_executed_units|SUMMARY|panicked" "/tmp/matador-fuzz-$t.log" || true
  if [ "$rc" != 0 ]; then
    echo "!! $t failed (exit $rc): see /tmp/matador-fuzz-$t.log and fuzz/artifacts/$t/"
    status=1
  fi
done
exit $status
