//! The system call socket2 has no safe wrapper for: a `recvmsg(2)` that
//! returns the IPv6 hop limit (and `setns(2)`, shared with the network
//! layer). Everything unsafe in `paths` lives here.

use std::io;
use std::net::Ipv6Addr;
use std::os::fd::AsRawFd;

pub use crate::net::netns::enter_thread as enter_netns;

/// Receives one datagram from a raw IPv6 socket into `buf`: its length, the
/// sender, and the hop limit when `IPV6_RECVHOPLIMIT` is on.
#[allow(unsafe_code)]
pub fn recv_v6(sock: &impl AsRawFd, buf: &mut [u8]) -> io::Result<(usize, Ipv6Addr, Option<u8>)> {
    // Control buffer as u64s so it is aligned for cmsghdr.
    let mut cbuf = [0u64; 16];
    let mut addr_store = [0u64; std::mem::size_of::<libc::sockaddr_in6>().div_ceil(8)];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: msghdr is plain old data; all-zero is a valid (empty) value.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_name = addr_store.as_mut_ptr().cast();
    msg.msg_namelen = std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t;
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&cbuf) as _;
    // SAFETY: every pointer in `msg` refers to a live local buffer whose
    // length is given alongside (name, one iovec over `buf`, control); the
    // kernel writes at most those lengths.
    let n = unsafe { libc::recvmsg(sock.as_raw_fd(), &mut msg, 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let name: Vec<u8> = addr_store.iter().flat_map(|w| w.to_ne_bytes()).collect();
    // sockaddr_in6: family(2) port(2) flowinfo(4) addr(16) scope(4).
    let mut a = [0u8; 16];
    a.copy_from_slice(&name[8..24]);
    let ctl: Vec<u8> = cbuf.iter().flat_map(|w| w.to_ne_bytes()).collect();
    let used = (msg.msg_controllen as usize).min(ctl.len());
    Ok((n as usize, Ipv6Addr::from(a), hop_limit(&ctl[..used])))
}

/// Finds IPV6_HOPLIMIT in a control buffer (parsed by hand: cmsghdr is
/// `{len: usize, level: i32, type: i32}`, data and entries usize-aligned).
fn hop_limit(ctl: &[u8]) -> Option<u8> {
    const W: usize = std::mem::size_of::<usize>();
    let hdr = std::mem::size_of::<libc::cmsghdr>();
    let mut at = 0;
    while at + hdr <= ctl.len() {
        let len = usize::from_ne_bytes(ctl[at..at + W].try_into().ok()?);
        let level = i32::from_ne_bytes(ctl[at + W..at + W + 4].try_into().ok()?);
        let typ = i32::from_ne_bytes(ctl[at + W + 4..at + W + 8].try_into().ok()?);
        if len < hdr || at + len > ctl.len() {
            return None;
        }
        if level == libc::IPPROTO_IPV6 && typ == libc::IPV6_HOPLIMIT && len >= hdr + 4 {
            let v = i32::from_ne_bytes(ctl[at + hdr..at + hdr + 4].try_into().ok()?);
            return u8::try_from(v).ok();
        }
        at += len.div_ceil(W) * W;
    }
    None
}
