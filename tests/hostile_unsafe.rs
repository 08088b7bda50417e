//! `unsafe` audit: the crate denies `unsafe_code`; the few places that need
//! it (setns, kill, statvfs, recvmsg on a raw socket, the mmdb mmap) carry
//! a local `#[allow(unsafe_code)]` and every `unsafe` block or call has a
//! `// SAFETY:` comment just above it. A new `unsafe` anywhere else fails
//! here (add it to ALLOWED with its reason, and a SAFETY comment).

use std::path::{Path, PathBuf};

/// (file, why unsafe is needed there).
const ALLOWED: &[(&str, &str)] = &[
    ("src/net/netns.rs", "setns(2): enter a network namespace"),
    (
        "src/net/state.rs",
        "kill(2): signal processes the lab started",
    ),
    (
        "src/net/agent/server.rs",
        "statvfs(3): free space of the capture disk",
    ),
    (
        "src/paths/sys.rs",
        "recvmsg(2): hop limit of raw ICMPv6 replies",
    ),
    ("src/geo/db.rs", "mmap of the read-only mmdb files"),
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

#[test]
fn unsafe_only_where_needed_and_always_justified() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
    assert!(
        manifest.contains("unsafe_code = \"deny\""),
        "Cargo.toml must deny unsafe_code crate-wide"
    );
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    let mut blocks = 0;
    let mut problems = Vec::new();
    for f in &files {
        let rel = f.strip_prefix(root).unwrap().display().to_string();
        let text = std::fs::read_to_string(f).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let mut uses = 0;
        for (i, l) in lines.iter().enumerate() {
            let code = l.split("//").next().unwrap_or("");
            let is_unsafe = code.contains("unsafe {")
                || code.contains("unsafe fn")
                || code.contains("unsafe impl")
                || code.contains("unsafe extern");
            if !is_unsafe || code.contains("\"") && !code.contains("unsafe {") {
                continue;
            }
            uses += 1;
            // A SAFETY comment within the 6 lines above (or on the line).
            let from = i.saturating_sub(6);
            let justified = lines[from..=i].iter().any(|x| x.contains("SAFETY:"));
            if !justified {
                problems.push(format!("{rel}:{}: unsafe without a SAFETY comment", i + 1));
            }
        }
        let allows = text.matches("allow(unsafe_code)").count();
        if uses > 0 || allows > 0 {
            if !ALLOWED.iter().any(|(p, _)| *p == rel) {
                problems.push(format!("{rel}: unsafe outside the audited places"));
            }
            if uses > 0 && allows == 0 {
                problems.push(format!("{rel}: unsafe without a local allow(unsafe_code)"));
            }
            if text.contains("#![allow(unsafe_code)]") {
                problems.push(format!("{rel}: module-wide allow(unsafe_code)"));
            }
        }
        blocks += uses;
    }
    assert!(problems.is_empty(), "{problems:#?}");
    eprintln!(
        "{blocks} unsafe uses in {} audited files of {}",
        ALLOWED.len(),
        files.len()
    );
    assert!(blocks >= ALLOWED.len());
}
