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
    let lock = || phone.lock().unwrap_or_else(|e| e.into_inner());
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
            b"STAT" => stat(&lock(), &arg),
            b"LIST" => list(&lock(), &arg),
            b"RECV" => {
                let data = recv_data(&lock(), &arg);
                match data {
                    Err(m) => fail(&format!("open failed: {m}")),
                    Ok(data) => {
                        for p in data_packets(&data) {
                            if !io.write(&p).await {
                                return;
                            }
                        }
                        let mut v = b"DONE".to_vec();
                        v.extend_from_slice(&0u32.to_le_bytes());
                        v
                    }
                }
            }
            b"SEND" => {
                let (path, mode) = send_target(&arg);
                let Some((data, mtime)) = receive_file(io, &mut buf).await else {
                    return;
                };
                store(&mut lock(), &path, data, mode, mtime)
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

/// STAT: mode, size and mtime (zeros for a missing file, as adbd does).
fn stat(ph: &Phone, arg: &str) -> Vec<u8> {
    let mut v = b"STAT".to_vec();
    let (mode, size, mtime) = ph
        .fs
        .get(arg)
        .map(|e| (e.mode, e.data.len() as u32, e.mtime))
        .unwrap_or((0, 0, 0));
    for x in [mode, size, mtime] {
        v.extend_from_slice(&x.to_le_bytes());
    }
    v
}

/// LIST: a DENT per entry (`.` and `..` first), then DONE.
fn list(ph: &Phone, arg: &str) -> Vec<u8> {
    let mut v = Vec::new();
    let dent = |v: &mut Vec<u8>, name: &str, mode: u32, size: u32, mtime: u32| {
        v.extend_from_slice(b"DENT");
        for x in [mode, size, mtime, name.len() as u32] {
            v.extend_from_slice(&x.to_le_bytes());
        }
        v.extend_from_slice(name.as_bytes());
    };
    if let (Some(dir), Some(list)) = (ph.fs.get(arg), ph.fs.list(arg)) {
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

/// RECV: a file's content, or why the shell user cannot read it.
fn recv_data(ph: &Phone, arg: &str) -> Result<Vec<u8>, &'static str> {
    match ph.fs.get(arg) {
        Some(e) if e.is_dir() => Err("Is a directory"),
        Some(_) if arg.starts_with("/data/") && !arg.starts_with("/data/local/tmp/") => {
            Err("Permission denied")
        }
        Some(e) => Ok(e.data.clone()),
        None => Err("No such file or directory"),
    }
}

/// A DATA packet of `chunk`.
fn data_packet(chunk: &[u8]) -> Vec<u8> {
    let mut p = b"DATA".to_vec();
    p.extend_from_slice(&(chunk.len() as u32).to_le_bytes());
    p.extend_from_slice(chunk);
    p
}

/// A file as DATA packets of at most [`MAX_DATA`] bytes. adb_client ends a
/// transfer when a payload's last 8 bytes start with DONE: a chunk that
/// would end so is shortened.
fn data_packets(data: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut off = 0;
    while off < data.len() {
        let mut n = (data.len() - off).min(MAX_DATA);
        while n > 1 && {
            let p = data_packet(&data[off..off + n]);
            p.len() >= 8 && &p[p.len() - 8..p.len() - 4] == b"DONE"
        } {
            n -= 1;
        }
        out.push(data_packet(&data[off..off + n]));
        off += n;
    }
    out
}

/// SEND's argument `PATH,MODE` (octal with a leading 0, else decimal;
/// 0644 when absent or unreadable).
fn send_target(arg: &str) -> (String, u32) {
    match arg.rsplit_once(',') {
        Some((p, m)) => {
            let mode = if m.starts_with('0') {
                u32::from_str_radix(m, 8).ok()
            } else {
                m.parse::<u32>().ok()
            };
            (p.to_string(), mode.unwrap_or(0o644))
        }
        None => (arg.to_string(), 0o644),
    }
}

/// SEND's DATA packets up to DONE (which carries the mtime); `None` when
/// the stream ends or breaks the protocol (after telling the host).
async fn receive_file(io: &mut StreamIo, buf: &mut Vec<u8>) -> Option<(Vec<u8>, u32)> {
    let mut data = Vec::new();
    loop {
        if !fill(io, buf, 8).await {
            return None;
        }
        let (c, n) = (id(buf), le(&buf[4..8]) as usize);
        buf.drain(..8);
        match &c {
            b"DATA" => {
                if n > MAX_DATA || !fill(io, buf, n).await {
                    return None;
                }
                data.extend_from_slice(&buf[..n]);
                buf.drain(..n);
            }
            b"DONE" => return Some((data, n as u32)),
            _ => {
                io.write(&fail("invalid sync SEND data")).await;
                return None;
            }
        }
    }
}

/// Writes a received file (creating missing parent directories, as adbd
/// does; mtime 0 means now); the OKAY or FAIL reply.
fn store(ph: &mut Phone, path: &str, data: Vec<u8>, mode: u32, mtime: u32) -> Vec<u8> {
    let now = if mtime == 0 { ph.now_secs() } else { mtime };
    let path = normalize(path);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::phone::config::PhoneSimConfig;

    #[test]
    fn chunks_never_end_like_done() {
        // A file whose first 64 KiB end with "DONE" + 4 bytes.
        let mut data = vec![b'x'; MAX_DATA + 10];
        data[MAX_DATA - 8..MAX_DATA - 4].copy_from_slice(b"DONE");
        let ps = data_packets(&data);
        assert_eq!(ps.len(), 2);
        for p in &ps {
            assert_eq!(&p[..4], b"DATA");
            assert_ne!(&p[p.len() - 8..p.len() - 4], b"DONE");
            assert_eq!(le(&p[4..8]) as usize, p.len() - 8);
        }
        assert_eq!(le(&ps[0][4..8]) as usize, MAX_DATA - 1);
        let joined: Vec<u8> = ps.iter().flat_map(|p| p[8..].to_vec()).collect();
        assert_eq!(joined, data);
        assert!(data_packets(&[]).is_empty());
    }

    #[test]
    fn send_modes() {
        assert_eq!(send_target("/sdcard/a,0644"), ("/sdcard/a".into(), 0o644));
        assert_eq!(send_target("/sdcard/a,33188"), ("/sdcard/a".into(), 33188));
        assert_eq!(send_target("/sdcard/a"), ("/sdcard/a".into(), 0o644));
        assert_eq!(send_target("/x,y,0600"), ("/x,y".into(), 0o600));
        assert_eq!(send_target("/x,bad"), ("/x".into(), 0o644));
    }

    #[test]
    fn store_stat_list_and_recv() {
        let mut ph = Phone::new(PhoneSimConfig::new("t"));
        let ok = store(
            &mut ph,
            "/data/local/tmp/d/f.txt",
            b"hello".to_vec(),
            0o644,
            7,
        );
        assert_eq!(&ok[..4], b"OKAY");
        let st = stat(&ph, "/data/local/tmp/d/f.txt");
        assert_eq!(&st[..4], b"STAT");
        assert_eq!(le(&st[8..12]), 5);
        assert_eq!(le(&st[12..16]), 7);
        assert_eq!(stat(&ph, "/nope")[4..], [0u8; 12]);
        let l = list(&ph, "/data/local/tmp/d");
        assert!(l.windows(5).any(|w| w == b"f.txt"));
        assert!(l.ends_with(&[b"DONE".as_slice(), &[0u8; 16]].concat()));
        assert_eq!(recv_data(&ph, "/data/local/tmp/d/f.txt").unwrap(), b"hello");
        assert_eq!(recv_data(&ph, "/data/local/tmp/d"), Err("Is a directory"));
        assert_eq!(recv_data(&ph, "/nope"), Err("No such file or directory"));
    }
}
