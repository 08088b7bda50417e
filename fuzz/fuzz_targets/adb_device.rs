//! The device layer's side of ADB: what a (possibly hostile) phone sends
//! back. The relay's framer (header lengths held back and checked before
//! adb_client sees them), `dumpsys notification` and `uiautomator dump`
//! output, and the exit-status marker of shell output.
#![no_main]

use libfuzzer_sys::fuzz_target;
use matador::device::adb::{Framer, MAX_DEVICE_PAYLOAD, split_rc};

fuzz_target!(|data: &[u8]| {
    // Byte 0 picks the chunking of the stream.
    let Some((&step, rest)) = data.split_first() else {
        return;
    };
    let step = usize::from(step).max(1);
    let mut f = Framer::default();
    let mut forwarded = Vec::new();
    for chunk in rest.chunks(step) {
        match f.feed(chunk) {
            Some(out) => forwarded.extend_from_slice(&out),
            None => break,
        }
    }
    assert!(f.poison().len() <= MAX_DEVICE_PAYLOAD + 24);
    // Every header forwarded announces a sane length.
    let mut p = 0;
    while p + 24 <= forwarded.len() {
        let len = u32::from_le_bytes(forwarded[p + 12..p + 16].try_into().unwrap()) as usize;
        assert!(len <= MAX_DEVICE_PAYLOAD, "forwarded a header claiming {len}");
        p += 24 + len;
    }
    let text = String::from_utf8_lossy(rest);
    let _ = matador::device::notif::parse(&text);
    let _ = matador::device::uidump::parse(&text);
    let _ = split_rc(&text);
});
