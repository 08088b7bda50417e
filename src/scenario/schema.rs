//! JSON Schema of scenario files, generated from the Rust types with
//! `schemars` (so it always matches what the loader accepts). Editors with a
//! YAML language server use it via `# yaml-language-server: $schema=…`.

use super::Scenario;

/// The JSON Schema (draft 2020-12) of a scenario file, pretty-printed.
pub fn json_schema() -> String {
    let schema = schemars::schema_for!(Scenario);
    serde_json::to_string_pretty(&schema).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_refuses_unknown_keys_and_names_fields() {
        let s: serde_json::Value = serde_json::from_str(&json_schema()).unwrap();
        assert_eq!(s["additionalProperties"], serde_json::json!(false));
        let req = s["required"].as_array().unwrap();
        for k in ["name", "phones", "apps", "countries", "pairs", "messages"] {
            assert!(req.iter().any(|r| r == k), "{k} not required");
        }
        assert!(s["$defs"]["Duration"].is_object());
        assert_eq!(
            s["$defs"]["Pairs"]["additionalProperties"],
            serde_json::json!(false)
        );
    }
}
