//! The simulated phone's toybox commands and shell builtins: text and file
//! utilities (`echo`, `cat`, `rm`, `head`…), `sh -c`, `su`, properties and
//! identity, as Android's toybox and mksh answer them. The Android
//! services (`am`, `pm`, `dumpsys`, `input`…) are in [`super::cmds`].

use super::Shell;
use super::cmds::{KNOWN, w};
use crate::phone::state::normalize;
use base64::Engine;
use std::time::Duration;

/// `echo [-n] WORD…`.
pub(super) fn echo(a: &[&str], out: &mut Vec<u8>) -> i32 {
    let (nl, rest) = match a.first() {
        Some(&"-n") => (false, &a[1..]),
        _ => (true, a),
    };
    w(out, &rest.join(" "));
    if nl {
        w(out, "\n");
    }
    0
}

/// `exit [N]`: ends the shell with N (else the last status).
pub(super) fn exit(sh: &mut Shell, a: &[&str]) -> i32 {
    let code = a
        .first()
        .and_then(|s| s.parse::<i32>().ok())
        .unwrap_or(sh.status)
        & 0xff;
    sh.exit = Some(code);
    code
}

/// `export K=V…`.
pub(super) fn export(sh: &mut Shell, a: &[&str]) -> i32 {
    for kv in a {
        if let Some((k, v)) = kv.split_once('=') {
            sh.vars.insert(k.to_string(), v.to_string());
        }
    }
    0
}

/// `unset K…`.
pub(super) fn unset(sh: &mut Shell, a: &[&str]) -> i32 {
    for k in a {
        sh.vars.remove(*k);
    }
    0
}

/// `sleep SECONDS` (at most a minute).
pub(super) fn sleep(a: &[&str]) -> i32 {
    let secs: f64 = a.first().and_then(|s| s.parse().ok()).unwrap_or(0.0);
    std::thread::sleep(Duration::from_secs_f64(secs.clamp(0.0, 60.0)));
    0
}

/// `id`: the shell's or root's identity, as toybox prints it.
pub(super) fn id(sh: &mut Shell, out: &mut Vec<u8>) -> i32 {
    if sh.uid == 0 {
        w(
            out,
            "uid=0(root) gid=0(root) groups=0(root) context=u:r:su:s0\n",
        );
    } else {
        w(
            out,
            "uid=2000(shell) gid=2000(shell) groups=2000(shell),1004(input),1007(log),1011(adb),1015(sdcard_rw),1028(sdcard_r),1078(ext_data_rw),1079(ext_obb_rw),3001(net_bt_admin),3002(net_bt),3003(inet),3006(net_bw_stats),3009(readproc),3011(uhid),3012(readtracefs) context=u:r:shell:s0\n",
        );
    }
    0
}

/// `whoami`.
pub(super) fn whoami(sh: &mut Shell, out: &mut Vec<u8>) -> i32 {
    w(out, if sh.uid == 0 { "root\n" } else { "shell\n" });
    0
}

/// `uname [-a|-m]`.
pub(super) fn uname(a: &[&str], out: &mut Vec<u8>) -> i32 {
    if a.contains(&"-a") {
        w(
            out,
            "Linux localhost 5.10.157-android13-4-00001-g5d5d7b6b0f47 #1 SMP PREEMPT Tue Sep 19 20:54:22 UTC 2023 aarch64 Toybox\n",
        );
    } else if a.contains(&"-m") {
        w(out, "aarch64\n");
    } else {
        w(out, "Linux\n");
    }
    0
}

/// `getprop [NAME [DEFAULT]]`.
pub(super) fn getprop(sh: &Shell, a: &[&str], out: &mut Vec<u8>) -> i32 {
    let ph = sh.phone();
    match a.first() {
        None => {
            for (k, v) in &ph.props {
                w(out, &format!("[{k}]: [{v}]\n"));
            }
        }
        Some(k) => {
            let v = ph
                .props
                .get(*k)
                .cloned()
                .or_else(|| a.get(1).map(|s| s.to_string()))
                .unwrap_or_default();
            w(out, &format!("{v}\n"));
        }
    }
    0
}

/// `setprop NAME VALUE` (`ro.*` never; others root only, `debug.*` for all).
pub(super) fn setprop(sh: &Shell, a: &[&str], err: &mut Vec<u8>) -> i32 {
    if a.len() != 2 {
        w(err, "usage: setprop NAME VALUE\n");
        return 1;
    }
    if a[0].starts_with("ro.") || (sh.uid != 0 && !a[0].starts_with("debug.")) {
        w(
            err,
            &format!(
                "Failed to set property '{}' to '{}'.\nSee dmesg for error reason.\n",
                a[0], a[1]
            ),
        );
        return 1;
    }
    sh.phone().props.insert(a[0].to_string(), a[1].to_string());
    0
}

/// `cat [FILE…]` (stdin without files).
pub(super) fn cat(
    sh: &Shell,
    a: &[&str],
    stdin: &[u8],
    out: &mut Vec<u8>,
    err: &mut Vec<u8>,
) -> i32 {
    if a.is_empty() {
        out.extend_from_slice(stdin);
        return 0;
    }
    let ph = sh.phone();
    let mut st = 0;
    for p in a {
        match ph.fs.get(p) {
            Some(e) if e.is_dir() => {
                w(err, &format!("cat: {p}: Is a directory\n"));
                st = 1;
            }
            Some(e) => out.extend_from_slice(&e.data),
            None => {
                w(err, &format!("cat: {p}: No such file or directory\n"));
                st = 1;
            }
        }
    }
    st
}

/// `touch FILE…`.
pub(super) fn touch(sh: &mut Shell, a: &[&str], err: &mut Vec<u8>) -> i32 {
    let root = sh.uid == 0;
    let mut ph = sh.phone();
    let now = ph.now_secs();
    let mut st = 0;
    for p in a.iter().filter(|p| !p.starts_with('-')) {
        let path = normalize(p);
        let res = match ph.fs.entries.get_mut(&path) {
            Some(e) => {
                e.mtime = now;
                Ok(())
            }
            None => ph.fs.write(&path, Vec::new(), 0o660, now, root),
        };
        if let Err(e) = res {
            w(err, &format!("touch: '{p}': {e}\n"));
            st = 1;
        }
    }
    st
}

/// `rm [-f] [-r] PATH…`.
pub(super) fn rm(sh: &mut Shell, a: &[&str], err: &mut Vec<u8>) -> i32 {
    let root = sh.uid == 0;
    let force = a.iter().any(|s| s.starts_with('-') && s.contains('f'));
    let recursive = a
        .iter()
        .any(|s| s.starts_with('-') && (s.contains('r') || s.contains('R')));
    let mut ph = sh.phone();
    let mut st = 0;
    for p in a.iter().filter(|p| !p.starts_with('-')) {
        let path = normalize(p);
        if ph.fs.get(&path).is_some_and(|e| e.is_dir()) {
            if !recursive {
                w(err, &format!("rm: {p}: Is a directory\n"));
                st = 1;
                continue;
            }
            let prefix = format!("{path}/");
            let children: Vec<String> = ph
                .fs
                .entries
                .keys()
                .filter(|k| k.starts_with(&prefix))
                .cloned()
                .collect();
            for c in children {
                let _ = ph.fs.remove(&c, root);
            }
        }
        if let Err(e) = ph.fs.remove(&path, root)
            && !(force && e == crate::phone::state::FsError::NotFound)
        {
            w(err, &format!("rm: {p}: {e}\n"));
            st = 1;
        }
    }
    st
}

/// `mkdir [-p] DIR…`.
pub(super) fn mkdir(sh: &mut Shell, a: &[&str], err: &mut Vec<u8>) -> i32 {
    let root = sh.uid == 0;
    let parents = a.contains(&"-p");
    let mut ph = sh.phone();
    let now = ph.now_secs();
    let mut st = 0;
    for p in a.iter().filter(|p| !p.starts_with('-')) {
        let path = normalize(p);
        let res = if parents {
            let mut cur = String::new();
            let mut r = Ok(());
            for part in path.split('/').filter(|s| !s.is_empty()) {
                cur.push('/');
                cur.push_str(part);
                r = ph.fs.mkdir(&cur, now, root);
                if r.is_err() && ph.fs.get(&cur).is_none() {
                    break;
                }
            }
            r
        } else if ph.fs.get(&path).is_some() {
            w(err, &format!("mkdir: '{p}': File exists\n"));
            st = 1;
            continue;
        } else {
            ph.fs.mkdir(&path, now, root)
        };
        if let Err(e) = res {
            w(err, &format!("mkdir: '{p}': {e}\n"));
            st = 1;
        }
    }
    st
}

/// `head`/`tail [-n N|-N] [FILE]`.
pub(super) fn head_tail(
    sh: &Shell,
    a: &[&str],
    name: &str,
    stdin: &[u8],
    out: &mut Vec<u8>,
    err: &mut Vec<u8>,
) -> i32 {
    let mut n = 10usize;
    let mut files = Vec::new();
    let mut i = 0;
    while i < a.len() {
        if a[i] == "-n" {
            n = a.get(i + 1).and_then(|s| s.parse().ok()).unwrap_or(10);
            i += 1;
        } else if let Some(num) = a[i].strip_prefix('-').and_then(|s| s.parse().ok()) {
            n = num;
        } else {
            files.push(a[i]);
        }
        i += 1;
    }
    let data = match files.first() {
        Some(f) => match sh.phone().fs.get(f) {
            Some(e) => e.data.clone(),
            None => {
                w(err, &format!("{name}: {f}: No such file or directory\n"));
                return 1;
            }
        },
        None => stdin.to_vec(),
    };
    let text = String::from_utf8_lossy(&data);
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let pick: Vec<&str> = if name == "head" {
        lines.iter().take(n).copied().collect()
    } else {
        lines[lines.len().saturating_sub(n)..].to_vec()
    };
    w(out, &pick.concat());
    0
}

/// `wc [-c]` of stdin (lines, or bytes).
pub(super) fn wc(a: &[&str], stdin: &[u8], out: &mut Vec<u8>) -> i32 {
    let lines = stdin.iter().filter(|&&b| b == b'\n').count();
    if a.contains(&"-c") {
        w(out, &format!("{}\n", stdin.len()));
    } else {
        w(out, &format!("{lines}\n"));
    }
    0
}

/// `base64 [-d]` of stdin.
pub(super) fn base64_cmd(a: &[&str], stdin: &[u8], out: &mut Vec<u8>, err: &mut Vec<u8>) -> i32 {
    if a.contains(&"-d") {
        let clean: Vec<u8> = stdin
            .iter()
            .copied()
            .filter(|b| !b.is_ascii_whitespace())
            .collect();
        match base64::engine::general_purpose::STANDARD.decode(clean) {
            Ok(d) => {
                out.extend_from_slice(&d);
                0
            }
            Err(_) => {
                w(err, "base64: bad input\n");
                1
            }
        }
    } else {
        w(
            out,
            &format!(
                "{}\n",
                base64::engine::general_purpose::STANDARD.encode(stdin)
            ),
        );
        0
    }
}

/// `sh -c SCRIPT` or `sh` reading stdin (its variables do not leak out).
pub(super) fn sh_c(
    sh: &mut Shell,
    a: &[&str],
    stdin: &[u8],
    out: &mut Vec<u8>,
    err: &mut Vec<u8>,
) -> i32 {
    let script = match a.first() {
        Some(&"-c") => a.get(1).map(|s| s.to_string()).unwrap_or_default(),
        Some(_) => {
            w(err, "/system/bin/sh: can't open script files\n");
            return 127;
        }
        None => String::from_utf8_lossy(stdin).into_owned(),
    };
    let saved = sh.vars.clone();
    let st = sh.run_line(&script, out, err);
    sh.vars = saved;
    sh.exit = None;
    st
}

/// `su [0|root] [-c CMD | CMD…]` on a rooted phone.
pub(super) fn su(
    sh: &mut Shell,
    a: &[&str],
    stdin: &[u8],
    out: &mut Vec<u8>,
    err: &mut Vec<u8>,
) -> i32 {
    if !sh.phone().cfg.rooted {
        w(err, "/system/bin/sh: su: not found\n");
        return 127;
    }
    let line = match a {
        ["-c", cmd, ..] => cmd.to_string(),
        ["0" | "root", rest @ ..] if !rest.is_empty() => {
            if rest[0] == "-c" {
                rest.get(1).map(|s| s.to_string()).unwrap_or_default()
            } else {
                rest.iter()
                    .map(|s| matador::device::shell_quote::quote(s))
                    .collect::<Vec<_>>()
                    .join(" ")
            }
        }
        [] | ["0" | "root"] => String::from_utf8_lossy(stdin).into_owned(),
        _ => {
            w(err, "su: invalid uid/gid\n");
            return 1;
        }
    };
    let saved = sh.uid;
    sh.uid = 0;
    let st = sh.run_line(&line, out, err);
    sh.uid = saved;
    sh.exit = None;
    st
}

/// `pidof PACKAGE…`: running apps only.
pub(super) fn pidof(sh: &Shell, a: &[&str], out: &mut Vec<u8>) -> i32 {
    let ph = sh.phone();
    let mut found = false;
    for p in a {
        if let Some(i) = ph.app_index(p)
            && ph.apps[i].running
        {
            w(out, &format!("{}\n", 4000 + ph.apps[i].uid % 1000));
            found = true;
        }
    }
    i32::from(!found)
}

/// `which`/`command -v NAME…`.
pub(super) fn which(sh: &Shell, a: &[&str], out: &mut Vec<u8>) -> i32 {
    let names: Vec<&str> = a.iter().copied().filter(|s| !s.starts_with('-')).collect();
    let mut st = 0;
    for n in names {
        if KNOWN.contains(&n) && (n != "su" || sh.phone().cfg.rooted) {
            w(out, &format!("/system/bin/{n}\n"));
        } else {
            st = 1;
        }
    }
    st
}

#[cfg(test)]
mod tests {
    use super::super::{NoNet, Shell};
    use crate::phone::config::PhoneSimConfig;
    use crate::phone::state::Phone;
    use std::sync::{Arc, Mutex};

    fn shell(rooted: bool) -> Shell {
        let mut cfg = PhoneSimConfig::new("t");
        cfg.rooted = rooted;
        Shell::new(Arc::new(Mutex::new(Phone::new(cfg))), Arc::new(NoNet))
    }

    /// Runs one line; (status, stdout, stderr).
    fn run(sh: &mut Shell, line: &str) -> (i32, String, String) {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let st = sh.run_line(line, &mut out, &mut err);
        (
            st,
            String::from_utf8(out).unwrap(),
            String::from_utf8(err).unwrap(),
        )
    }

    #[test]
    fn echo_and_text_filters() {
        let mut sh = shell(false);
        assert_eq!(run(&mut sh, "echo -n a b").1, "a b");
        assert_eq!(
            run(&mut sh, "printf 'a\\nb\\nc\\n' | head -n 2").1,
            "a\nb\n"
        );
        assert_eq!(run(&mut sh, "printf 'a\\nb\\nc\\n' | tail -1").1, "c\n");
        assert_eq!(run(&mut sh, "printf 'a\\nb\\n' | wc -l").1, "2\n");
        assert_eq!(run(&mut sh, "echo hi | base64").1, "aGkK\n");
        assert_eq!(run(&mut sh, "echo aGkK | base64 -d").1, "hi\n");
        assert_eq!(run(&mut sh, "echo '!!' | base64 -d").0, 1);
    }

    #[test]
    fn files_are_created_listed_and_removed() {
        let mut sh = shell(false);
        assert_eq!(run(&mut sh, "mkdir -p /sdcard/x/y").0, 0);
        assert_eq!(
            run(&mut sh, "mkdir /sdcard/x").2,
            "mkdir: '/sdcard/x': File exists\n"
        );
        assert_eq!(
            run(&mut sh, "touch /sdcard/x/y/f && cat /sdcard/x/y/f").0,
            0
        );
        assert_eq!(
            run(&mut sh, "rm /sdcard/x").2,
            "rm: /sdcard/x: Is a directory\n"
        );
        assert_eq!(run(&mut sh, "rm -r /sdcard/x").0, 0);
        assert_eq!(
            run(&mut sh, "cat /sdcard/x/y/f").2,
            "cat: /sdcard/x/y/f: No such file or directory\n"
        );
        assert_eq!(run(&mut sh, "rm -f /sdcard/nothing").0, 0);
    }

    #[test]
    fn identity_properties_and_su() {
        let mut sh = shell(false);
        assert_eq!(run(&mut sh, "whoami").1, "shell\n");
        assert!(run(&mut sh, "id").1.starts_with("uid=2000(shell)"));
        assert_eq!(run(&mut sh, "getprop no.such.prop dflt").1, "dflt\n");
        assert_eq!(
            run(&mut sh, "setprop debug.x 1 && getprop debug.x").1,
            "1\n"
        );
        assert_eq!(run(&mut sh, "setprop persist.x 1").0, 1);
        assert_eq!(run(&mut sh, "su -c id").0, 127);
        let mut root = shell(true);
        assert_eq!(run(&mut root, "su 0 whoami").1, "root\n");
        // su's root does not outlive the command.
        assert_eq!(run(&mut root, "su -c true; whoami").1, "shell\n");
        assert_eq!(run(&mut root, "su 7 id").2, "su: invalid uid/gid\n");
    }

    #[test]
    fn sh_c_and_exit_keep_the_outer_shell() {
        let mut sh = shell(false);
        assert_eq!(
            run(&mut sh, "export A=1; sh -c 'export A=2'; echo $A").1,
            "1\n"
        );
        assert_eq!(run(&mut sh, "sh -c 'exit 3'; echo $?").1, "3\n");
        assert_eq!(run(&mut sh, "which ls su").1, "/system/bin/ls\n");
        assert_eq!(run(&mut sh, "sh script.sh").0, 127);
    }
}
