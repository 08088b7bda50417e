#!/usr/bin/env python3
"""Builds a large capture of *real* messaging traffic for bench/replay.sh.

    bench/real_mix.py OUT.pcap --size-mb 100 [--src ../shared/captures/real]

The generated benchmark capture (gen_capture.py) has the right protocols but
not the packet mix of a phone: its packets average ~740 bytes, real
messaging traffic ~300 (ACKs, small chat records, keep-alives), which is
what dissectors pay for per byte. This file concatenates the nDPI sample
captures of WhatsApp, WeChat, Signal, Telegram, Threema and an Android
phone (real traffic, read-only in ../shared; the output stays in the bench
directory, it is never shipped) round after round until SIZE_MB, each file
shifted in time to start one second after the previous one ended, so
timestamps never go backwards and every round's flows are new flows after
the previous round's timed out. Standard library only; pcap (little-endian,
microseconds, Ethernet) in and out.
"""

import argparse
import os
import struct
import sys

FILES = [
    "ndpi-wechat.pcap",
    "ndpi-telegram.pcap",
    "ndpi-signal.pcap",
    "ndpi-whatsapp.pcap",
    "ndpi-android.pcap",
    "ndpi-whatsapp_login_chat.pcap",
    "ndpi-threema.pcap",
]


def read_pcap(path):
    """Returns (snaplen, [(secs, usecs, orig_len, data)]) of a LE µs pcap."""
    with open(path, "rb") as f:
        blob = f.read()
    magic, _, _, _, _, snaplen, link = struct.unpack_from("<IHHiIII", blob, 0)
    if magic != 0xA1B2C3D4 or link != 1:
        sys.exit(f"real_mix.py: {path} is not a little-endian µs Ethernet pcap")
    off, out = 24, []
    while off + 16 <= len(blob):
        secs, usecs, incl, orig = struct.unpack_from("<IIII", blob, off)
        off += 16
        out.append((secs, usecs, orig, blob[off:off + incl]))
        off += incl
    return snaplen, out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--size-mb", type=int, default=100)
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--src", default=os.path.join(here, "..", "..", "shared", "captures", "real"))
    a = ap.parse_args()
    caps = [read_pcap(os.path.join(a.src, f)) for f in FILES]
    snaplen = max(s for s, _ in caps)
    limit = a.size_mb * 1_000_000
    t = 1_700_000_000 * 1_000_000  # µs; each file starts 1 s after the last
    written = packets = rounds = 0
    with open(a.out, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, snaplen, 1))
        written = 24
        while written < limit:
            rounds += 1
            for _, frames in caps:
                if not frames:
                    continue
                first = frames[0][0] * 1_000_000 + frames[0][1]
                last = first
                for secs, usecs, orig, data in frames:
                    ts = secs * 1_000_000 + usecs
                    last = max(last, ts)
                    # max(): a file's own timestamps may step back a little
                    shifted = t + max(0, ts - first)
                    f.write(struct.pack("<IIII", shifted // 1_000_000, shifted % 1_000_000, len(data), orig))
                    f.write(data)
                    written += 16 + len(data)
                    packets += 1
                t += (last - first) + 1_000_000
    print(f"{a.out}: {written} bytes, {packets} packets, {rounds} rounds of {len(FILES)} real captures")


if __name__ == "__main__":
    main()
