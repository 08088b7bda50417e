//! The phone simulator: a process per simulated Android phone that speaks the
//! ADB wire protocol, with simulated messaging apps and their lab backends.
//!
//! - [`wire`]: ADB transport messages; [`adbd`]: the daemon and its services
//!   (`shell:` v1/v2, `exec:`, [`sync`]);
//! - [`shell`]: a POSIX shell-word parser and an interpreter whose commands
//!   (getprop, input, am, uiautomator, dumpsys, …) act on [`state::Phone`];
//! - [`ui`]: screens, `uiautomator dump` XML and taps; [`apps`]: the seven
//!   simulated apps in two versions each;
//! - [`screen`]: what `screenrecord` writes (MP4 of PNG frames);
//! - [`sim`]: runs one phone (ADB listener = the USB cable, unplug/replug).

pub mod adbd;
pub mod appnet;
pub mod apps;
pub mod backend;
pub mod config;
pub mod control;
pub mod dialog;
pub mod dns;
pub mod firewall;
pub mod net;
pub mod noise;
pub mod notifdump;
pub mod proto;
pub mod screen;
pub mod shell;
pub mod sim;
pub mod state;
pub mod sync;
pub mod ui;
pub mod windowdump;
pub mod wire;
