//! Whole capture files: the reader (pcap/pcapng headers, blocks, options),
//! then decoding and every replay sink on whatever frames come out.
#![no_main]

use libfuzzer_sys::fuzz_target;
use matador::analysis::replay::{ReplayOptions, analyze_reader};

fuzz_target!(|data: &[u8]| {
    let report = analyze_reader("fuzz.pcap", data, &ReplayOptions::default());
    // Errors must point inside the input.
    for e in &report.errors {
        if let Some(off) = e.offset {
            assert!(off <= data.len() as u64, "offset {off} beyond {}", data.len());
        }
    }
    let _ = serde_json::to_string(&report);
});
