//! Campaigns: the measurement state machine, journal, record and resume.
//!
//! - [`plan`]: scenario → ordered measurement list (stable ids).

pub mod plan;
