//! The phone simulator: a process per simulated Android phone that speaks the
//! ADB wire protocol, with simulated messaging apps and their lab backends.
