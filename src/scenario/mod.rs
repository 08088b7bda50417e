//! Scenario files (YAML): what a campaign measures.
