//! The simulated `/system/bin/sh`: a parser ([`parse`]) and an interpreter
//! whose commands all act on the simulated phone (never on the host).

pub mod cmds;
pub mod parse;
mod toybox;

use super::state::Phone;
use parse::{AndOrOp, RedirOp, Script, Seg, Simple, Word};
use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, Mutex, MutexGuard};

/// Hooks the shell needs from the outside world (the phone's network side).
pub trait NetHooks: Send + Sync {
    /// Resolves a host name with the phone's resolver.
    fn resolve(&self, host: &str) -> Option<std::net::IpAddr>;
    /// Measures one round trip to `ip` (a refused TCP connect), in ms.
    fn probe(&self, ip: std::net::IpAddr) -> Option<f64>;
    /// Runs iproute2's `ip ARGS` inside the phone's network namespace, so
    /// `ip addr`/`ip route` show its real link; `None` without a namespace.
    fn ip(&self, _args: &[String]) -> Option<String> {
        None
    }
}

/// No network (unit tests).
#[derive(Debug, Default)]
pub struct NoNet;

impl NetHooks for NoNet {
    fn resolve(&self, _host: &str) -> Option<std::net::IpAddr> {
        None
    }
    fn probe(&self, _ip: std::net::IpAddr) -> Option<f64> {
        None
    }
}

/// Where a file descriptor's output goes.
#[derive(Debug, Clone, PartialEq)]
enum Dest {
    Out,
    Err,
    Null,
    File(String, bool),
}

/// One shell session (variables, last status, user).
pub struct Shell {
    /// The phone it runs on.
    pub phone: Arc<Mutex<Phone>>,
    /// Network hooks for `ping`.
    pub net: Arc<dyn NetHooks>,
    /// Shell variables.
    pub vars: HashMap<String, String>,
    /// `$?`.
    pub status: i32,
    /// Effective uid: 2000 (shell) or 0 (root via `su`).
    pub uid: u32,
    /// Set by `exit`.
    pub exit: Option<i32>,
    depth: usize,
}

impl std::fmt::Debug for Shell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shell")
            .field("uid", &self.uid)
            .field("status", &self.status)
            .finish()
    }
}

impl Shell {
    /// A new session as the `shell` user.
    pub fn new(phone: Arc<Mutex<Phone>>, net: Arc<dyn NetHooks>) -> Self {
        let mut vars = HashMap::new();
        for (k, v) in [
            (
                "PATH",
                "/product/bin:/apex/com.android.runtime/bin:/system/bin:/system/xbin:/odm/bin:/vendor/bin",
            ),
            ("HOME", "/"),
            ("USER", "shell"),
            ("HOSTNAME", "localhost"),
            ("IFS", " \t\n"),
            ("ANDROID_DATA", "/data"),
            ("EXTERNAL_STORAGE", "/sdcard"),
        ] {
            vars.insert(k.to_string(), v.to_string());
        }
        Shell {
            phone,
            net,
            vars,
            status: 0,
            uid: 2000,
            exit: None,
            depth: 0,
        }
    }

    /// Locks the phone state (a poisoned lock is still usable: state is plain data).
    pub fn phone(&self) -> MutexGuard<'_, Phone> {
        self.phone.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs one command line; returns its exit status.
    pub fn run_line(&mut self, line: &str, out: &mut dyn Write, err: &mut dyn Write) -> i32 {
        match parse::parse(line) {
            Ok(script) => {
                let mut o = Vec::new();
                let mut e = Vec::new();
                let st = self.run_script(
                    &script,
                    &[],
                    &mut Streams {
                        out: &mut o,
                        err: &mut e,
                        live_out: Some(out),
                        live_err: Some(err),
                    },
                );
                let _ = (o, e);
                self.status = st;
                st
            }
            Err(e) => {
                let _ = writeln!(err, "/system/bin/sh: {}", e.message_for_shell());
                self.status = 1;
                1
            }
        }
    }

    fn run_script(&mut self, s: &Script, stdin: &[u8], io: &mut Streams<'_>) -> i32 {
        let mut st = self.status;
        for ao in &s.0 {
            if self.exit.is_some() {
                break;
            }
            st = self.run_pipeline(&ao.first, stdin, io);
            self.status = st;
            for (op, p) in &ao.rest {
                if self.exit.is_some() {
                    break;
                }
                let run = match op {
                    AndOrOp::And => st == 0,
                    AndOrOp::Or => st != 0,
                };
                if run {
                    st = self.run_pipeline(p, stdin, io);
                    self.status = st;
                }
            }
        }
        if let Some(code) = self.exit {
            return code;
        }
        st
    }

    fn run_pipeline(&mut self, p: &parse::Pipeline, stdin: &[u8], io: &mut Streams<'_>) -> i32 {
        let mut input = stdin.to_vec();
        let mut st = 0;
        let n = p.cmds.len();
        for (i, cmd) in p.cmds.iter().enumerate() {
            let last = i + 1 == n;
            let mut out = Vec::new();
            let mut err = Vec::new();
            st = self.run_simple(cmd, &input, &mut out, &mut err);
            io.write_err(&err);
            if last {
                io.write_out(&out);
            } else {
                input = out;
            }
        }
        if p.negate { i32::from(st == 0) } else { st }
    }

    /// Expands a word into fields (field splitting on unquoted expansions).
    pub fn expand(&mut self, w: &Word) -> Vec<String> {
        let mut fields = Vec::new();
        let mut cur = String::new();
        let mut has = false;
        for seg in &w.0 {
            let (val, quoted) = match seg {
                Seg::Lit { text, .. } => {
                    cur.push_str(text);
                    has = true;
                    continue;
                }
                Seg::Param { name, quoted } => (self.param(name), *quoted),
                Seg::Subst { script, quoted } => (self.substitute(script), *quoted),
            };
            if quoted {
                cur.push_str(&val);
                has = true;
                continue;
            }
            let ifs: Vec<char> = self
                .vars
                .get("IFS")
                .map(|s| s.chars().collect())
                .unwrap_or_default();
            let is_sep = |c: char| ifs.contains(&c);
            if val.is_empty() {
                continue;
            }
            if val.starts_with(is_sep) && has {
                fields.push(std::mem::take(&mut cur));
                has = false;
            }
            let pieces: Vec<&str> = val.split(is_sep).filter(|p| !p.is_empty()).collect();
            for (i, piece) in pieces.iter().enumerate() {
                if i > 0 {
                    fields.push(std::mem::take(&mut cur));
                }
                cur.push_str(piece);
                has = true;
            }
            if val.ends_with(is_sep) && has {
                fields.push(std::mem::take(&mut cur));
                has = false;
            }
        }
        if has {
            fields.push(cur);
        }
        fields
    }

    /// Expands a word to one string (assignments, redirection targets).
    pub fn expand_one(&mut self, w: &Word) -> String {
        let mut s = String::new();
        for seg in &w.0 {
            match seg {
                Seg::Lit { text, .. } => s.push_str(text),
                Seg::Param { name, .. } => s.push_str(&self.param(name)),
                Seg::Subst { script, .. } => s.push_str(&self.substitute(script)),
            }
        }
        s
    }

    fn param(&self, name: &str) -> String {
        match name {
            "?" => self.status.to_string(),
            "$" => "4711".into(),
            "#" => "0".into(),
            "!" | "@" | "*" => String::new(),
            "0" => "/system/bin/sh".into(),
            n => self.vars.get(n).cloned().unwrap_or_default(),
        }
    }

    /// Runs a command substitution against the simulated phone and returns
    /// its output without trailing newlines.
    fn substitute(&mut self, script: &Script) -> String {
        if self.depth > 16 {
            return String::new();
        }
        self.depth += 1;
        let saved = self.status;
        let mut out = Vec::new();
        let mut err = Vec::new();
        let st = self.run_script(
            script,
            &[],
            &mut Streams {
                out: &mut out,
                err: &mut err,
                live_out: None,
                live_err: None,
            },
        );
        self.exit = None;
        self.depth -= 1;
        self.status = st;
        let _ = saved;
        let mut s = String::from_utf8_lossy(&out).into_owned();
        while s.ends_with('\n') {
            s.pop();
        }
        s
    }

    fn run_simple(
        &mut self,
        cmd: &Simple,
        stdin: &[u8],
        out: &mut Vec<u8>,
        err: &mut Vec<u8>,
    ) -> i32 {
        let mut argv = Vec::new();
        for w in &cmd.words {
            argv.extend(self.expand(w));
        }
        let mut assigns = Vec::new();
        for (k, w) in &cmd.assigns {
            let v = self.expand_one(w);
            assigns.push((k.clone(), v));
        }
        // Redirections.
        let mut d1 = Dest::Out;
        let mut d2 = Dest::Err;
        let mut input = stdin.to_vec();
        for r in &cmd.redirs {
            let target = self.expand_one(&r.target);
            let dest = match r.op {
                RedirOp::Dup => match target.as_str() {
                    "1" => d1.clone(),
                    "2" => d2.clone(),
                    _ => {
                        let _ = writeln!(err, "/system/bin/sh: {target}: bad file descriptor");
                        return 1;
                    }
                },
                RedirOp::In => {
                    let ph = self.phone();
                    match ph.fs.get(&target) {
                        Some(e) if !e.is_dir() => input = e.data.clone(),
                        _ => {
                            drop(ph);
                            let _ = writeln!(
                                err,
                                "/system/bin/sh: can't open {target}: No such file or directory"
                            );
                            return 1;
                        }
                    }
                    continue;
                }
                RedirOp::Out | RedirOp::Append => {
                    if target == "/dev/null" {
                        Dest::Null
                    } else {
                        let path = super::state::normalize(&target);
                        let root = self.uid == 0;
                        let mut ph = self.phone();
                        let now = ph.now_secs();
                        let res = if r.op == RedirOp::Out {
                            ph.fs.write(&path, Vec::new(), 0o644, now, root)
                        } else {
                            ph.fs.append(&path, b"", now, root)
                        };
                        if let Err(e) = res {
                            drop(ph);
                            let _ = writeln!(err, "/system/bin/sh: can't create {target}: {e}");
                            return 1;
                        }
                        Dest::File(path, true)
                    }
                }
            };
            if r.fd == 2 {
                d2 = dest;
            } else if r.fd == 1 {
                d1 = dest;
            }
        }
        if argv.is_empty() {
            for (k, v) in assigns {
                self.vars.insert(k, v);
            }
            return 0;
        }
        let mut o = Vec::new();
        let mut e = Vec::new();
        let st = cmds::run(self, &argv, &input, &mut o, &mut e);
        for (buf, dest) in [(o, d1), (e, d2)] {
            match dest {
                Dest::Out => out.extend_from_slice(&buf),
                Dest::Err => err.extend_from_slice(&buf),
                Dest::Null => {}
                Dest::File(path, _) => {
                    let root = self.uid == 0;
                    let mut ph = self.phone();
                    let now = ph.now_secs();
                    let _ = ph.fs.append(&path, &buf, now, root);
                }
            }
        }
        st
    }
}

/// Output streams of a script: buffers, optionally forwarded live.
struct Streams<'a> {
    out: &'a mut Vec<u8>,
    err: &'a mut Vec<u8>,
    live_out: Option<&'a mut dyn Write>,
    live_err: Option<&'a mut dyn Write>,
}

impl Streams<'_> {
    fn write_out(&mut self, b: &[u8]) {
        match &mut self.live_out {
            Some(w) => {
                let _ = w.write_all(b);
                let _ = w.flush();
            }
            None => self.out.extend_from_slice(b),
        }
    }
    fn write_err(&mut self, b: &[u8]) {
        match &mut self.live_err {
            Some(w) => {
                let _ = w.write_all(b);
                let _ = w.flush();
            }
            None => self.err.extend_from_slice(b),
        }
    }
}

impl parse::ParseError {
    /// The message as mksh words it.
    pub fn message_for_shell(&self) -> String {
        format!("syntax error: {}", self.message)
    }
}
