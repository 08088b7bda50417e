//! The node agent's protocol: request lines as the agent parses them, the
//! agent's serve loop on a whole session (ops that capture or run programs
//! are blanked out: the loop, bounds and error answers are what is fuzzed),
//! and responses as the client parses them.
#![no_main]

use libfuzzer_sys::fuzz_target;
use matador::net::agent::protocol::{Op, Response};
use matador::net::agent::server::{AgentConfig, parse, serve};
use std::io::Write;
use std::sync::{Arc, Mutex};

#[derive(Clone, Default)]
struct Sink(Arc<Mutex<Vec<u8>>>);

impl Write for Sink {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fuzz_target!(|data: &[u8]| {
    let mut session = Vec::new();
    for line in data.split(|&b| b == b'\n') {
        let text = String::from_utf8_lossy(line);
        let _ = serde_json::from_str::<Response>(&text);
        let keep = match parse(&text) {
            Ok((_, Op::CaptureStart { .. } | Op::Run { .. })) => false,
            _ => true,
        };
        if keep {
            session.extend_from_slice(line);
        }
        session.push(b'\n');
    }
    let dir = std::env::temp_dir().join(format!("matador-fuzz-agent-{}", std::process::id()));
    let cfg = AgentConfig {
        dir,
        allowed: Vec::new(),
    };
    let out = Sink::default();
    let r = serve(cfg, &session[..], Box::new(out.clone()));
    assert!(r.is_ok(), "{r:?}");
    // Every answer is one JSON line.
    let answers = out.0.lock().unwrap().clone();
    for l in answers.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        assert!(serde_json::from_slice::<serde_json::Value>(l).is_ok());
    }
});
