//! WeChat HTTP DNS (newgetdns): the compressed body and the XML domain
//! list, and the request path check.
#![no_main]

use libfuzzer_sys::fuzz_target;
use matador::analysis::names::wechat::{decompress, is_newgetdns, parse_domain_list};

fuzz_target!(|data: &[u8]| {
    let _ = is_newgetdns(&String::from_utf8_lossy(data));
    if let Ok(body) = decompress(data) {
        let _ = parse_domain_list(&body);
    }
    let _ = parse_domain_list(data);
});
