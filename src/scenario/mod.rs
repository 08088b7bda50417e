//! Scenario files (YAML): what a campaign measures.
pub mod apps;
