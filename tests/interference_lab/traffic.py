#!/usr/bin/env python3
"""Phone-side traffic of matador's interference lab test: DNS lookups
(each socket stays open 0.4 s so both racing replies are received), HTTP
requests with the given Host headers and TLS ClientHellos with the given
SNIs (to the server's port 80). Usage:
traffic.py RESOLVER SERVER NAMES... -- HOSTS...   Prints one JSON object."""
import json
import socket
import struct
import sys
import time


def query(resolver, name, qid):
    q = struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    for label in name.split("."):
        q += bytes([len(label)]) + label.encode()
    q += b"\0\0\x01\0\x01"
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.sendto(q, (resolver, 53))
    answers = []
    end = time.time() + 0.4
    while time.time() < end:
        s.settimeout(max(end - time.time(), 0.01))
        try:
            r, _ = s.recvfrom(2048)
        except socket.timeout:
            break
        an = struct.unpack("!H", r[6:8])[0]
        answers.append(socket.inet_ntoa(r[-4:]) if an else None)
    s.close()
    return answers


def http(server, host):
    s = socket.create_connection((server, 80), timeout=3)
    try:
        s.sendall(("GET / HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" % host).encode())
        data = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        return data.split(b"\r\n", 1)[0].decode()
    except (ConnectionResetError, socket.timeout) as e:
        return type(e).__name__
    finally:
        s.close()


def client_hello(sni):
    name = sni.encode()
    sni_ext = struct.pack("!HBH", len(name) + 3, 0, len(name)) + name
    exts = struct.pack("!HH", 0, len(sni_ext)) + sni_ext
    body = (b"\x03\x03" + bytes(32) + b"\x00" + struct.pack("!HH", 2, 0x1301)
            + b"\x01\x00" + struct.pack("!H", len(exts)) + exts)
    hs = b"\x01" + struct.pack("!I", len(body))[1:] + body
    return b"\x16\x03\x01" + struct.pack("!H", len(hs)) + hs


def tls(server, sni):
    """A ClientHello to the plain-HTTP server: genuinely it just waits (the
    client closes after 0.5 s); a censored one ends with a RST."""
    s = socket.create_connection((server, 80), timeout=3)
    try:
        s.sendall(client_hello(sni))
        s.settimeout(0.5)
        data = s.recv(4096)
        return data.split(b"\r\n", 1)[0].decode(errors="replace") or "closed"
    except (ConnectionResetError, socket.timeout) as e:
        return type(e).__name__
    finally:
        s.close()


def main():
    resolver, server = sys.argv[1], sys.argv[2]
    rest = sys.argv[3:]
    split = rest.index("--")
    names, hosts = rest[:split], rest[split + 1:]
    out = {"dns": {}, "http": {}, "tls": {}}
    for i, n in enumerate(names):
        out["dns"]["%d %s" % (i, n)] = query(resolver, n, 0x1000 + i)
        time.sleep(0.05)
    for h in hosts:
        out["http"][h] = http(server, h)
        time.sleep(0.2)
    for h in hosts:
        out["tls"][h] = tls(server, h)
        time.sleep(0.2)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
