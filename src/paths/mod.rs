//! Path measurements: in-protocol traceroutes from the remote nodes.
