//! The simulated phone's commands. Every command acts on the simulated state
//! only; output and errors are worded like Android 13's toybox and services.

use super::Shell;
use super::toybox;
use crate::phone::apps::APPS;
use crate::phone::state::{AppScreen, Foreground, Phone, normalize};
use crate::phone::ui;
use base64::Engine;
use std::sync::MutexGuard;
use std::time::Duration;

/// The ADBKeyboard input method (text through broadcasts, any Unicode).
pub const ADB_IME: &str = "com.android.adbkeyboard/.AdbIME";
const LATIN_IME: &str =
    "com.google.android.inputmethod.latin/com.android.inputmethod.latin.LatinIME";
const SYSTEM_PACKAGES: &[&str] = &[
    "android",
    "com.android.systemui",
    "com.android.settings",
    "com.android.shell",
    "com.google.android.gms",
    "com.google.android.apps.nexuslauncher",
    "com.google.android.inputmethod.latin",
];

/// The ADBKeyboard package, installed when the phone's config says so.
const ADB_KEYBOARD_PACKAGE: &str = "com.android.adbkeyboard";

pub(super) const KNOWN: &[&str] = &[
    "echo",
    "printf",
    "true",
    "false",
    ":",
    "exit",
    "cd",
    "export",
    "unset",
    "sleep",
    "id",
    "whoami",
    "uname",
    "getprop",
    "setprop",
    "cat",
    "ls",
    "touch",
    "rm",
    "mkdir",
    "grep",
    "head",
    "tail",
    "wc",
    "base64",
    "sh",
    "su",
    "date",
    "input",
    "am",
    "monkey",
    "pm",
    "cmd",
    "dumpsys",
    "uiautomator",
    "screenrecord",
    "iptables",
    "ip6tables",
    "appops",
    "settings",
    "ip",
    "ping",
    "wm",
    "svc",
    "ime",
    "logcat",
    "log",
    "pidof",
    "kill",
    "pkill",
    "which",
    "test",
    "[",
    "command",
];

pub(super) fn w(buf: &mut Vec<u8>, s: &str) {
    buf.extend_from_slice(s.as_bytes());
}

/// Runs one command with its arguments (`argv[0]` is the name).
pub fn run(
    sh: &mut Shell,
    argv: &[String],
    stdin: &[u8],
    out: &mut Vec<u8>,
    err: &mut Vec<u8>,
) -> i32 {
    let name = argv[0].rsplit('/').next().unwrap_or("").to_string();
    let args = &argv[1..];
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    if argv[0].contains('/')
        && !argv[0].starts_with("/system/bin/")
        && !argv[0].starts_with("/system/xbin/")
    {
        w(
            err,
            &format!("/system/bin/sh: {}: inaccessible or not found\n", argv[0]),
        );
        return 127;
    }
    match name.as_str() {
        "echo" => toybox::echo(&a, out),
        "printf" => printf(&a, out, err),
        "pkill" | "killall" if a.contains(&"screenrecord") => stop_recordings(sh),
        "true" | ":" | "cd" | "log" | "kill" | "pkill" | "killall" => 0,
        "false" => 1,
        "exit" => toybox::exit(sh, &a),
        "export" => toybox::export(sh, &a),
        "unset" => toybox::unset(sh, &a),
        "sleep" => toybox::sleep(&a),
        "id" => toybox::id(sh, out),
        "whoami" => toybox::whoami(sh, out),
        "uname" => toybox::uname(&a, out),
        "getprop" => toybox::getprop(sh, &a, out),
        "setprop" => toybox::setprop(sh, &a, err),
        "cat" => toybox::cat(sh, &a, stdin, out, err),
        "ls" => ls(sh, &a, out, err),
        "touch" => toybox::touch(sh, &a, err),
        "rm" => toybox::rm(sh, &a, err),
        "mkdir" => toybox::mkdir(sh, &a, err),
        "grep" => grep(sh, &a, stdin, out, err),
        "head" | "tail" => toybox::head_tail(sh, &a, &name, stdin, out, err),
        "wc" => toybox::wc(&a, stdin, out),
        "base64" => toybox::base64_cmd(&a, stdin, out, err),
        "sh" => toybox::sh_c(sh, &a, stdin, out, err),
        "su" => toybox::su(sh, &a, stdin, out, err),
        "date" => date(sh, &a, out, err),
        "input" => input(sh, &a, out, err),
        "am" => am(sh, &a, out, err),
        "monkey" => monkey(sh, &a, out, err),
        "pm" => pm(sh, &a, out, err),
        "cmd" => cmd(sh, &a, out, err),
        "dumpsys" => dumpsys(sh, &a, out, err),
        "uiautomator" => uiautomator(sh, &a, out, err),
        "screenrecord" => screenrecord(sh, &a, out, err),
        "iptables" | "ip6tables" => iptables(sh, args, &name, out, err),
        "appops" => appops(sh, &a, out, err),
        "settings" => settings(sh, &a, out, err),
        "ip" => ip(sh, &a, out, err),
        "ping" => ping(sh, &a, out, err),
        "wm" => wm(sh, &a, out, err),
        "svc" => svc(sh, &a, err),
        "ime" => ime(sh, &a, out, err),
        "logcat" => 0,
        "pidof" => toybox::pidof(sh, &a, out),
        "which" | "command" => toybox::which(sh, &a, out),
        "test" | "[" => test(sh, &a, &name),
        _ => {
            w(err, &format!("/system/bin/sh: {}: not found\n", argv[0]));
            127
        }
    }
}

/// `pkill`/`killall screenrecord`: SIGINT (or any signal) ends running
/// recordings, which then finish their files, as on a phone.
fn stop_recordings(sh: &Shell) -> i32 {
    let mut ph = sh.phone();
    let now = std::time::Instant::now();
    let n = ph.recordings.len();
    for r in &mut ph.recordings {
        r.1 = now;
    }
    i32::from(n == 0)
}

/// `iptables`/`ip6tables`: the per-UID firewall.
fn iptables(
    sh: &mut Shell,
    args: &[String],
    name: &str,
    out: &mut Vec<u8>,
    err: &mut Vec<u8>,
) -> i32 {
    let root = sh.uid == 0;
    let (o, e, st) = sh.phone().firewall.command(args, root);
    w(out, &o);
    w(err, &e.replace("iptables", name));
    st
}

/// `wm size|density|dismiss-keyguard`.
fn wm(sh: &Shell, a: &[&str], out: &mut Vec<u8>, err: &mut Vec<u8>) -> i32 {
    let mut ph = sh.phone();
    match a.first() {
        Some(&"size") => w(
            out,
            &format!("Physical size: {}x{}\n", ph.cfg.width, ph.cfg.height),
        ),
        Some(&"density") => w(out, &format!("Physical density: {}\n", ph.cfg.density)),
        Some(&"dismiss-keyguard") => {
            if ph.awake {
                ph.locked = false;
            }
        }
        _ => {
            w(
                err,
                "Window manager (window) commands:\n  size\n  density\n  dismiss-keyguard\n",
            );
            return 1;
        }
    }
    0
}

/// `svc wifi enable|disable`, `svc power stayon`, `svc data`.
fn svc(sh: &Shell, a: &[&str], err: &mut Vec<u8>) -> i32 {
    let mut ph = sh.phone();
    match a {
        ["wifi", on @ ("enable" | "disable")] => {
            ph.settings.insert(
                "global wifi_on".into(),
                if *on == "enable" { "1" } else { "0" }.into(),
            );
        }
        ["power", "stayon", _] | ["data", _] => {}
        _ => {
            w(
                err,
                "Available commands:\n    help\n    power\n    data\n    wifi\n",
            );
            return 1;
        }
    }
    0
}

/// `ime list|enable|set|reset`: input methods (ADBKeyboard where installed).
fn ime(sh: &Shell, a: &[&str], out: &mut Vec<u8>, err: &mut Vec<u8>) -> i32 {
    let mut ph = sh.phone();
    // ADBKeyboard is an input method only where it is installed.
    let known = |id: &str| id == LATIN_IME || (id == ADB_IME && ph.cfg.adb_keyboard);
    match a {
        ["list", ..] => {
            w(out, &format!("{LATIN_IME}\n"));
            if ph.cfg.adb_keyboard {
                w(out, &format!("{ADB_IME}\n"));
            }
        }
        ["enable", id] => w(
            out,
            &format!(
                "Input method {id}: {}\n",
                if known(id) {
                    "now enabled"
                } else {
                    "Unknown input method"
                }
            ),
        ),
        ["set", id] => {
            if known(id) {
                ph.ime = id.to_string();
                ph.settings
                    .insert("secure default_input_method".into(), id.to_string());
                w(out, &format!("Input method {id} selected for user #0\n"));
            } else {
                w(
                    err,
                    &format!("Unknown input method {id} cannot be selected for user #0\n"),
                );
                return 1;
            }
        }
        ["reset"] => {
            ph.ime = LATIN_IME.into();
            w(
                out,
                &format!("Reset current and enabled IMEs for user #0\n  Selected: {LATIN_IME}\n"),
            );
        }
        _ => {
            w(
                err,
                "ime <command>:\n  list [-a] [-s]\n  enable [--user <USER_ID>] <ID>\n  set [--user <USER_ID>] <ID>\n",
            );
            return 1;
        }
    }
    0
}

fn printf(a: &[&str], out: &mut Vec<u8>, err: &mut Vec<u8>) -> i32 {
    let Some(fmt) = a.first() else {
        w(err, "printf: Needs 1 argument\n");
        return 1;
    };
    let mut args = a[1..].iter();
    loop {
        let mut chars = fmt.chars().peekable();
        let mut used = false;
        while let Some(c) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some('n') => out.push(b'\n'),
                    Some('t') => out.push(b'\t'),
                    Some('0') => out.push(0),
                    Some('\\') => out.push(b'\\'),
                    Some(o) => w(out, &format!("\\{o}")),
                    None => out.push(b'\\'),
                },
                '%' => match chars.next() {
                    Some('%') => out.push(b'%'),
                    Some('s') => {
                        used = true;
                        w(out, args.next().copied().unwrap_or(""));
                    }
                    Some('d') => {
                        used = true;
                        let v: i64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(0);
                        w(out, &v.to_string());
                    }
                    Some(o) => w(out, &format!("%{o}")),
                    None => out.push(b'%'),
                },
                c => w(out, &c.to_string()),
            }
        }
        if !used || args.len() == 0 {
            break;
        }
    }
    0
}

fn ls(sh: &Shell, a: &[&str], out: &mut Vec<u8>, err: &mut Vec<u8>) -> i32 {
    let long = a.iter().any(|s| s.starts_with('-') && s.contains('l'));
    let all = a.iter().any(|s| s.starts_with('-') && s.contains('a'));
    let mut paths: Vec<&str> = a.iter().copied().filter(|s| !s.starts_with('-')).collect();
    if paths.is_empty() {
        paths.push("/");
    }
    let ph = sh.phone();
    let mut st = 0;
    let fmt = |name: &str, e: &crate::phone::state::FsEntry| {
        if long {
            let kind = if e.is_dir() { 'd' } else { '-' };
            let perms: String = (0..9)
                .map(|i| {
                    let bit = e.mode & (0o400 >> i);
                    if bit == 0 {
                        '-'
                    } else {
                        ['r', 'w', 'x'][i % 3]
                    }
                })
                .collect();
            let (y, mo, d, h, mi, _) = civil(i64::from(e.mtime));
            format!(
                "{kind}{perms} 1 shell shell {} {y:04}-{mo:02}-{d:02} {h:02}:{mi:02} {name}\n",
                e.data.len()
            )
        } else {
            format!("{name}\n")
        }
    };
    for p in paths {
        match ph.fs.get(p) {
            None => {
                w(err, &format!("ls: {p}: No such file or directory\n"));
                st = 1;
            }
            Some(e) if !e.is_dir() => w(out, &fmt(p, e)),
            Some(_) => {
                if normalize(p) == "/data" && sh.uid != 0 {
                    w(err, &format!("ls: {p}: Permission denied\n"));
                    st = 1;
                    continue;
                }
                for (name, e) in ph.fs.list(p).unwrap_or_default() {
                    if all || !name.starts_with('.') {
                        w(out, &fmt(&name, e));
                    }
                }
            }
        }
    }
    st
}

fn grep(sh: &Shell, a: &[&str], stdin: &[u8], out: &mut Vec<u8>, err: &mut Vec<u8>) -> i32 {
    let mut fixed = false;
    let mut icase = false;
    let mut invert = false;
    let mut quiet = false;
    let mut count = false;
    let mut rest = Vec::new();
    for s in a {
        if s.starts_with('-') && s.len() > 1 && rest.is_empty() {
            for c in s[1..].chars() {
                match c {
                    'F' => fixed = true,
                    'i' => icase = true,
                    'v' => invert = true,
                    'q' => quiet = true,
                    'c' => count = true,
                    'E' | 'e' => {}
                    _ => {}
                }
            }
        } else {
            rest.push(*s);
        }
    }
    let Some(pat) = rest.first() else {
        w(err, "usage: grep [-EFivqc] PATTERN [FILE...]\n");
        return 2;
    };
    let src = if fixed {
        regex::escape(pat)
    } else {
        pat.to_string()
    };
    let re = match regex::RegexBuilder::new(&src)
        .case_insensitive(icase)
        .build()
    {
        Ok(r) => r,
        Err(_) => {
            w(err, &format!("grep: bad regex '{pat}'\n"));
            return 2;
        }
    };
    let data = match rest.get(1) {
        Some(f) => match sh.phone().fs.get(f) {
            Some(e) => e.data.clone(),
            None => {
                w(err, &format!("grep: {f}: No such file or directory\n"));
                return 2;
            }
        },
        None => stdin.to_vec(),
    };
    let text = String::from_utf8_lossy(&data);
    let mut n = 0;
    for line in text.lines() {
        if re.is_match(line) != invert {
            n += 1;
            if !quiet && !count {
                w(out, &format!("{line}\n"));
            }
        }
    }
    if count {
        w(out, &format!("{n}\n"));
    }
    i32::from(n == 0)
}

fn test(sh: &Shell, a: &[&str], name: &str) -> i32 {
    let mut a = a.to_vec();
    if name == "[" {
        if a.last() != Some(&"]") {
            return 2;
        }
        a.pop();
    }
    let r = match a.as_slice() {
        [] => false,
        [s] => !s.is_empty(),
        ["-z", s] => s.is_empty(),
        ["-n", s] => !s.is_empty(),
        ["-e", p] => sh.phone().fs.get(p).is_some(),
        ["-f", p] => sh.phone().fs.get(p).is_some_and(|e| !e.is_dir()),
        ["-d", p] => sh.phone().fs.get(p).is_some_and(|e| e.is_dir()),
        [x, "=", y] => x == y,
        [x, "!=", y] => x != y,
        [x, op, y] => {
            let (Ok(x), Ok(y)) = (x.parse::<i64>(), y.parse::<i64>()) else {
                return 2;
            };
            match *op {
                "-eq" => x == y,
                "-ne" => x != y,
                "-lt" => x < y,
                "-le" => x <= y,
                "-gt" => x > y,
                "-ge" => x >= y,
                _ => return 2,
            }
        }
        _ => return 2,
    };
    i32::from(!r)
}

/// Civil date from unix seconds: (year, month, day, hour, minute, second).
pub fn civil(t: i64) -> (i64, u32, u32, u32, u32, u32) {
    let days = t.div_euclid(86_400);
    let secs = t.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (
        y,
        m,
        d,
        (secs / 3600) as u32,
        ((secs % 3600) / 60) as u32,
        (secs % 60) as u32,
    )
}

fn date(sh: &Shell, a: &[&str], out: &mut Vec<u8>, err: &mut Vec<u8>) -> i32 {
    let ns = sh.phone().clock.now_ns();
    let secs = ns.div_euclid(1_000_000_000) as i64;
    let nanos = ns.rem_euclid(1_000_000_000) as u32;
    let (y, mo, d, h, mi, s) = civil(secs);
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let wd = DAYS[secs.div_euclid(86_400).rem_euclid(7) as usize];
    let mon = MONTHS[(mo - 1) as usize];
    let fmt = a.iter().find(|s| s.starts_with('+')).map(|s| &s[1..]);
    if a.iter().any(|s| !s.starts_with('+') && *s != "-u") {
        if sh.uid != 0 {
            w(err, "date: cannot set date: Operation not permitted\n");
            return 1;
        }
        return 0;
    }
    let Some(fmt) = fmt else {
        w(
            out,
            &format!("{wd} {mon} {d:2} {h:02}:{mi:02}:{s:02} UTC {y}\n"),
        );
        return 0;
    };
    let mut o = String::new();
    let mut chars = fmt.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            o.push(c);
            continue;
        }
        match chars.next() {
            Some('s') => o.push_str(&secs.to_string()),
            Some('N') => o.push_str(&format!("{nanos:09}")),
            Some('Y') => o.push_str(&format!("{y:04}")),
            Some('m') => o.push_str(&format!("{mo:02}")),
            Some('d') => o.push_str(&format!("{d:02}")),
            Some('H') => o.push_str(&format!("{h:02}")),
            Some('M') => o.push_str(&format!("{mi:02}")),
            Some('S') => o.push_str(&format!("{s:02}")),
            Some('z') => o.push_str("+0000"),
            Some('Z') => o.push_str("UTC"),
            Some('T') => o.push_str(&format!("{h:02}:{mi:02}:{s:02}")),
            Some('F') => o.push_str(&format!("{y:04}-{mo:02}-{d:02}")),
            Some('%') => o.push('%'),
            Some(x) => {
                o.push('%');
                o.push(x);
            }
            None => o.push('%'),
        }
    }
    w(out, &format!("{o}\n"));
    0
}

/// `input text` as Android does it: `%s` becomes a space and only characters
/// the virtual keyboard map has (printable ASCII, newline, tab) can be typed.
pub fn android_input_text(text: &str) -> Option<String> {
    let mut buff: Vec<char> = text.chars().collect();
    let mut escape = false;
    let mut i = 0usize;
    while i < buff.len() {
        if escape {
            escape = false;
            if buff[i] == 's' {
                buff[i] = ' ';
                buff.remove(i - 1);
                i -= 1;
            }
        }
        if buff[i] == '%' {
            escape = true;
        }
        i += 1;
    }
    if buff
        .iter()
        .all(|&c| c == '\n' || c == '\t' || (' '..='~').contains(&c))
    {
        Some(buff.into_iter().collect())
    } else {
        None
    }
}

fn type_into(ph: &mut Phone, text: &str) {
    // An interruption's window has the input focus: the text goes nowhere.
    if !ph.awake || ph.locked || super::super::dialog::visible(ph).is_some() {
        return;
    }
    if let Foreground::App(i) = ph.fg {
        let app = &mut ph.apps[i];
        if app.focused && matches!(app.screen, AppScreen::Chat(_)) {
            app.draft.push_str(text);
        }
    }
}

fn keycode(k: &str) -> Option<u32> {
    if let Ok(n) = k.parse() {
        return Some(n);
    }
    Some(match k.trim_start_matches("KEYCODE_") {
        "HOME" => 3,
        "BACK" => 4,
        "POWER" => 26,
        "ENTER" => 66,
        "DEL" => 67,
        "MOVE_END" => 123,
        "MENU" => 82,
        "APP_SWITCH" => 187,
        "SLEEP" => 223,
        "WAKEUP" => 224,
        "SPACE" => 62,
        "TAB" => 61,
        _ => return None,
    })
}

fn input(sh: &Shell, a: &[&str], _out: &mut Vec<u8>, err: &mut Vec<u8>) -> i32 {
    const SOURCES: &[&str] = &[
        "keyboard",
        "touchscreen",
        "touchpad",
        "mouse",
        "dpad",
        "gamepad",
        "stylus",
        "trackball",
        "joystick",
    ];
    let a: &[&str] = if a.first().is_some_and(|s| SOURCES.contains(s)) {
        &a[1..]
    } else {
        a
    };
    let usage = |err: &mut Vec<u8>| {
        w(
            err,
            "Usage: input [<source>] [-d DISPLAY_ID] <command> [<arg>...]\n\nThe commands and default sources are:\n      text <string> (Default: touchscreen)\n      keyevent [--longpress|--doubletap] <key code number or name> ... (Default: keyboard)\n      tap <x> <y> (Default: touchscreen)\n      swipe <x1> <y1> <x2> <y2> [duration(ms)] (Default: touchscreen)\n",
        );
        1
    };
    let mut ph = sh.phone();
    ph.tick();
    // Any input redraws something (uiautomator dump waits for idle).
    ph.ui_changed = std::time::Instant::now();
    match a {
        ["text", text, ..] => match android_input_text(text) {
            Some(t) => {
                type_into(&mut ph, &t);
                0
            }
            None => {
                w(
                    err,
                    "Exception occurred while executing 'text':\njava.lang.NullPointerException: Attempt to get length of null array\n\tat com.android.server.input.InputShellCommand.sendText(InputShellCommand.java:297)\n\tat com.android.server.input.InputShellCommand.runText(InputShellCommand.java:276)\n",
                );
                255
            }
        },
        ["tap", x, y] => {
            let (Ok(x), Ok(y)) = (x.parse::<f64>(), y.parse::<f64>()) else {
                return usage(err);
            };
            if ph.awake && !ph.locked {
                ui::tap(&mut ph, x as i32, y as i32);
            }
            0
        }
        ["swipe", x1, y1, x2, y2, ..] => {
            let v: Vec<f64> = [x1, y1, x2, y2]
                .iter()
                .filter_map(|s| s.parse().ok())
                .collect();
            if v.len() != 4 {
                return usage(err);
            }
            let h = f64::from(ph.cfg.height);
            if ph.awake && ph.locked && v[1] - v[3] > h / 4.0 {
                ph.locked = false;
            } else if ph.awake && !ph.locked {
                // The optional duration only paces the gesture on a phone.
                ui::swipe(
                    &mut ph,
                    (v[0] as i32, v[1] as i32),
                    (v[2] as i32, v[3] as i32),
                );
            }
            0
        }
        ["keyevent", keys @ ..] if !keys.is_empty() => {
            for k in keys.iter().filter(|k| !k.starts_with("--")) {
                let Some(code) = keycode(k) else {
                    w(err, &format!("Error: Unknown keycode: {k}\n"));
                    return 1;
                };
                match code {
                    224 => ph.awake = true,
                    223 => {
                        ph.awake = false;
                        ph.locked = true;
                    }
                    26 => {
                        ph.awake = !ph.awake;
                        if !ph.awake {
                            ph.locked = true;
                        }
                    }
                    82 if ph.awake => {
                        ph.locked = false;
                    }
                    3 if ph.awake && !ph.locked => ph.fg = Foreground::Launcher,
                    4 if ph.awake && !ph.locked && super::super::dialog::visible(&ph).is_some() => {
                        super::super::dialog::back(&mut ph);
                    }
                    4 if ph.awake && !ph.locked => {
                        if let Foreground::App(i) = ph.fg {
                            let app = &mut ph.apps[i];
                            if app.focused {
                                app.focused = false;
                            } else if matches!(app.screen, AppScreen::Chat(_)) {
                                app.screen = AppScreen::List;
                            } else {
                                ph.fg = Foreground::Launcher;
                            }
                        }
                    }
                    67 => {
                        if let Foreground::App(i) = ph.fg
                            && ph.apps[i].focused
                        {
                            ph.apps[i].draft.pop();
                        }
                    }
                    66 => type_into(&mut ph, "\n"),
                    62 => type_into(&mut ph, " "),
                    61 => type_into(&mut ph, "\t"),
                    _ => {}
                }
            }
            0
        }
        _ => usage(err),
    }
}

/// Parsed `am start`/`am broadcast` intent arguments.
#[derive(Debug, Default)]
struct Intent {
    action: Option<String>,
    data: Option<String>,
    component: Option<String>,
    package: Option<String>,
    extras: Vec<(String, String)>,
    wait: bool,
    stop: bool,
}

fn parse_intent(a: &[&str]) -> Result<Intent, String> {
    let mut it = Intent::default();
    let mut i = 0;
    while i < a.len() {
        let next = |i: usize| {
            a.get(i + 1)
                .map(|s| s.to_string())
                .ok_or_else(|| format!("Error: No value for argument: {}", a[i]))
        };
        match a[i] {
            "-a" => {
                it.action = Some(next(i)?);
                i += 1;
            }
            "-d" => {
                it.data = Some(next(i)?);
                i += 1;
            }
            "-n" => {
                it.component = Some(next(i)?);
                i += 1;
            }
            "-p" => {
                it.package = Some(next(i)?);
                i += 1;
            }
            "-c" | "-f" | "-t" | "--user" | "-e" | "--ei" | "--ez" => {
                i += if a[i] == "-e" || a[i] == "--ei" || a[i] == "--ez" {
                    2
                } else {
                    1
                };
            }
            "--es" => {
                let k = next(i)?;
                let v = a
                    .get(i + 2)
                    .map(|s| s.to_string())
                    .ok_or("Error: No value for argument: --es")?;
                it.extras.push((k, v));
                i += 2;
            }
            "-W" => it.wait = true,
            "-S" => it.stop = true,
            "--activity-clear-top"
            | "--activity-new-task"
            | "--activity-single-top"
            | "-R"
            | "-D"
            | "-N" => {}
            s if s.starts_with('-') => return Err(format!("Error: Unknown option: {s}")),
            s => {
                if s.contains('/') {
                    it.component = Some(s.to_string());
                } else {
                    it.package = Some(s.to_string());
                }
            }
        }
        i += 1;
    }
    Ok(it)
}

fn intent_desc(it: &Intent) -> String {
    let mut parts = Vec::new();
    if let Some(a) = &it.action {
        parts.push(format!("act={a}"));
    }
    if let Some(d) = &it.data {
        parts.push(format!(
            "dat={}",
            d.split_once('?').map_or(d.as_str(), |(h, _)| h)
        ));
    }
    if let Some(p) = &it.package {
        parts.push(format!("pkg={p}"));
    }
    if let Some(c) = &it.component {
        parts.push(format!("cmp={c}"));
    }
    format!("Intent {{ {} }}", parts.join(" "))
}

fn digits(s: &str) -> String {
    s.chars().filter(char::is_ascii_digit).collect()
}

fn am(sh: &Shell, a: &[&str], out: &mut Vec<u8>, err: &mut Vec<u8>) -> i32 {
    let Some(sub) = a.first() else {
        w(
            err,
            "Activity manager (activity) commands:\n  start\n  force-stop\n  broadcast\n",
        );
        return 1;
    };
    let mut ph = sh.phone();
    ph.tick();
    match *sub {
        "force-stop" | "kill" => {
            if let Some(i) = a.get(1).and_then(|p| ph.app_index(p)) {
                ph.force_stop(i);
            }
            0
        }
        "start-foreground-service" | "startservice" | "start-service" => {
            appium_location_service(&mut ph, &a[1..], out, err)
        }
        "start" | "start-activity" => am_start(ph, &a[1..], out, err),
        "broadcast" => am_broadcast(&mut ph, &a[1..], out, err),
        _ => {
            w(err, &format!("Error: Unknown command: {sub}\n"));
            1
        }
    }
}

/// `am start [-W] [-S] INTENT`: launches an app or opens a chat by deep
/// link; with `-W` waits like Android and prints the launch state.
fn am_start(
    mut ph: MutexGuard<'_, Phone>,
    a: &[&str],
    out: &mut Vec<u8>,
    err: &mut Vec<u8>,
) -> i32 {
    let it = match parse_intent(a) {
        Ok(it) => it,
        Err(e) => {
            w(err, &format!("{e}\n"));
            return 1;
        }
    };
    w(out, &format!("Starting: {}\n", intent_desc(&it)));
    if !ph.awake {
        // Activities start behind the keyguard; nothing visible.
    }
    let target = intent_target(&ph, &it);
    let Some((idx, account)) = target else {
        if let Some(c) = &it.component {
            w(
                err,
                &format!("Error type 3\nError: Activity class {{{c}}} does not exist.\n"),
            );
        } else {
            w(
                err,
                &format!(
                    "Error: Activity not started, unable to resolve {}\n",
                    intent_desc(&it)
                ),
            );
        }
        return 1;
    };
    if it.stop {
        ph.force_stop(idx);
    }
    let cold = !ph.apps[idx].running;
    match account {
        Some(acc) => ph.open_chat(idx, &acc),
        None => ph.launch(idx),
    }
    if it.wait {
        let ms = if cold { ph.cfg.cold_start_ms } else { 80 };
        let act = ph.apps[idx].def.activity.to_string();
        drop(ph);
        std::thread::sleep(Duration::from_millis(ms.min(5000)));
        w(
            out,
            &format!(
                "Status: ok\nLaunchState: {}\nActivity: {act}\nTotalTime: {ms}\nWaitTime: {}\nComplete\n",
                if cold { "COLD" } else { "HOT" },
                ms + 4
            ),
        );
    }
    0
}

/// `am broadcast INTENT`: ADBKeyboard's text intents type into the focused
/// field while it is the input method.
fn am_broadcast(ph: &mut Phone, a: &[&str], out: &mut Vec<u8>, err: &mut Vec<u8>) -> i32 {
    let it = match parse_intent(a) {
        Ok(it) => it,
        Err(e) => {
            w(err, &format!("{e}\n"));
            return 1;
        }
    };
    w(
        out,
        &format!(
            "Broadcasting: Intent {{ act={} flg=0x400000{} }}\n",
            it.action.clone().unwrap_or_default(),
            if it.extras.is_empty() {
                ""
            } else {
                " (has extras)"
            }
        ),
    );
    if ph.ime == ADB_IME {
        let msg = it
            .extras
            .iter()
            .find(|(k, _)| k == "msg")
            .map(|(_, v)| v.clone());
        match (it.action.as_deref(), msg) {
            (Some("ADB_INPUT_TEXT"), Some(m)) => type_into(ph, &m),
            (Some("ADB_INPUT_B64"), Some(m)) => {
                if let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(m.trim()) {
                    type_into(ph, &String::from_utf8_lossy(&bytes));
                }
            }
            (Some("ADB_CLEAR_TEXT"), _) => {
                if let Foreground::App(i) = ph.fg
                    && ph.apps[i].focused
                {
                    ph.apps[i].draft.clear();
                }
            }
            _ => {}
        }
    }
    w(out, "Broadcast completed: result=0\n");
    0
}

/// The app (index) and, for a deep link, the chat's account an intent
/// opens: a link is matched against each app's link prefixes (within the
/// intent's package, when it names one) and its account against the app's
/// contacts (by digits or case-insensitively); else the package's app.
fn intent_target(ph: &Phone, it: &Intent) -> Option<(usize, Option<String>)> {
    let pkg = it
        .component
        .as_ref()
        .map(|c| c.split('/').next().unwrap_or("").to_string())
        .or(it.package.clone());
    if let Some(data) = &it.data {
        APPS.iter().find_map(|def| {
            if pkg.as_ref().is_some_and(|p| p != def.package) {
                return None;
            }
            let rest = def.links.iter().find_map(|l| data.strip_prefix(l))?;
            let idx = ph.app_index(def.package)?;
            let raw = rest.split(['&', '#']).next().unwrap_or("").to_string();
            let app = &ph.apps[idx];
            let account = app
                .contacts
                .iter()
                .map(|(_, acc)| acc.clone())
                .find(|acc| {
                    (!digits(acc).is_empty() && digits(acc) == digits(&raw))
                        || acc.eq_ignore_ascii_case(&raw)
                })
                .unwrap_or(raw);
            Some((idx, Some(account)))
        })
    } else {
        pkg.as_ref()
            .and_then(|p| ph.app_index(p))
            .map(|i| (i, None))
    }
}

fn monkey(sh: &Shell, a: &[&str], out: &mut Vec<u8>, err: &mut Vec<u8>) -> i32 {
    let pkg = a.windows(2).find(|p| p[0] == "-p").map(|p| p[1]);
    let mut ph = sh.phone();
    match pkg.and_then(|p| ph.app_index(p)) {
        Some(i) => {
            ph.launch(i);
            w(out, "  bash arg: -p\n  bash arg: ");
            w(out, pkg.unwrap_or(""));
            w(
                out,
                "\n  bash arg: -c\n  bash arg: android.intent.category.LAUNCHER\n  bash arg: 1\nargs: [-p, ",
            );
            w(out, pkg.unwrap_or(""));
            w(
                out,
                ", -c, android.intent.category.LAUNCHER, 1]\nEvents injected: 1\n## Network stats: elapsed time=21ms (0ms mobile, 0ms wifi, 21ms not connected)\n",
            );
            0
        }
        None => {
            w(err, "** No activities found to run, monkey aborted.\n");
            252
        }
    }
}

fn list_packages(ph: &Phone, a: &[&str], out: &mut Vec<u8>) {
    let third = a.contains(&"-3");
    let filter = a
        .iter()
        .find(|s| !s.starts_with('-') && **s != "list" && **s != "packages");
    let mut pkgs: Vec<String> = Vec::new();
    if !third {
        pkgs.extend(SYSTEM_PACKAGES.iter().map(|s| s.to_string()));
    }
    pkgs.extend(ph.apps.iter().map(|a| a.def.package.to_string()));
    // Installed by the user, so listed with `-3` too.
    for (on, p) in [
        (ph.cfg.adb_keyboard, ADB_KEYBOARD_PACKAGE),
        (ph.cfg.appium_settings, APPIUM_SETTINGS),
    ] {
        if on {
            pkgs.push(p.to_string());
        }
    }
    for p in pkgs.iter().filter(|p| filter.is_none_or(|f| p.contains(f))) {
        w(out, &format!("package:{p}\n"));
    }
}

/// The Appium Settings package, installed when the phone's config says so.
const APPIUM_SETTINGS: &str = "io.appium.settings";

/// A package on the phone: a simulated app, a system package or Appium
/// Settings.
fn has_package(ph: &Phone, p: &str) -> bool {
    ph.app_index(p).is_some()
        || SYSTEM_PACKAGES.contains(&p)
        || (ph.cfg.appium_settings && p == APPIUM_SETTINGS)
        || (ph.cfg.adb_keyboard && p == ADB_KEYBOARD_PACKAGE)
}

/// Appium Settings' `LocationService` (github.com/appium/io.appium.settings):
/// started with `--es latitude`/`--es longitude`, it sets the `gps` test
/// provider when the app holds the `MOCK_LOCATION` op. Any other service is
/// not found, as `am` says for an unknown component.
fn appium_location_service(
    ph: &mut Phone,
    a: &[&str],
    out: &mut Vec<u8>,
    err: &mut Vec<u8>,
) -> i32 {
    let comp = a.windows(2).find(|p| p[0] == "-n").map(|p| p[1]);
    let extra = |k: &str| {
        a.windows(3)
            .find(|p| p[0] == "--es" && p[1] == k)
            .and_then(|p| p[2].parse::<f64>().ok())
    };
    let ours = comp == Some("io.appium.settings/.LocationService");
    if !ours || !has_package(ph, APPIUM_SETTINGS) {
        w(err, "Error: Not found; no service started.\n");
        return 255;
    }
    w(
        out,
        "Starting service: Intent { cmp=io.appium.settings/.LocationService (has extras) }\n",
    );
    let allowed = ph
        .appops
        .get(&(APPIUM_SETTINGS.to_string(), "MOCK_LOCATION".to_string()))
        .is_some_and(|m| m == "allow");
    if let (true, Some(lat), Some(lon)) = (allowed, extra("latitude"), extra("longitude")) {
        ph.settings
            .insert("secure location_mode".into(), "3".into());
        ph.test_providers.insert("gps".into(), Some((lat, lon)));
    }
    0
}

fn pm(sh: &Shell, a: &[&str], out: &mut Vec<u8>, err: &mut Vec<u8>) -> i32 {
    let ph = sh.phone();
    match a {
        ["list", "packages", ..] => {
            list_packages(&ph, a, out);
            0
        }
        ["path", p] => match has_package(&ph, p).then_some(()) {
            Some(()) => {
                w(
                    out,
                    &format!("package:/data/app/~~Zm9v{p}==/{p}-YmFy==/base.apk\n"),
                );
                0
            }
            None => 1,
        },
        _ => {
            w(
                err,
                "usage: pm list packages [-3] [FILTER]\n       pm path PACKAGE\n",
            );
            1
        }
    }
}

fn cmd(sh: &Shell, a: &[&str], out: &mut Vec<u8>, err: &mut Vec<u8>) -> i32 {
    match a {
        ["package", rest @ ..] => pm(sh, rest, out, err),
        ["wifi", "status"] => {
            let ph = sh.phone();
            if ph.settings.get("global wifi_on").map(String::as_str) == Some("1") {
                w(
                    out,
                    &format!(
                        "Wifi is enabled\nWifi scanning is always available\nWifi is connected to \"{}\"\n",
                        ph.cfg.wifi_ssid
                    ),
                );
            } else {
                w(out, "Wifi is disabled\n");
            }
            0
        }
        ["location", rest @ ..] => location(sh, rest, out, err),
        [] => {
            w(
                err,
                "cmd: No service specified; use -l to list all running services.\n",
            );
            1
        }
        [svc, ..] => {
            w(err, &format!("cmd: Can't find service: {svc}\n"));
            20
        }
    }
}

fn location(sh: &Shell, a: &[&str], out: &mut Vec<u8>, err: &mut Vec<u8>) -> i32 {
    let mut ph = sh.phone();
    if ph.cfg.sdk < 31 {
        // The location service has shell commands from Android 12 on (AOSP
        // LocationShellCommand); before, `cmd location` fails. The wording
        // is Binder's default `onShellCommand`, not checked on a phone.
        w(err, "No shell command implementation.\n");
        return 255;
    }
    let mock_ok = sh.uid == 0
        || ph
            .appops
            .get(&("com.android.shell".to_string(), "MOCK_LOCATION".to_string()))
            .is_some_and(|m| m == "allow");
    let deny = |err: &mut Vec<u8>| {
        w(
            err,
            "Exception occurred while executing 'providers':\njava.lang.SecurityException: com.android.shell from uid 2000 not allowed to perform MOCK_LOCATION\n",
        );
        255
    };
    match a {
        ["is-location-enabled", ..] => {
            let on = ph
                .settings
                .get("secure location_mode")
                .is_some_and(|m| m != "0");
            w(out, if on { "true\n" } else { "false\n" });
            0
        }
        ["set-location-enabled", v, ..] => {
            ph.settings.insert(
                "secure location_mode".into(),
                if *v == "true" { "3" } else { "0" }.into(),
            );
            0
        }
        ["providers", "add-test-provider", name, ..] => {
            if !mock_ok {
                return deny(err);
            }
            ph.test_providers.entry(name.to_string()).or_insert(None);
            0
        }
        ["providers", "remove-test-provider", name, ..] => {
            ph.test_providers.remove(*name);
            0
        }
        ["providers", "set-test-provider-enabled", name, _] => {
            if !mock_ok {
                return deny(err);
            }
            if !ph.test_providers.contains_key(*name) {
                w(
                    err,
                    &format!(
                        "Exception occurred while executing 'providers':\njava.lang.IllegalArgumentException: provider \"{name}\" unknown\n"
                    ),
                );
                return 255;
            }
            0
        }
        ["providers", "set-test-provider-location", name, rest @ ..] => {
            if !mock_ok {
                return deny(err);
            }
            let loc = rest
                .windows(2)
                .find(|p| p[0] == "--location")
                .and_then(|p| {
                    let (la, lo) = p[1].split_once(',')?;
                    Some((
                        la.trim().parse::<f64>().ok()?,
                        lo.trim().parse::<f64>().ok()?,
                    ))
                });
            match (ph.test_providers.get_mut(*name), loc) {
                (Some(slot), Some(l))
                    if (-90.0..=90.0).contains(&l.0) && (-180.0..=180.0).contains(&l.1) =>
                {
                    *slot = Some(l);
                    0
                }
                (None, _) => {
                    w(
                        err,
                        &format!(
                            "Exception occurred while executing 'providers':\njava.lang.IllegalArgumentException: provider \"{name}\" unknown\n"
                        ),
                    );
                    255
                }
                _ => {
                    w(err, "Error: --location LAT,LNG required\n");
                    1
                }
            }
        }
        _ => {
            w(
                err,
                "Location service commands:\n  is-location-enabled\n  set-location-enabled true|false\n  providers add-test-provider|remove-test-provider|set-test-provider-enabled|set-test-provider-location\n",
            );
            1
        }
    }
}

fn appops(sh: &Shell, a: &[&str], out: &mut Vec<u8>, err: &mut Vec<u8>) -> i32 {
    let a: Vec<&str> = {
        let mut v = Vec::new();
        let mut skip = false;
        for s in a {
            if skip {
                skip = false;
                continue;
            }
            if *s == "--user" || *s == "--uid" {
                skip = *s == "--user";
                continue;
            }
            v.push(*s);
        }
        v
    };
    let op_name = |s: &str| s.trim_start_matches("android:").to_uppercase();
    let mut ph = sh.phone();
    let installed = has_package;
    match a.as_slice() {
        ["set", pkg, op, mode] => {
            if !installed(&ph, pkg) {
                w(err, &format!("Error: Unknown package: {pkg}\n"));
                return 255;
            }
            if !["allow", "deny", "ignore", "default", "foreground"].contains(mode) {
                w(err, &format!("Error: Mode {mode} is not valid\n"));
                return 255;
            }
            ph.appops
                .insert((pkg.to_string(), op_name(op)), mode.to_string());
            0
        }
        ["get", pkg, rest @ ..] => {
            if !installed(&ph, pkg) {
                w(err, &format!("Error: Unknown package: {pkg}\n"));
                return 255;
            }
            let want = rest.first().map(|o| op_name(o));
            let mut any = false;
            for ((p, op), mode) in &ph.appops {
                if p == pkg && want.as_ref().is_none_or(|w| w == op) {
                    w(out, &format!("{op}: {mode}\n"));
                    any = true;
                }
            }
            if !any {
                w(out, "No operations.\n");
            }
            0
        }
        _ => {
            w(
                err,
                "AppOps service (appops) commands:\n  set [--user <USER_ID>] <PACKAGE | UID> <OP> <MODE>\n  get [--user <USER_ID>] <PACKAGE | UID> [<OP>]\n",
            );
            1
        }
    }
}

fn settings(sh: &Shell, a: &[&str], out: &mut Vec<u8>, err: &mut Vec<u8>) -> i32 {
    let mut ph = sh.phone();
    let ns_ok = |ns: &str| ["system", "secure", "global"].contains(&ns);
    match a {
        ["get", ns, key] if ns_ok(ns) => {
            let v = ph
                .settings
                .get(&format!("{ns} {key}"))
                .cloned()
                .unwrap_or_else(|| "null".into());
            w(out, &format!("{v}\n"));
            0
        }
        ["put", ns, key, value, ..] if ns_ok(ns) => {
            ph.settings.insert(format!("{ns} {key}"), value.to_string());
            0
        }
        ["delete", ns, key] if ns_ok(ns) => {
            ph.settings.remove(&format!("{ns} {key}"));
            w(out, "Deleted 1 rows\n");
            0
        }
        ["list", ns] if ns_ok(ns) => {
            let prefix = format!("{ns} ");
            for (k, v) in ph.settings.iter().filter(|(k, _)| k.starts_with(&prefix)) {
                w(out, &format!("{}={v}\n", &k[prefix.len()..]));
            }
            0
        }
        _ => {
            w(
                err,
                "usage:  settings [--user <USER_ID> | current] get namespace key\n        settings [--user <USER_ID> | current] put namespace key value\n        settings [--user <USER_ID> | current] delete namespace key\n        settings [--user <USER_ID> | current] list namespace\n\n'namespace' is one of {system, secure, global}, case-insensitive\n",
            );
            1
        }
    }
}

fn ip(sh: &Shell, a: &[&str], out: &mut Vec<u8>, err: &mut Vec<u8>) -> i32 {
    let ph = sh.phone();
    let wlan = ph.cfg.wlan_addr.clone();
    let gw = ph.cfg.wlan_gateway.clone();
    let a: Vec<&str> = a
        .iter()
        .copied()
        .filter(|s| *s != "-4" && *s != "-o")
        .collect();
    let real = |args: &[&str]| {
        let argv: Vec<String> = ["-4"].iter().chain(args).map(|s| s.to_string()).collect();
        sh.net.ip(&argv)
    };
    match a.first().copied() {
        Some(obj @ ("addr" | "a" | "address" | "route" | "r")) if ph.cfg.netns.is_some() => {
            drop(ph);
            match real(&[obj, "show"]) {
                Some(text) => {
                    w(out, &text);
                    0
                }
                None => {
                    w(err, "RTNETLINK answers: Operation not permitted\n");
                    2
                }
            }
        }
        Some("addr" | "a" | "address") => {
            w(
                out,
                "1: lo: <LOOPBACK,UP,LOWER_UP> mtu 65536 qdisc noqueue state UNKNOWN group default qlen 1000\n    link/loopback 00:00:00:00:00:00 brd 00:00:00:00:00:00\n    inet 127.0.0.1/8 scope host lo\n       valid_lft forever preferred_lft forever\n",
            );
            w(
                out,
                &format!(
                    "3: wlan0: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc mq state UP group default qlen 3000\n    link/ether 02:00:00:{:02x}:{:02x}:01 brd ff:ff:ff:ff:ff:ff\n    inet {wlan} brd + scope global wlan0\n       valid_lft forever preferred_lft forever\n",
                    ph.cfg.width % 251,
                    ph.cfg.height % 251
                ),
            );
            0
        }
        Some("route" | "r") => {
            let net = wlan.split('/').next().unwrap_or("");
            w(
                out,
                &format!(
                    "default via {gw} dev wlan0 proto dhcp\n{wlan} dev wlan0 proto kernel scope link src {net}\n"
                ),
            );
            0
        }
        _ => {
            w(
                err,
                "Usage: ip [ OPTIONS ] OBJECT { COMMAND | help }\nwhere  OBJECT := { address | route }\n",
            );
            255
        }
    }
}

fn ping(sh: &Shell, a: &[&str], out: &mut Vec<u8>, err: &mut Vec<u8>) -> i32 {
    let mut count = 4u32;
    let mut host = None;
    let mut i = 0;
    while i < a.len() {
        match a[i] {
            "-c" => {
                count = a
                    .get(i + 1)
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(4)
                    .clamp(1, 20);
                i += 1;
            }
            "-W" | "-w" | "-i" | "-s" => i += 1,
            s if !s.starts_with('-') => host = Some(s),
            _ => {}
        }
        i += 1;
    }
    let Some(host) = host else {
        w(err, "Usage: ping [-c count] host\n");
        return 2;
    };
    let ip = match host.parse::<std::net::IpAddr>() {
        Ok(ip) => ip,
        Err(_) => match sh.net.resolve(host) {
            Some(ip) => ip,
            None => {
                w(err, &format!("ping: unknown host {host}\n"));
                return 2;
            }
        },
    };
    w(out, &format!("PING {host} ({ip}) 56(84) bytes of data.\n"));
    let mut times = Vec::new();
    for seq in 1..=count {
        if let Some(ms) = sh.net.probe(ip) {
            w(
                out,
                &format!("64 bytes from {ip}: icmp_seq={seq} ttl=57 time={ms:.1} ms\n"),
            );
            times.push(ms);
        }
        if seq < count {
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    let loss = 100 - times.len() as u32 * 100 / count;
    w(
        out,
        &format!(
            "\n--- {host} ping statistics ---\n{count} packets transmitted, {} received, {loss}% packet loss, time {}ms\n",
            times.len(),
            (count - 1) * 200
        ),
    );
    if times.is_empty() {
        return 1;
    }
    let min = times.iter().copied().fold(f64::MAX, f64::min);
    let max = times.iter().copied().fold(0.0, f64::max);
    let avg = times.iter().sum::<f64>() / times.len() as f64;
    w(
        out,
        &format!(
            "rtt min/avg/max/mdev = {min:.3}/{avg:.3}/{max:.3}/{:.3} ms\n",
            (max - min) / 2.0
        ),
    );
    0
}

fn dumpsys(sh: &Shell, a: &[&str], out: &mut Vec<u8>, err: &mut Vec<u8>) -> i32 {
    let mut ph = sh.phone();
    ph.tick();
    match a.first().copied() {
        Some("notification") => {
            let noredact = a.contains(&"--noredact");
            let sdk = ph.cfg.sdk;
            let now = std::time::Instant::now();
            let posted: Vec<_> = ph
                .notifications
                .iter()
                .filter(|n| n.shown <= now)
                .cloned()
                .collect();
            w(
                out,
                &super::super::notifdump::render(sdk, &posted, noredact),
            );
            0
        }
        Some("window") => {
            let focus = match ph.fg {
                _ if ph.locked => "NotificationShade".to_string(),
                Foreground::Launcher => "com.google.android.apps.nexuslauncher/com.google.android.apps.nexuslauncher.NexusLauncherActivity".into(),
                Foreground::App(i) => ph.apps[i].def.activity.to_string(),
            };
            let state = super::super::windowdump::WindowState {
                sdk: ph.cfg.sdk,
                size: (ph.cfg.width, ph.cfg.height, ph.cfg.density),
                focus: &focus,
                awake: ph.awake,
                locked: ph.locked,
            };
            w(out, &super::super::windowdump::render(&state));
            0
        }
        Some("power") => {
            w(
                out,
                &format!(
                    "POWER MANAGER (dumpsys power)\n  mWakefulness={}\n  mIsPowered=true\n  mStayOn=false\n  mHoldingDisplaySuspendBlocker={}\n",
                    if ph.awake { "Awake" } else { "Asleep" },
                    ph.awake
                ),
            );
            0
        }
        Some("battery") => {
            w(
                out,
                &format!(
                    "Current Battery Service state:\n  AC powered: false\n  USB powered: true\n  Wireless powered: false\n  Max charging current: 500000\n  Max charging voltage: 5000000\n  Charge counter: 3215000\n  status: 2\n  health: 2\n  present: true\n  level: {}\n  scale: 100\n  voltage: 4123\n  temperature: 281\n  technology: Li-ion\n",
                    ph.cfg.battery
                ),
            );
            0
        }
        Some("wifi") => {
            let on = ph.settings.get("global wifi_on").map(String::as_str) == Some("1");
            w(
                out,
                &format!(
                    "Wi-Fi is {}\nmWifiInfo SSID: \"{}\", BSSID: 02:00:00:00:00:01, MAC: 02:00:00:00:00:00, Supplicant state: {}, Wi-Fi standard: 5, RSSI: -52, Link speed: 433Mbps\n",
                    if on { "enabled" } else { "disabled" },
                    ph.cfg.wifi_ssid,
                    if on { "COMPLETED" } else { "DISCONNECTED" }
                ),
            );
            0
        }
        Some("package") => {
            let Some(pkg) = a.get(1) else {
                w(err, "dumpsys package: missing package\n");
                return 1;
            };
            match ph.app_index(pkg) {
                Some(i) => {
                    let app = &ph.apps[i];
                    let v = app.var();
                    w(
                        out,
                        &format!(
                            "Packages:\n  Package [{pkg}] (6f2c1a9):\n    userId={}\n    pkg=Package{{3b1f2e {pkg}}}\n    codePath=/data/app/~~Zm9v{pkg}==/{pkg}-YmFy==\n    versionCode={} minSdk=21 targetSdk=33\n    versionName={}\n    flags=[ HAS_CODE ALLOW_CLEAR_USER_DATA ALLOW_BACKUP ]\n    timeStamp=2024-01-10 12:00:00\n    installerPackageName=com.android.vending\n    User 0: ceDataInode=12345 installed=true hidden=false suspended=false stopped={} notLaunched=false enabled=0\n",
                            app.uid, v.version_code, v.version_name, !app.running
                        ),
                    );
                }
                None => w(
                    out,
                    &format!("Dexopt state:\n  Unable to find package: {pkg}\n"),
                ),
            }
            0
        }
        Some("activity") => {
            let act = match ph.fg {
                Foreground::Launcher => {
                    "com.google.android.apps.nexuslauncher/.NexusLauncherActivity".to_string()
                }
                Foreground::App(i) => ph.apps[i].def.activity.to_string(),
            };
            w(
                out,
                &format!(
                    "ACTIVITY MANAGER ACTIVITIES (dumpsys activity activities)\n  mResumedActivity: ActivityRecord{{7a1b2c u0 {act} t42}}\n"
                ),
            );
            0
        }
        Some("location") => {
            w(out, "Location Manager State:\n  Location Providers:\n");
            for (name, loc) in &ph.test_providers {
                w(
                    out,
                    &format!("    {name} provider:\n      mock provider: true\n"),
                );
                if let Some((la, lo)) = loc {
                    w(
                        out,
                        &format!(
                            "      last location=Location[{name} {la:.6},{lo:.6} hAcc=5.0 et=+1s0ms mock]\n"
                        ),
                    );
                }
            }
            0
        }
        Some("input_method") => {
            w(
                out,
                &format!(
                    "Current Input Method Manager state:\n  mCurMethodId={}\n",
                    ph.ime
                ),
            );
            0
        }
        Some(s) => {
            w(err, &format!("Can't find service: {s}\n"));
            0
        }
        None => {
            w(
                out,
                "Currently running services:\n  activity\n  battery\n  input_method\n  location\n  notification\n  package\n  power\n  wifi\n  window\n",
            );
            0
        }
    }
}

/// Waits like `uiautomator dump` on a phone (start-up 1–3 s, then until the
/// screen has been unchanged for `idle_ms`) and returns the screen then, or
/// `None` when the dump gives up (`idle_failure`, after `idle_timeout_ms`).
/// The phone is not locked while waiting.
fn settle_for_dump(sh: &Shell) -> Option<Option<ui::Node>> {
    let (latency, fails, cfg) = {
        let mut ph = sh.phone();
        let c = ph.cfg.ui_dump.clone();
        let span = c.max_ms.saturating_sub(c.min_ms) as f64;
        let latency = c.min_ms + (ph.random() * span) as u64;
        let fails = ph.random() < c.idle_failure;
        (latency, fails, c)
    };
    if fails {
        std::thread::sleep(Duration::from_millis(cfg.idle_timeout_ms.max(latency)));
        return None;
    }
    std::thread::sleep(Duration::from_millis(latency));
    let idle = Duration::from_millis(cfg.idle_ms);
    let give_up = std::time::Instant::now() + Duration::from_millis(cfg.idle_timeout_ms);
    loop {
        let wait = {
            let mut ph = sh.phone();
            ph.tick();
            let quiet = ph.ui_changed.elapsed();
            if quiet >= idle {
                return Some(ui::screen(&ph));
            }
            idle - quiet
        };
        if std::time::Instant::now() + wait > give_up {
            std::thread::sleep(give_up.saturating_duration_since(std::time::Instant::now()));
            return None;
        }
        std::thread::sleep(wait);
    }
}

fn uiautomator(sh: &Shell, a: &[&str], out: &mut Vec<u8>, err: &mut Vec<u8>) -> i32 {
    if a.first() != Some(&"dump") {
        w(
            err,
            "Usage: uiautomator <subcommand> [options]\n\nAvailable subcommands:\n\nhelp: displays help message\n\ndump: creates an XML dump of current UI hierarchy\n",
        );
        return 1;
    }
    let path = a[1..]
        .iter()
        .find(|s| !s.starts_with('-'))
        .copied()
        .unwrap_or("/sdcard/window_dump.xml")
        .to_string();
    let Some(screen) = settle_for_dump(sh) else {
        // DumpCommand.java: waitForIdle timed out; stderr, exit status 0,
        // and the previous dump file is left where it was.
        w(err, "ERROR: could not get idle state.\n");
        return 0;
    };
    let Some(tree) = screen else {
        w(
            err,
            "ERROR: null root node returned by UiTestAutomationBridge.\n",
        );
        return 0;
    };
    let root = sh.uid == 0;
    let mut ph = sh.phone();
    let xml = ui::to_xml(&tree);
    if path == "/dev/tty" || path == "/dev/stdout" {
        w(out, &xml);
    } else {
        let now = ph.now_secs();
        if let Err(e) = ph.fs.write(&path, xml.into_bytes(), 0o660, now, root) {
            w(err, &format!("ERROR: could not write {path}: {e}\n"));
            return 1;
        }
    }
    w(out, &format!("UI hierchary dumped to: {path}\n"));
    0
}

fn screenrecord(sh: &Shell, a: &[&str], out: &mut Vec<u8>, err: &mut Vec<u8>) -> i32 {
    let mut limit = 180u32;
    let mut path = None;
    let mut i = 0;
    while i < a.len() {
        match a[i] {
            "--time-limit" => {
                limit = match a.get(i + 1).and_then(|s| s.parse::<u32>().ok()) {
                    Some(n) if (1..=180).contains(&n) => n,
                    _ => {
                        w(err, "Time limit must be between 1 and 180 seconds\n");
                        return 2;
                    }
                };
                i += 1;
            }
            "--size" | "--bit-rate" | "--bugreport" => i += usize::from(a[i] != "--bugreport"),
            "--verbose" => {}
            s if s.starts_with('-') => {
                w(err, &format!("Unknown option '{s}'\n"));
                return 2;
            }
            s => path = Some(s.to_string()),
        }
        i += 1;
    }
    let Some(path) = path else {
        w(err, "Must specify output file (see --help).\n");
        return 2;
    };
    if !path.ends_with(".mp4") {
        w(err, "Unknown file extension; must be .mp4\n");
        return 2;
    }
    let root = sh.uid == 0;
    let key = normalize(&path);
    let (wd, ht) = {
        let mut ph = sh.phone();
        let now = ph.now_secs();
        // The file exists (empty) while recording.
        if let Err(e) = ph.fs.write(&path, Vec::new(), 0o660, now, root) {
            w(err, &format!("Unable to open '{path}': {e}\n"));
            return 1;
        }
        let end = std::time::Instant::now() + Duration::from_secs(u64::from(limit));
        ph.recordings.push((key.clone(), end));
        (ph.cfg.width, ph.cfg.height)
    };
    // A frame a second until the time limit or `pkill screenrecord`.
    let mut frames: Vec<(crate::phone::screen::Frame, u32)> = Vec::new();
    let mut last = std::time::Instant::now();
    loop {
        let (frame, end) = {
            let mut ph = sh.phone();
            ph.tick();
            let end = ph.recordings.iter().find(|(p, _)| *p == key).map(|r| r.1);
            let tree = ui::screen(&ph);
            (crate::phone::screen::render(tree.as_ref(), wd, ht), end)
        };
        let now = std::time::Instant::now();
        if let Some(prev) = frames.last_mut() {
            prev.1 = now.duration_since(last).as_millis().max(1) as u32;
        }
        last = now;
        if end.is_none_or(|e| e <= now) {
            break;
        }
        frames.push((frame, 1));
        // Next frame in a second; a stop request is noticed within 50 ms.
        let next = now + Duration::from_secs(1);
        loop {
            let t = std::time::Instant::now();
            let end = {
                let mut ph = sh.phone();
                ph.tick();
                ph.recordings.iter().find(|(p, _)| *p == key).map(|r| r.1)
            };
            if t >= next || end.is_none_or(|e| e <= t) {
                break;
            }
            std::thread::sleep(
                next.min(end.unwrap_or(next))
                    .saturating_duration_since(t)
                    .min(Duration::from_millis(50)),
            );
        }
    }
    let mut ph = sh.phone();
    ph.recordings.retain(|(p, _)| *p != key);
    let now = ph.now_secs();
    let _ = ph.fs.write(
        &path,
        crate::phone::screen::mp4(&frames, wd, ht),
        0o660,
        now,
        root,
    );
    let _ = out;
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn android_text_rules() {
        assert_eq!(android_input_text("a%sb").unwrap(), "a b");
        assert_eq!(android_input_text("%%s").unwrap(), "% ");
        assert_eq!(android_input_text("100%").unwrap(), "100%");
        assert_eq!(android_input_text("x%ts").unwrap(), "x%ts");
        assert!(android_input_text("grüße").is_none());
        assert!(android_input_text("日本").is_none());
    }

    #[test]
    fn civil_dates() {
        assert_eq!(civil(0), (1970, 1, 1, 0, 0, 0));
        assert_eq!(civil(1_700_000_000), (2023, 11, 14, 22, 13, 20));
        assert_eq!(civil(951_782_400), (2000, 2, 29, 0, 0, 0));
    }

    #[test]
    fn deep_links_open_the_contacts_chat() {
        use crate::phone::config::{PhoneSimConfig, SimAppConfig, SimContact};
        let mut cfg = PhoneSimConfig::new("t");
        cfg.apps.insert(
            "whatsapp".into(),
            SimAppConfig {
                variant: 0,
                account: "+490".into(),
                contacts: vec![SimContact {
                    name: "Bob".into(),
                    account: "+49 151 1".into(),
                }],
                server: None,
            },
        );
        let ph = Phone::new(cfg);
        let idx = ph.app_index("com.whatsapp").unwrap();
        let intent = |words: &str| parse_intent(&words.split(' ').collect::<Vec<_>>()).unwrap();
        // The account is matched by its digits and given as the contact has it.
        let it = intent(
            "-a android.intent.action.VIEW -d https://api.whatsapp.com/send?phone=491511&text=x",
        );
        assert_eq!(
            intent_target(&ph, &it),
            Some((idx, Some("+49 151 1".into())))
        );
        // An unknown account is opened as given.
        let it = intent("-d whatsapp://send?phone=4977#x");
        assert_eq!(intent_target(&ph, &it), Some((idx, Some("4977".into()))));
        // A package alone launches the app; another package's link nothing.
        assert_eq!(
            intent_target(&ph, &intent("-p com.whatsapp")),
            Some((idx, None))
        );
        let it = intent("-p org.thoughtcrime.securesms -d whatsapp://send?phone=1");
        assert_eq!(intent_target(&ph, &it), None);
    }
}
