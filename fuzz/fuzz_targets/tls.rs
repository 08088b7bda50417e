//! TLS ClientHello extraction (SNI, ALPN) from a TCP stream's first bytes:
//! record layer and bare handshake.
#![no_main]

use libfuzzer_sys::fuzz_target;
use matador::analysis::names::tls::{
    client_hello_from_handshake, client_hello_from_records, looks_like_handshake_record,
};

fuzz_target!(|data: &[u8]| {
    let _ = looks_like_handshake_record(data);
    let _ = format!("{:?}", client_hello_from_records(data));
    let _ = format!("{:?}", client_hello_from_handshake(data));
});
