# Generates quic-aioquic.pcap: three QUIC connections on loopback (aioquic 1.7.2),
# v1 "chat.signal.org", v2 "g.whatsapp.net", v1 "mmtls.weixin.qq.com" with a
# ~3 KB ClientHello (120 extra ALPN ids) that spans four Initial packets.
# Run:  tcpdump -i lo -w quic-aioquic.pcap udp port 4433 &  python3 gen-quic-aioquic.py
# (needs cert.pem/key.pem: openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -keyout key.pem -out cert.pem -nodes -subj /CN=localhost)
import asyncio, sys
from aioquic.asyncio import connect, serve
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.packet import QuicProtocolVersion

async def main():
    scfg = QuicConfiguration(is_client=False, alpn_protocols=["h3", "x-big"])
    scfg.load_cert_chain("cert.pem", "key.pem")
    scfg.supported_versions = [QuicProtocolVersion.VERSION_1, QuicProtocolVersion.VERSION_2]
    server = await serve("127.0.0.1", 4433, configuration=scfg)
    cases = [
        (QuicProtocolVersion.VERSION_1, "chat.signal.org", ["h3"]),
        (QuicProtocolVersion.VERSION_2, "g.whatsapp.net", ["h3"]),
        # ~3 KB of ALPN ids: the ClientHello spans several Initial packets
        (QuicProtocolVersion.VERSION_1, "mmtls.weixin.qq.com", ["x-big"] + ["proto-%03d-padding-padding" % i for i in range(120)]),
    ]
    for ver, sni, alpn in cases:
        c = QuicConfiguration(is_client=True, alpn_protocols=alpn, server_name=sni, verify_mode=False)
        import ssl
        c.verify_mode = ssl.CERT_NONE
        c.original_version = ver
        c.supported_versions = [ver]
        try:
            async with connect("127.0.0.1", 4433, configuration=c, wait_connected=True) as conn:
                await conn.ping()
        except Exception as e:
            print("case", sni, "error", e, file=sys.stderr)
        await asyncio.sleep(0.2)
    server.close()

asyncio.run(main())
