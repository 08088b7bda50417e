#!/usr/bin/env python3
"""Generate a large, realistic-looking Ethernet pcap for benchmarking replay.

Standard library only. The mix imitates a phone's traffic: many concurrent
TLS connections (real ClientHello structure with SNI and ALPN, bulk server
data in MSS-sized segments, ACKs, FINs), DNS lookups over UDP with answers
for those names, and QUIC (long-header Initials of 1200 bytes, then
short-header packets). Payload bytes are pseudo-random; TCP/IP checksums
are left zero (neither tshark nor tcpdump verify them by default).

    bench/gen_capture.py OUT.pcap --size-mb 520 [--seed 1] [--concurrent 1500] [--gap-us 20]

Deterministic for a given seed. --gap-us is the mean time between packets:
the default packs 520 MB into ~14 s (every flow is still inside the idle
timeouts at the end); a few milliseconds spread the same traffic over
hours, so flows end and time out as in a long real capture.
"""

import argparse
import random
import struct
import sys

SNIS = [
    "g.whatsapp.net", "mmg.whatsapp.net", "media-ams2-1.cdn.whatsapp.net",
    "chat.signal.org", "cdn.signal.org", "storage.signal.org",
    "ws.threema.ch", "blob.threema.ch", "api.telegram.org", "web.telegram.org",
    "dns.weixin.qq.com", "long.weixin.qq.com", "szshort.weixin.qq.com",
    "gd.line.naver.jp", "obs.line-scdn.net", "talk.kakao.com",
    "www.google.com", "i.ytimg.com", "play.googleapis.com", "graph.facebook.com",
    "api.twitter.com", "www.wikipedia.org", "clients4.google.com",
    "firebaseinstallations.googleapis.com", "mtalk.google.com",
]
ALPNS = [[b"h2", b"http/1.1"], [b"h2"], [b"http/1.1"], [b"xmpp-client"]]

BLOB = random.Random(7).randbytes(1 << 17)


def blob(rng, n):
    off = rng.randrange(0, len(BLOB) - n)
    return BLOB[off:off + n]


def mac(i):
    return bytes([0x02, 0, (i >> 24) & 255, (i >> 16) & 255, (i >> 8) & 255, i & 255])


def ipv4(src, dst, proto, payload, ident, ttl=64):
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), ident & 0xFFFF,
                      0x4000, ttl, proto, 0, src, dst)
    return hdr + payload


def tcp(sport, dport, seq, ack, flags, payload=b"", win=65535):
    return struct.pack("!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF,
                       5 << 4, flags, win, 0, 0) + payload


def udp(sport, dport, payload):
    return struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload


def client_hello(rng, sni, alpn):
    def ext(t, body):
        return struct.pack("!HH", t, len(body)) + body
    name = sni.encode()
    sni_body = struct.pack("!HBH", len(name) + 3, 0, len(name)) + name
    alpn_list = b"".join(bytes([len(p)]) + p for p in alpn)
    exts = b"".join([
        ext(0x0000, sni_body),
        ext(0x0017, b""),
        ext(0xff01, b"\x00"),
        ext(0x000a, struct.pack("!H", 6) + b"\x00\x1d\x00\x17\x00\x18"),
        ext(0x000b, b"\x01\x00"),
        ext(0x0010, struct.pack("!H", len(alpn_list)) + alpn_list),
        ext(0x000d, struct.pack("!H", 8) + b"\x04\x03\x08\x04\x04\x01\x05\x03"),
        ext(0x0033, struct.pack("!HHH", 36, 0x001d, 32) + blob(rng, 32)),
        ext(0x002b, b"\x04\x03\x04\x03\x03"),
        ext(0x0015, bytes(rng.randrange(0, 200))),  # padding
    ])
    suites = b"\x13\x01\x13\x02\x13\x03\xc0\x2b\xc0\x2f\xc0\x2c\xc0\x30\xcc\xa9\xcc\xa8"
    body = (b"\x03\x03" + blob(rng, 32) + b"\x20" + blob(rng, 32)
            + struct.pack("!H", len(suites)) + suites + b"\x01\x00"
            + struct.pack("!H", len(exts)) + exts)
    hs = b"\x01" + struct.pack("!I", len(body))[1:] + body
    return b"\x16\x03\x01" + struct.pack("!H", len(hs)) + hs


def dns_name(name):
    return b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\x00"


def dns_query(qid, name, qtype):
    return struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) + dns_name(name) + struct.pack("!HH", qtype, 1)


def dns_response(qid, name, qtype, addrs, ttl):
    out = struct.pack("!HHHHHH", qid, 0x8180, 1, len(addrs), 0, 0) + dns_name(name)
    out += struct.pack("!HH", qtype, 1)
    for a in addrs:
        out += struct.pack("!HHHIH", 0xC00C, qtype, 1, ttl, len(a)) + a
    return out


class Writer:
    def __init__(self, path):
        self.f = open(path, "wb", buffering=1 << 22)
        self.f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        self.bytes = 24
        self.packets = 0
        self.t_us = 1_700_000_000 * 1_000_000

    def frame(self, src_mac, dst_mac, ip_packet, dt_us):
        self.t_us += dt_us
        frame = dst_mac + src_mac + b"\x08\x00" + ip_packet
        n = len(frame)
        self.f.write(struct.pack("<IIII", self.t_us // 1_000_000, self.t_us % 1_000_000, n, n))
        self.f.write(frame)
        self.bytes += 16 + n
        self.packets += 1


def tls_flow(rng, client, server, sport, ident):
    """Yields (from_client, ip_packet) for one TLS connection."""
    cs, ss = rng.getrandbits(32), rng.getrandbits(32)
    sni = rng.choice(SNIS)
    if rng.random() < 0.3:
        sni = "r%d.%s" % (rng.randrange(1000), sni)
    A, PA, S, F, R = 0x10, 0x18, 0x02, 0x01, 0x04

    def c(flags, payload=b""):
        nonlocal cs
        p = ipv4(client, server, 6, tcp(sport, 443, cs, ss, flags, payload), next(ident))
        cs += len(payload) + (1 if flags & (S | F) else 0)
        return True, p

    def s(flags, payload=b""):
        nonlocal ss
        p = ipv4(server, client, 6, tcp(443, sport, ss, cs, flags, payload), next(ident), ttl=52)
        ss += len(payload) + (1 if flags & (S | F) else 0)
        return False, p

    yield c(S)
    yield s(S | A)
    yield c(A)
    yield c(PA, client_hello(rng, sni, rng.choice(ALPNS)))
    yield s(A)
    # Server hello + certificate + data: lognormal sizes, mostly small flows.
    segments = min(int(rng.lognormvariate(2.2, 1.3)) + 1, 3000)
    for i in range(segments):
        yield s(PA if i % 8 == 7 else A, blob(rng, 1448 if rng.random() < 0.8 else rng.randrange(100, 1448)))
        if i % 2 == 1:
            yield c(A)
        if rng.random() < 0.05:
            yield c(PA, blob(rng, rng.randrange(40, 600)))
    if rng.random() < 0.1:
        yield s(R | A)
        return
    yield c(F | A)
    yield s(F | A)
    yield c(A)


def quic_flow(rng, client, server, sport, ident):
    dcid, scid = blob(rng, 8), blob(rng, 8)
    first = (b"\xc3" + b"\x00\x00\x00\x01" + b"\x08" + dcid + b"\x08" + scid + b"\x00"
             + struct.pack("!H", 0x4000 | 1170) + blob(rng, 1170))
    yield True, ipv4(client, server, 17, udp(sport, 443, first[:1200]), next(ident))
    yield False, ipv4(server, client, 17, udp(443, sport, b"\xc1\x00\x00\x00\x01\x08" + scid + b"\x08" + dcid + blob(rng, 1180)), next(ident), ttl=55)
    for _ in range(min(int(rng.lognormvariate(2.5, 1.2)) + 1, 2000)):
        if rng.random() < 0.7:
            yield False, ipv4(server, client, 17, udp(443, sport, b"\x41" + dcid + blob(rng, rng.randrange(200, 1350))), next(ident), ttl=55)
        else:
            yield True, ipv4(client, server, 17, udp(sport, 443, b"\x41" + scid + blob(rng, rng.randrange(30, 120))), next(ident))


def dns_flow(rng, client, resolver, sport, ident):
    name = rng.choice(SNIS)
    qtype = 1 if rng.random() < 0.7 else 28
    qid = rng.getrandbits(16)
    n = rng.randrange(1, 4)
    addrs = [blob(rng, 4 if qtype == 1 else 16) for _ in range(n)]
    yield True, ipv4(client, resolver, 17, udp(sport, 53, dns_query(qid, name, qtype)), next(ident))
    yield False, ipv4(resolver, client, 17, udp(53, sport, dns_response(qid, name, qtype, addrs, rng.randrange(30, 3600))), next(ident), ttl=60)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out")
    ap.add_argument("--size-mb", type=float, default=520)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--concurrent", type=int, default=1500)
    ap.add_argument("--gap-us", type=float, default=20.0)
    a = ap.parse_args()
    rng = random.Random(a.seed)
    w = Writer(a.out)
    target = int(a.size_mb * 1_000_000)
    clients = [bytes([198, 18, rng.randrange(256), rng.randrange(1, 255)]) for _ in range(200)]
    servers = [bytes([rng.choice([31, 57, 91, 149, 157, 163, 203]), rng.randrange(256), rng.randrange(256), rng.randrange(1, 255)]) for _ in range(3000)]
    resolvers = [bytes([198, 19, 0, 53]), bytes([198, 19, 0, 54])]
    ident_counter = iter(range(1, 1 << 62))
    gw_mac = mac(1)
    active = []
    flows = 0

    def new_flow():
        nonlocal flows
        flows += 1
        client = rng.choice(clients)
        sport = rng.randrange(32768, 61000)
        r = rng.random()
        if r < 0.25:
            gen = dns_flow(rng, client, rng.choice(resolvers), sport, ident_counter)
        elif r < 0.40:
            gen = quic_flow(rng, client, rng.choice(servers), sport, ident_counter)
        else:
            gen = tls_flow(rng, client, rng.choice(servers), sport, ident_counter)
        return [gen, mac(2 + clients.index(client))]

    while w.bytes < target:
        while len(active) < a.concurrent:
            active.append(new_flow())
        i = rng.randrange(len(active))
        gen, cmac = active[i]
        try:
            from_client, pkt = next(gen)
        except StopIteration:
            active[i] = active[-1]
            active.pop()
            continue
        dt = int(rng.expovariate(1 / a.gap_us))
        if from_client:
            w.frame(cmac, gw_mac, pkt, dt)
        else:
            w.frame(gw_mac, cmac, pkt, dt)
    w.f.close()
    print(f"{a.out}: {w.bytes} bytes, {w.packets} packets, {flows} flows started", file=sys.stderr)


if __name__ == "__main__":
    main()
