//! The `sync:` service: STAT, LIST, SEND, RECV, QUIT (v1 protocol, since the
//! simulator advertises neither `stat_v2` nor `ls_v2`).

use super::adbd::StreamIo;
use super::state::{Phone, normalize};
use std::sync::{Arc, Mutex};

const MAX_DATA: usize = 64 * 1024;

fn id(s: &[u8]) -> [u8; 4] {
    [s[0], s[1], s[2], s[3]]
}

fn le(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

async fn fill(io: &mut StreamIo, buf: &mut Vec<u8>, n: usize) -> bool {
    while buf.len() < n {
        match io.read().await {
            Some(d) => buf.extend_from_slice(&d),
            None => return false,
        }
    }
    true
}

fn fail(msg: &str) -> Vec<u8> {
    let mut v = b"FAIL".to_vec();
    v.extend_from_slice(&(msg.len() as u32).to_le_bytes());
    v.extend_from_slice(msg.as_bytes());
    v
}

/// Serves sync requests until QUIT or the host closes the stream.
pub async fn serve(io: &mut StreamIo, phone: &Arc<Mutex<Phone>>) {
    let mut buf: Vec<u8> = Vec::new();
    loop {
        if !fill(io, &mut buf, 8).await {
            return;
        }
        let (cmd, len) = (id(&buf), le(&buf[4..8]) as usize);
        buf.drain(..8);
        if &cmd == b"QUIT" {
            return;
        }
        if len > 4096 {
            io.write(&fail("path too long")).await;
            return;
        }
        if !fill(io, &mut buf, len).await {
            return;
        }
        let arg = String::from_utf8_lossy(&buf[..len]).into_owned();
        buf.drain(..len);
        let reply = match &cmd {
            b"STAT" => {
                let ph = phone.lock().unwrap_or_else(|e| e.into_inner());
                let mut v = b"STAT".to_vec();
                let (mode, size, mtime) = ph
                    .fs
                    .get(&arg)
                    .map(|e| (e.mode, e.data.len() as u32, e.mtime))
                    .unwrap_or((0, 0, 0));
                for x in [mode, size, mtime] {
                    v.extend_from_slice(&x.to_le_bytes());
                }
                v
            }
            b"LIST" => {
                let ph = phone.lock().unwrap_or_else(|e| e.into_inner());
                let mut v = Vec::new();
                let dent = |v: &mut Vec<u8>, name: &str, mode: u32, size: u32, mtime: u32| {
                    v.extend_from_slice(b"DENT");
                    for x in [mode, size, mtime, name.len() as u32] {
                        v.extend_from_slice(&x.to_le_bytes());
                    }
                    v.extend_from_slice(name.as_bytes());
                };
                if let (Some(dir), Some(list)) = (ph.fs.get(&arg), ph.fs.list(&arg)) {
                    dent(&mut v, ".", dir.mode, 0, dir.mtime);
                    dent(&mut v, "..", 0o040755, 0, dir.mtime);
                    for (name, e) in list {
                        dent(&mut v, &name, e.mode, e.data.len() as u32, e.mtime);
                    }
                }
                v.extend_from_slice(b"DONE");
                v.extend_from_slice(&[0u8; 16]);
                v
            }
            b"RECV" => {
                let data = {
                    let ph = phone.lock().unwrap_or_else(|e| e.into_inner());
                    match ph.fs.get(&arg) {
                        Some(e) if e.is_dir() => Err("Is a directory"),
                        Some(e)
                            if arg.starts_with("/data/")
                                && !arg.starts_with("/data/local/tmp/") =>
                        {
                            let _ = e;
                            Err("Permission denied")
                        }
                        Some(e) => Ok(e.data.clone()),
                        None => Err("No such file or directory"),
                    }
                };
                match data {
                    Err(m) => fail(&format!("open failed: {m}")),
                    Ok(data) => {
                        let mut off = 0;
                        while off < data.len() {
                            let mut n = (data.len() - off).min(MAX_DATA);
                            // adb_client ends a transfer when a payload's last
                            // 8 bytes start with DONE: never end a chunk so.
                            while n > 1 && n + 8 >= 8 && {
                                let mut p = b"DATA".to_vec();
                                p.extend_from_slice(&(n as u32).to_le_bytes());
                                p.extend_from_slice(&data[off..off + n]);
                                p.len() >= 8 && &p[p.len() - 8..p.len() - 4] == b"DONE"
                            } {
                                n -= 1;
                            }
                            let mut p = b"DATA".to_vec();
                            p.extend_from_slice(&(n as u32).to_le_bytes());
                            p.extend_from_slice(&data[off..off + n]);
                            if !io.write(&p).await {
                                return;
                            }
                            off += n;
                        }
                        let mut v = b"DONE".to_vec();
                        v.extend_from_slice(&0u32.to_le_bytes());
                        v
                    }
                }
            }
            b"SEND" => {
                let (path, mode) = match arg.rsplit_once(',') {
                    Some((p, m)) => {
                        let mode = if m.starts_with('0') {
                            u32::from_str_radix(m, 8).ok()
                        } else {
                            m.parse::<u32>().ok()
                        };
                        (p.to_string(), mode.unwrap_or(0o644))
                    }
                    None => (arg.clone(), 0o644),
                };
                let mut data = Vec::new();
                let mtime;
                loop {
                    if !fill(io, &mut buf, 8).await {
                        return;
                    }
                    let (c, n) = (id(&buf), le(&buf[4..8]) as usize);
                    buf.drain(..8);
                    match &c {
                        b"DATA" => {
                            if n > MAX_DATA || !fill(io, &mut buf, n).await {
                                return;
                            }
                            data.extend_from_slice(&buf[..n]);
                            buf.drain(..n);
                        }
                        b"DONE" => {
                            mtime = n as u32;
                            break;
                        }
                        _ => {
                            io.write(&fail("invalid sync SEND data")).await;
                            return;
                        }
                    }
                }
                let mut ph = phone.lock().unwrap_or_else(|e| e.into_inner());
                let now = if mtime == 0 { ph.now_secs() } else { mtime };
                let path = normalize(&path);
                // adbd creates missing parent directories.
                let mut cur = String::new();
                let parts: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
                for part in parts.iter().take(parts.len().saturating_sub(1)) {
                    cur.push('/');
                    cur.push_str(part);
                    if ph.fs.get(&cur).is_none() {
                        let _ = ph.fs.mkdir(&cur, now, false);
                    }
                }
                match ph.fs.write(&path, data, mode, now, false) {
                    Ok(()) => {
                        let mut v = b"OKAY".to_vec();
                        v.extend_from_slice(&0u32.to_le_bytes());
                        v
                    }
                    Err(e) => fail(&format!("couldn't create file: {e}")),
                }
            }
            _ => {
                io.write(&fail("unknown sync request")).await;
                return;
            }
        };
        let failed = reply.starts_with(b"FAIL");
        if !io.write(&reply).await || failed {
            return;
        }
    }
}
