//! `dumpsys window` as the simulated phone prints it: the display section
//! (size, focus) and the policy section, whose keyguard lines follow AOSP's
//! dump code (frameworks/base, `services/core/java/com/android/server/
//! policy/keyguard/KeyguardServiceDelegate.java` and
//! `KeyguardStateMonitor.java`; `PhoneWindowManager.dump` for the
//! `mShowingDream=… mDreamingLockscreen=…` line). That line is printed
//! here up to Android 11 (SDK 30) only — a choice of the simulator, not a
//! checked fact of AOSP's history, so that newer simulated releases make
//! the device layer read the blocks. The same grammar as the fixtures in
//! tests/fixtures/window/.

/// What the dump shows.
#[derive(Debug, Clone)]
pub struct WindowState<'a> {
    /// `ro.build.version.sdk`.
    pub sdk: u32,
    /// Screen width, height (px) and density (dpi).
    pub size: (u32, u32, u32),
    /// The focused window's component.
    pub focus: &'a str,
    /// Screen on.
    pub awake: bool,
    /// Keyguard showing.
    pub locked: bool,
}

/// The text of `dumpsys window`.
pub fn render(s: &WindowState<'_>) -> String {
    let (w, h, d) = s.size;
    let (focus, awake, locked) = (s.focus, s.awake, s.locked);
    let mut out = format!(
        "WINDOW MANAGER DISPLAY CONTENTS (dumpsys window displays)\n  Display: mDisplayId=0 rootTasks=3\n    init={w}x{h} {d}dpi cur={w}x{h} app={w}x{h}\n  mCurrentFocus=Window{{5e2d1f u0 {focus}}}\n  mFocusedApp=ActivityRecord{{8c3b2a u0 {focus} t42}}\n\nWINDOW MANAGER POLICY STATE (dumpsys window policy)\n    mSafeMode=false mSystemReady=true mSystemBooted=true\n    mAwake={awake} mScreenOnEarly={awake} mScreenOnFully={awake}\n    mKeyguardDrawComplete=true mWindowManagerDrawComplete=true\n"
    );
    if s.sdk <= 30 {
        out.push_str(&format!(
            "    mShowingDream=false mDreamingLockscreen={locked} mDreamingSleepToken=null\n"
        ));
    }
    out.push_str(&format!(
        "    KeyguardServiceDelegate\n      showing={locked}\n      showingAndNotOccluded={locked}\n      inputRestricted={locked}\n      occluded=false\n      secure=false\n      dreaming=false\n      systemIsReady=true\n      deviceHasKeyguard=true\n      enabled=true\n      offReason=0\n      currentUser=0\n      bootCompleted=true\n      screenState={screen}\n      interactiveState={awake_i}\n      KeyguardStateMonitor\n        mIsShowing={locked}\n        mSimSecure=false\n        mInputRestricted={locked}\n        mTrusted=false\n        mCurrentUserId=0\n",
        screen = if awake { 2 } else { 0 },
        awake_i = u8::from(awake),
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use matador::device::keyguard;

    /// The product's parser reads the simulator's dump of every release.
    #[test]
    fn device_parser_reads_every_release() {
        for sdk in [28, 30, 34] {
            for locked in [false, true] {
                let s = WindowState {
                    sdk,
                    size: (1080, 2400, 420),
                    focus: "x/y.Z",
                    awake: true,
                    locked,
                };
                let k = keyguard::parse(&render(&s)).expect("keyguard state");
                assert_eq!(k.blocks_ui(), locked, "sdk {sdk}");
            }
        }
    }
}
