//! Device control over ADB (adb_client): phones, apps, selectors, clocks.
