//! The rule by which phone pairs take measurements, shared by the runner's
//! queue and the duration estimate (`--dry-run`, `matador scenario check`)
//! so the two cannot drift apart.
//!
//! A free pair takes the first queued measurement (plan order) whose nodes
//! — the working node of each side's country, one node counted once when
//! both sides share it — each carry fewer than `node_capacity`
//! measurements; the slots free when the measurement ends.

use super::plan::PlannedMeasurement;
use std::collections::BTreeMap;

/// Measurements each node carries now, under a capacity.
#[derive(Debug, Clone, Default)]
pub struct NodeSlots {
    busy: BTreeMap<String, u32>,
    cap: u32,
}

impl NodeSlots {
    /// No slot in use; `cap` measurements at once per node (at least 1).
    pub fn new(cap: u32) -> NodeSlots {
        NodeSlots {
            busy: BTreeMap::new(),
            cap: cap.max(1),
        }
    }

    /// Whether every node of `nodes` has a free slot (true for none: a
    /// measurement with no working node is taken at once and skipped).
    pub fn has_room(&self, nodes: &[String]) -> bool {
        let cap = self.cap.max(1);
        nodes
            .iter()
            .all(|n| self.busy.get(n).copied().unwrap_or(0) < cap)
    }

    /// Takes one slot on each node of `nodes`.
    pub fn take(&mut self, nodes: &[String]) {
        for n in nodes {
            *self.busy.entry(n.clone()).or_default() += 1;
        }
    }

    /// Frees one slot on each node of `nodes`.
    pub fn free(&mut self, nodes: &[String]) {
        for n in nodes {
            if let Some(c) = self.busy.get_mut(n) {
                *c = c.saturating_sub(1);
            }
        }
    }
}

/// The nodes a measurement holds a slot on, given the node each side would
/// use: both, or one when they are the same node (a same-node pair takes
/// one slot); none when a side has no node left.
pub fn slot_nodes(sender: Option<&str>, receiver: Option<&str>) -> Vec<String> {
    match (sender, receiver) {
        (Some(a), Some(b)) if a == b => vec![a.to_string()],
        (Some(a), Some(b)) => vec![a.to_string(), b.to_string()],
        _ => Vec::new(),
    }
}

/// The position of the first measurement of `queue` (plan order) whose
/// nodes (`nodes_of`) all have room in `slots`: the one a free pair takes.
pub fn first_fitting<T>(
    queue: &[T],
    slots: &NodeSlots,
    nodes_of: impl Fn(&T) -> Vec<String>,
) -> Option<usize> {
    queue.iter().position(|m| slots.has_room(&nodes_of(m)))
}

/// A campaign's estimated duration with its phone pairs.
#[derive(Debug, Clone, PartialEq)]
pub struct Estimate {
    /// Wall time until the last measurement ends (seconds).
    pub wall_secs: f64,
    /// The measurements' estimates summed (seconds): the wall time of one
    /// pair.
    pub measurement_secs: f64,
    /// Phone pairs.
    pub pairs: usize,
    /// The measurements' ids in the order they are taken.
    pub order: Vec<String>,
}

/// Replays the scheduling rule on the measurements' estimates (no
/// failures, no failover: each measurement on its first nodes): `pairs`
/// identical pairs start together, each free pair takes the first queued
/// measurement that fits ([`first_fitting`]), slots free when it ends.
pub fn estimate(measurements: &[PlannedMeasurement], pairs: usize, node_capacity: u32) -> Estimate {
    let pairs = pairs.max(1);
    let nodes_of = |m: &&PlannedMeasurement| {
        slot_nodes(
            m.sender_nodes.first().map(String::as_str),
            m.receiver_nodes.first().map(String::as_str),
        )
    };
    let mut queue: Vec<&PlannedMeasurement> = measurements.iter().collect();
    let mut slots = NodeSlots::new(node_capacity);
    let mut free = pairs;
    // (end, nodes) of the measurements running.
    let mut running: Vec<(f64, Vec<String>)> = Vec::new();
    let mut order = Vec::with_capacity(measurements.len());
    let mut now = 0.0_f64;
    let mut wall = 0.0_f64;
    loop {
        while free > 0 {
            let Some(i) = first_fitting(&queue, &slots, nodes_of) else {
                break;
            };
            let m = queue.remove(i);
            let nodes = nodes_of(&m);
            slots.take(&nodes);
            let end = now + m.estimated_secs.max(0.0);
            wall = wall.max(end);
            running.push((end, nodes));
            order.push(m.id.clone());
            free -= 1;
        }
        // Nothing running and nothing fits cannot happen (with every slot
        // free each measurement fits); the check only ends the loop.
        let Some(next) = running.iter().map(|r| r.0).min_by(f64::total_cmp) else {
            break;
        };
        now = next;
        running.retain(|(end, nodes)| {
            if *end <= now {
                slots.free(nodes);
                free += 1;
                false
            } else {
                true
            }
        });
    }
    Estimate {
        wall_secs: wall,
        measurement_secs: measurements.iter().map(|m| m.estimated_secs).sum(),
        pairs,
        order,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::campaign::plan::Kind;
    use crate::scenario::CountryCode;

    fn cc(s: &str) -> CountryCode {
        serde_json::from_value(serde_json::json!(s)).unwrap()
    }

    /// A measurement between two nodes (countries named after the nodes).
    fn m(id: &str, a: &str, b: &str, secs: f64) -> PlannedMeasurement {
        PlannedMeasurement {
            id: id.into(),
            kind: Kind::Message,
            app: "x".into(),
            sender: "a".into(),
            receiver: "b".into(),
            sender_country: cc(&a[..2].to_uppercase()),
            receiver_country: cc(&b[..2].to_uppercase()),
            sender_nodes: vec![a.into()],
            receiver_nodes: vec![b.into()],
            repetition: 1,
            messages: vec![],
            baseline_secs: 0.0,
            estimated_secs: secs,
        }
    }

    #[test]
    fn one_pair_is_the_sum() {
        let ms = vec![m("m1", "de", "br", 10.0), m("m2", "us", "in", 30.0)];
        let e = estimate(&ms, 1, 1);
        assert_eq!(e.wall_secs, 40.0);
        assert_eq!(e.measurement_secs, 40.0);
        assert_eq!(e.order, ["m1", "m2"]);
    }

    #[test]
    fn disjoint_nodes_divide_by_the_pairs() {
        let ms: Vec<_> = (0..8)
            .map(|i| {
                let (a, b) = if i % 2 == 0 {
                    ("de", "br")
                } else {
                    ("us", "in")
                };
                m(&format!("m{i}"), a, b, 10.0)
            })
            .collect();
        assert_eq!(estimate(&ms, 2, 1).wall_secs, 40.0);
    }

    /// All on one node pair with capacity 1: the pairs wait for each other
    /// (dividing by the pairs would say 20 s).
    #[test]
    fn node_contention_makes_pairs_wait() {
        let ms: Vec<_> = (0..4)
            .map(|i| m(&format!("m{i}"), "de", "br", 10.0))
            .collect();
        let e = estimate(&ms, 2, 1);
        assert_eq!(e.wall_secs, 40.0);
        assert_eq!(e.measurement_secs, 40.0);
        // Capacity 2 lets both pairs on the nodes at once.
        assert_eq!(estimate(&ms, 2, 2).wall_secs, 20.0);
        // A same-node measurement takes one slot: capacity 2 holds two.
        let same: Vec<_> = (0..4)
            .map(|i| m(&format!("m{i}"), "de", "de", 10.0))
            .collect();
        assert_eq!(estimate(&same, 2, 2).wall_secs, 20.0);
        assert_eq!(estimate(&same, 2, 1).wall_secs, 40.0);
    }

    /// One long measurement is the tail: 3 pairs, 60 s of short ones and
    /// one of 50 s give 50 s, not the 110/3 ≈ 37 s of dividing.
    #[test]
    fn one_long_measurement_is_the_tail() {
        let mut ms = vec![m("long", "de", "br", 50.0)];
        for i in 0..6 {
            let (a, b) = if i % 2 == 0 {
                ("us", "in")
            } else {
                ("jp", "kr")
            };
            ms.push(m(&format!("s{i}"), a, b, 10.0));
        }
        let e = estimate(&ms, 3, 3);
        assert_eq!(e.measurement_secs, 110.0);
        assert_eq!(e.wall_secs, 50.0);
        // The long one last in plan order: it starts after two rounds of
        // short ones and ends at 20 + 50 s.
        ms.rotate_left(1);
        assert_eq!(estimate(&ms, 3, 3).wall_secs, 70.0);
    }

    /// A free pair skips a measurement whose node is full and takes the
    /// next that fits (plan order otherwise), as the runner does.
    #[test]
    fn a_pair_takes_the_first_measurement_that_fits() {
        let ms = vec![
            m("m1", "de", "br", 10.0),
            m("m2", "de", "us", 10.0),
            m("m3", "jp", "kr", 10.0),
            m("m4", "in", "us", 5.0),
        ];
        let e = estimate(&ms, 2, 1);
        // t=0: m1 (de, br), then m2 waits for de: m3. t=10: m2 (de, us),
        // m4 waits for us. t=20: m4.
        assert_eq!(e.order, ["m1", "m3", "m2", "m4"]);
        assert_eq!(e.wall_secs, 25.0);
    }

    #[test]
    fn slots_count_a_shared_node_once() {
        assert_eq!(slot_nodes(Some("n"), Some("n")), ["n"]);
        assert_eq!(slot_nodes(Some("a"), Some("b")), ["a", "b"]);
        assert!(slot_nodes(None, Some("b")).is_empty());
        let mut s = NodeSlots::new(1);
        assert!(s.has_room(&[]));
        s.take(&["a".into()]);
        assert!(!s.has_room(&["a".into(), "b".into()]));
        assert!(s.has_room(&["b".into()]));
        s.free(&["a".into()]);
        assert!(s.has_room(&["a".into()]));
    }

    #[test]
    fn no_measurement_no_time() {
        let e = estimate(&[], 8, 1);
        assert_eq!((e.wall_secs, e.measurement_secs, e.pairs), (0.0, 0.0, 8));
    }
}
