//! Userspace per-link delay (netem is absent on the CI kernel): an NFQUEUE
//! verdict delayer. iptables/ip6tables rules in the namespace owning the
//! link send every packet crossing it (FORWARD in and out, INPUT, OUTPUT)
//! to queue [`QUEUE`] with `--queue-bypass`; this process
//! (`matador lab delay --ms N`, one per delayed link, inside that
//! namespace) holds each packet's verdict until `N` ms after it was queued,
//! then accepts it. Packets keep their order (equal delay, FIFO); only
//! metadata is copied to userspace.

use super::LabError;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// The NFQUEUE number used in every lab namespace (queues are per
/// namespace, one delayed link per namespace).
pub const QUEUE: u16 = 0;

/// How long to sleep while packets wait (bounds the extra delay a packet
/// arriving meanwhile gets).
const TICK: Duration = Duration::from_micros(200);

fn err(message: String) -> LabError {
    LabError::Process {
        what: format!("delay relay (NFQUEUE {QUEUE})"),
        message,
    }
}

/// Runs the delayer on queue [`QUEUE`] of the current namespace until
/// killed; `ready` is called once the queue is bound.
pub fn run(delay: Duration, ready: impl FnOnce()) -> Result<(), LabError> {
    let mut q = nfq::Queue::open().map_err(|e| err(format!("netlink socket: {e}")))?;
    q.bind(QUEUE).map_err(|e| {
        err(format!(
            "bind (NFQUEUE needs root and nfnetlink_queue): {e}"
        ))
    })?;
    q.set_copy_range(QUEUE, 0)
        .map_err(|e| err(format!("copy range: {e}")))?;
    q.set_queue_max_len(QUEUE, 8192)
        .map_err(|e| err(format!("queue length: {e}")))?;
    ready();
    let mut held: VecDeque<(Instant, nfq::Message)> = VecDeque::new();
    loop {
        let now = Instant::now();
        while held.front().is_some_and(|(due, _)| *due <= now) {
            if let Some((_, mut m)) = held.pop_front() {
                m.set_verdict(nfq::Verdict::Accept);
                q.verdict(m).map_err(|e| err(format!("verdict: {e}")))?;
            }
        }
        // Block while nothing is held; poll while packets wait.
        q.set_nonblocking(!held.is_empty());
        match q.recv() {
            Ok(m) => held.push_back((Instant::now() + delay, m)),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                let wait = held
                    .front()
                    .map(|(due, _)| due.saturating_duration_since(Instant::now()))
                    .unwrap_or(TICK);
                std::thread::sleep(wait.min(TICK));
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(err(format!("receive: {e}"))),
        }
    }
}

/// The iptables/ip6tables rule bodies (after `-A`) that queue every packet
/// crossing interface `dev` in both directions.
pub fn rules(dev: &str) -> Vec<Vec<String>> {
    let q = QUEUE.to_string();
    [
        ("FORWARD", "-i"),
        ("FORWARD", "-o"),
        ("INPUT", "-i"),
        ("OUTPUT", "-o"),
    ]
    .iter()
    .map(|(chain, dir)| {
        [
            chain,
            dir,
            dev,
            "-j",
            "NFQUEUE",
            "--queue-num",
            &q,
            "--queue-bypass",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    })
    .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn rules_cover_both_directions_and_local_traffic() {
        let r = super::rules("e1");
        assert_eq!(r.len(), 4);
        assert!(r.iter().all(|x| x.contains(&"e1".to_string())
            && x.contains(&"--queue-bypass".to_string())));
    }
}
