//! DNS wire messages (UDP payloads): header, questions, answers, names with
//! compression pointers (loops, pointers past the end).
#![no_main]

use libfuzzer_sys::fuzz_target;
use matador::analysis::dns::parse_message;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = parse_message(data) {
        let _ = format!("{m:?}");
    }
    // The same message behind a 2-byte TCP length prefix is parsed by
    // callers after stripping it; a prefix-less TCP stream start too.
    if data.len() > 2 {
        let _ = parse_message(&data[2..]);
    }
});
