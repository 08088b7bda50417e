//! The keyguard (lock screen) state, read from `dumpsys window`.
//!
//! Source of the format: AOSP frameworks/base,
//! `services/core/java/com/android/server/policy/keyguard/`:
//! `KeyguardServiceDelegate.dump` prints a `KeyguardServiceDelegate` header
//! and, two spaces deeper, `showing=`, `showingAndNotOccluded=`,
//! `inputRestricted=`, `occluded=`, `secure=`, `dreaming=` … (unchanged from
//! Android 7 to 15); it ends with `KeyguardServiceWrapper.dump`, which is
//! `KeyguardStateMonitor.dump`: a `KeyguardStateMonitor` header and
//! `mIsShowing=`, `mSimSecure=`, `mInputRestricted=`, `mTrusted=`,
//! `mCurrentUserId=`. `PhoneWindowManager.dump` prints
//! `mShowingDream=… mDreamingLockscreen=… mDreamingSleepToken=…` on one line
//! (the lock screen showing, as many lab scripts read it).
//! Vendors add their own lines but keep these; a dump that holds none of
//! them is reported as unknown, never read as "unlocked".

/// Which part of the dump the state was read from (most to least direct).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyguardSource {
    /// The `KeyguardServiceDelegate` block: showing, occluded and secure.
    Delegate,
    /// The `KeyguardStateMonitor` block: showing only.
    StateMonitor,
    /// `PhoneWindowManager`'s `mDreamingLockscreen=`: showing only.
    Policy,
}

/// The lock screen's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyguardState {
    /// The keyguard is showing.
    pub showing: bool,
    /// An activity is shown over it (`showWhenLocked`), so the UI is usable.
    pub occluded: bool,
    /// A PIN, pattern or password is set (None: the dump did not say).
    pub secure: Option<bool>,
    /// Where it was read.
    pub source: KeyguardSource,
}

impl KeyguardState {
    /// The lock screen stands between automation and the apps.
    pub fn blocks_ui(&self) -> bool {
        self.showing && !self.occluded
    }
}

/// The keyguard state in a `dumpsys window` (or `dumpsys window policy`)
/// output; `None` when the dump holds none of the known markers.
pub fn parse(dump: &str) -> Option<KeyguardState> {
    if let Some(kv) = block(dump, "KeyguardServiceDelegate") {
        let get = |k: &str| kv.iter().find(|(key, _)| *key == k).map(|(_, v)| *v);
        if let Some(showing) = get("showing") {
            let occluded = get("occluded").unwrap_or(false)
                || (showing && get("showingAndNotOccluded") == Some(false));
            return Some(KeyguardState {
                showing,
                occluded,
                secure: get("secure"),
                source: KeyguardSource::Delegate,
            });
        }
    }
    let monitor = block(dump, "KeyguardStateMonitor");
    if let Some((_, showing)) = monitor.iter().flatten().find(|(k, _)| *k == "mIsShowing") {
        return Some(KeyguardState {
            showing: *showing,
            occluded: false,
            secure: None,
            source: KeyguardSource::StateMonitor,
        });
    }
    dump.split_whitespace()
        .find_map(|w| w.strip_prefix("mDreamingLockscreen="))
        .and_then(parse_bool)
        .map(|showing| KeyguardState {
            showing,
            occluded: false,
            secure: None,
            source: KeyguardSource::Policy,
        })
}

/// The boolean `key=value` lines indented below the first line that is
/// exactly `header` (after its indentation), up to the next line indented no
/// deeper than the header.
fn block<'a>(dump: &'a str, header: &str) -> Option<Vec<(&'a str, bool)>> {
    let mut lines = dump.lines();
    let depth = lines.by_ref().find_map(|l| {
        let t = l.trim_start();
        (t.trim_end() == header).then(|| l.len() - t.len())
    })?;
    let mut kv = Vec::new();
    for l in lines {
        let t = l.trim_start();
        if t.is_empty() {
            continue;
        }
        if l.len() - t.len() <= depth {
            break;
        }
        if let Some((k, b)) = t
            .trim_end()
            .split_once('=')
            .and_then(|(k, v)| Some((k, parse_bool(v)?)))
        {
            kv.push((k, b));
        }
    }
    Some(kv)
}

fn parse_bool(v: &str) -> Option<bool> {
    match v {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delegate_block_wins_and_reads_occlusion() {
        let d = "    mShowingDream=false mDreamingLockscreen=true mDreamingSleepToken=null\n    KeyguardServiceDelegate\n      showing=true\n      showingAndNotOccluded=false\n      occluded=true\n      secure=false\n      KeyguardStateMonitor\n        mIsShowing=true\n";
        let k = parse(d).unwrap();
        assert_eq!(k.source, KeyguardSource::Delegate);
        assert!(k.showing && k.occluded && !k.blocks_ui());
        assert_eq!(k.secure, Some(false));
    }

    #[test]
    fn falls_back_to_monitor_then_policy_then_unknown() {
        let m = "  KeyguardStateMonitor\n    mIsShowing=true\n    mSimSecure=false\n";
        assert_eq!(parse(m).unwrap().source, KeyguardSource::StateMonitor);
        assert!(parse(m).unwrap().blocks_ui());
        let p = "    mShowingDream=false mDreamingLockscreen=false mDreamingSleepToken=null\n";
        let k = parse(p).unwrap();
        assert_eq!(k.source, KeyguardSource::Policy);
        assert!(!k.blocks_ui());
        assert_eq!(parse("mAwake=true\n"), None);
        // A header whose block ends before any value falls through.
        assert_eq!(parse("KeyguardServiceDelegate\nmAwake=true\n"), None);
    }

    fn fixture(name: &str) -> String {
        let p = crate::source_dir().join("tests/fixtures/window").join(name);
        std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    }

    fn unlock(d: &str) -> String {
        d.replace("      showing=true", "      showing=false")
            .replace("showingAndNotOccluded=true", "showingAndNotOccluded=false")
            .replace("mIsShowing=true", "mIsShowing=false")
            .replace("mDreamingLockscreen=true", "mDreamingLockscreen=false")
    }

    /// Without the delegate block (a vendor that drops it), the monitor.
    fn without_delegate(d: &str) -> String {
        d.replace("KeyguardServiceDelegate", "VendorKeyguardDelegate")
    }

    #[test]
    fn fixtures_of_three_releases() {
        for (name, occluded, secure) in [
            ("android9.txt", false, false),
            ("android11.txt", true, false),
            ("android14.txt", false, true),
        ] {
            let d = fixture(name);
            let k = parse(&d).unwrap_or_else(|| panic!("{name}: no state"));
            assert_eq!(k.source, KeyguardSource::Delegate, "{name}");
            assert!(k.showing, "{name}");
            assert_eq!(k.occluded, occluded, "{name}");
            assert_eq!(k.blocks_ui(), !occluded, "{name}");
            assert_eq!(k.secure, Some(secure), "{name}");
            let u = parse(&unlock(&d)).unwrap();
            assert!(!u.showing && !u.blocks_ui(), "{name} unlocked: {u:?}");
            let m = parse(&without_delegate(&d)).unwrap();
            assert_eq!(m.source, KeyguardSource::StateMonitor, "{name}");
            assert!(m.showing, "{name}");
            assert!(!parse(&without_delegate(&unlock(&d))).unwrap().showing);
        }
    }
}
