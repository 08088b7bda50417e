#!/usr/bin/env python3
"""Client side of matador's interference netns test: DNS lookups (each
takes the first reply and closes its socket, like a stub resolver) and
HTTP requests and TLS ClientHellos (port 443) to each host. Usage: client.py RESOLVER SERVER NAMES... -- HOSTS...
Prints one JSON object: what the client saw."""
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
    s.settimeout(2)
    s.sendto(q, (resolver, 53))
    try:
        r, _ = s.recvfrom(2048)
        addr = socket.inet_ntoa(r[-4:]) if struct.unpack("!H", r[6:8])[0] else None
    except socket.timeout:
        addr = None
    s.close()
    return addr


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
    """Sends a ClientHello for `sni` to port 443 (the server is plain HTTP:
    a genuine exchange ends with its 400 answer, a censored one with a RST)."""
    s = socket.create_connection((server, 443), timeout=3)
    try:
        s.sendall(client_hello(sni))
        s.settimeout(1)  # a genuine plain-HTTP server just waits for a line
        data = s.recv(4096)
        return data.split(b"\r\n", 1)[0].decode(errors="replace")
    except (ConnectionResetError, socket.timeout) as e:
        return type(e).__name__
    finally:
        s.close()


def main():
    resolver, server = sys.argv[1], sys.argv[2]
    rest = sys.argv[3:]
    split = rest.index("--")
    names, hosts = rest[:split], rest[split + 1:]
    out = {"dns": {}, "http": {}}
    # Spaced out (the scenario, not a wait): each exchange stands alone in
    # the capture, as a person's lookups and page loads would.
    for i, n in enumerate(names):
        out["dns"][n] = query(resolver, n, 0x1000 + i)
        time.sleep(0.3)
    for h in hosts:
        out["http"][h] = http(server, h)
        time.sleep(0.5)
    out["tls"] = {}
    for h in hosts:
        out["tls"][h] = tls(server, h)
        time.sleep(0.5)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
