//! Campaigns: the measurement state machine, journal, record and resume.
