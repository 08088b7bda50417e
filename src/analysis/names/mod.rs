//! Server names seen in a capture: TLS ClientHello SNI/ALPN (TCP), QUIC
//! Initial ClientHellos (decrypted with the version's initial keys), HTTP/1.x
//! request lines and Host headers, DoH recognition and WeChat's HTTP DNS.

pub(crate) mod stream;
