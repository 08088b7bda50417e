#!/usr/bin/env bash
# Short cargo-fuzz run of every target (reader + decoder + extractors).
#
#   fuzz/run.sh [SECONDS_PER_TARGET]     (default 120)
#
# Needs the nightly toolchain (rustup toolchain install nightly) and
# cargo-fuzz (installed here from crates.io if missing). Seeds each corpus
# with the sample captures; crashes land in fuzz/artifacts/<target>/ and
# make this script fail.
set -euo pipefail
cd "$(dirname "$0")"
SECS=${1:-120}
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
mkdir -p corpus/capture corpus/frames
cp -n ../captures/*.pcap ../captures/*.pcapng corpus/capture/ 2>/dev/null || true
# frames: link-type byte 0 (Ethernet), then length-prefixed frames of a sample.
python3 - <<'PY'
import struct, glob, os
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
    name = "corpus/frames/" + os.path.basename(path)
    if not os.path.exists(name):
        open(name, "wb").write(out)
PY
for t in capture frames; do
  echo "== fuzzing $t for ${SECS}s"
  cargo +nightly fuzz run "$t" -- -max_total_time="$SECS" -max_len=262144 -rss_limit_mb=1024
done
