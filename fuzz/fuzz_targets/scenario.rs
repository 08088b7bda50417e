//! Scenario YAML: parsing, validation and error location (file:line:col)
//! on arbitrary text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use matador::scenario::LoadedScenario;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    match LoadedScenario::from_str(&text, Path::new("fuzz.yaml")) {
        Ok(ls) => {
            let plan = matador::campaign::plan::Plan::expand(&ls);
            let _ = plan.measurements.len();
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
