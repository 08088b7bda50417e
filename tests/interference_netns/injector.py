#!/usr/bin/env python3
"""On-path censor for matador's interference netns test.

Runs inside the censor namespace, which forwards between client and server.
It watches the client-facing interface (AF_PACKET) and, like the Great
Firewall, does not drop anything: it races the real answers.

- A DNS query whose name contains BLOCKED gets a forged A answer (FORGED,
  an address in no shipped list) sent straight away; the resolver's real
  answer follows.
- A TCP segment to port 80 or 443 whose payload contains KEYWORD (HTTP
  Host header, TLS SNI) draws RST/ACKs to both ends, spoofing the other end.

Injected packets carry this censor's own habits: IP TTL `ttl` and constant
IP-ID `ipid` (neither is in matador's data files). Every injection is
logged as one JSON line (ground truth for precision/recall).
Usage: injector.py IFACE CONFIG_JSON LOG READY_FILE
"""
import json
import socket
import struct
import sys
import time

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4


def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


def ipv4(src, dst, proto, payload, ttl, ipid):
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), ipid, 0,
                      ttl, proto, 0, src, dst)
    hdr = hdr[:10] + struct.pack("!H", csum(hdr)) + hdr[12:]
    return hdr + payload


def tcp(src, dst, sport, dport, seq, ack, flags, window):
    seg = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 5 << 4, flags,
                      window, 0, 0)
    pseudo = struct.pack("!4s4sBBH", src, dst, 0, 6, len(seg))
    c = csum(pseudo + seg)
    return seg[:16] + struct.pack("!H", c) + seg[18:]


def qname(msg):
    labels, i = [], 12
    while i < len(msg) and msg[i] != 0:
        n = msg[i]
        labels.append(msg[i + 1:i + 1 + n].decode("ascii", "replace"))
        i += 1 + n
    return ".".join(labels), i + 5  # end of question (name, type, class)


def main():
    iface, cfg_path, log_path, ready = sys.argv[1:5]
    cfg = json.load(open(cfg_path))
    ttl, ipid = cfg["ttl"], cfg["ipid"]
    blocked, keyword = cfg["blocked"], cfg["keyword"].encode()
    forged = socket.inet_aton(cfg["forged"])
    sniff = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    sniff.bind((iface, 0))
    raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    log = open(log_path, "a")
    open(ready, "w").write("ready\n")

    def send(pkt, dst, what):
        raw.sendto(pkt, (socket.inet_ntoa(dst), 0))
        log.write(json.dumps(dict(what, t=time.time(), ttl=ttl, ipid=ipid)) + "\n")
        log.flush()

    while True:
        frame, addr = sniff.recvfrom(65535)
        if addr[2] == PACKET_OUTGOING or len(frame) < 34 or frame[12:14] != b"\x08\x00":
            continue
        ip = frame[14:]
        ihl = (ip[0] & 0x0F) * 4
        proto, src, dst = ip[9], ip[12:16], ip[16:20]
        l4 = ip[ihl:struct.unpack("!H", ip[2:4])[0]]
        if proto == 17 and len(l4) >= 20 and struct.unpack("!H", l4[2:4])[0] == 53:
            sport = struct.unpack("!H", l4[0:2])[0]
            msg = l4[8:]
            if msg[2] & 0x80:
                continue
            name, qend = qname(msg)
            if blocked not in name:
                continue
            answer = (msg[0:2] + b"\x81\x80\x00\x01\x00\x01\x00\x00\x00\x00"
                      + msg[12:qend] + b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x01\x2c\x00\x04"
                      + forged)
            udp = struct.pack("!HHHH", 53, sport, 8 + len(answer), 0) + answer
            send(ipv4(dst, src, 17, udp, ttl, ipid), src,
                 {"kind": "dns", "name": name, "to": socket.inet_ntoa(src), "port": sport})
        elif proto == 6 and len(l4) >= 20:
            sport, dport, seq, ack = struct.unpack("!HHII", l4[0:12])
            off = (l4[12] >> 4) * 4
            payload = l4[off:]
            if dport not in (80, 443) or keyword not in payload:
                continue
            to_client = tcp(dst, src, dport, sport, ack, seq + len(payload), 0x14, 0)
            send(ipv4(dst, src, 6, to_client, ttl, ipid), src,
                 {"kind": "rst", "to": socket.inet_ntoa(src), "port": sport})
            to_server = tcp(src, dst, sport, dport, seq + len(payload), ack, 0x14, 0)
            send(ipv4(src, dst, 6, to_server, ttl, ipid), dst,
                 {"kind": "rst", "to": socket.inet_ntoa(dst), "port": dport})


if __name__ == "__main__":
    main()
