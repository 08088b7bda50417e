//! Reports built from a stored campaign record: the seed paper's locality
//! tables (traffic leaving region, accessibility for interest groups), the
//! DNS table, identified servers, interference, anomalies, failures and
//! geolocation changes, as Markdown, CSV, JSON and one self-contained HTML
//! page with inline SVG plots.
//!
//! Only the record is read (docs/campaign-record.md): `index.json`,
//! `lab.json`, `measurements/*/analysis.json`, `measurements/*/traces/*.json`.
//! Definitions of every column: docs/report.md.
//!
//! - [`record`]: loading the record, naming every unreadable file;
//! - [`build`]: computing the tables ([`model::Report`]);
//! - [`stats`]: shares with sample sizes and Wilson intervals;
//! - [`tables`]: the tables as rows of text cells (Markdown, CSV, HTML);
//! - [`html`]: the HTML page and its SVG plots;
//! - [`map`], [`diagrams`], [`timeline`]: its world map, path diagrams and
//!   interference timelines;
//! - [`compare`]: what changed between two campaigns;
//! - [`export`]: an anonymized, publishable copy of a campaign;
//! - [`dataset`]: the campaign's tables as Parquet files (docs/dataset.md).

pub mod build;
pub mod compare;
pub mod dataset;
pub mod diagrams;
pub mod export;
pub mod html;
pub mod map;
pub mod model;
pub mod probes;
pub mod record;
pub mod stats;
pub mod tables;
pub mod timeline;

use std::path::PathBuf;

pub use build::{Options, build};
pub use model::Report;
pub use record::Campaign;

/// Errors of the report module; each names the file concerned.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The folder is not a campaign folder.
    #[error("{dir}: not a campaign folder: {message}")]
    NotACampaign {
        /// The folder.
        dir: PathBuf,
        /// Why.
        message: String,
    },
    /// Reading a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// OS error.
        source: std::io::Error,
    },
    /// A required file is malformed.
    #[error("{path}: {message}")]
    BadFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A geolocation database failed.
    #[error(transparent)]
    Geo(#[from] crate::geo::GeoError),
}

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Markdown.
    Markdown,
    /// CSV (one section per table).
    Csv,
    /// JSON ([`model::Report`]).
    Json,
    /// One self-contained HTML page.
    Html,
}

impl Format {
    /// File extension.
    pub fn extension(self) -> &'static str {
        match self {
            Format::Markdown => "md",
            Format::Csv => "csv",
            Format::Json => "json",
            Format::Html => "html",
        }
    }
}

/// Renders a report; the same report always gives the same bytes.
pub fn render(report: &Report, format: Format) -> String {
    match format {
        Format::Markdown => tables::markdown(report),
        Format::Csv => tables::csv_all(report),
        Format::Json => {
            let mut s = serde_json::to_string_pretty(report).unwrap_or_default();
            s.push('\n');
            s
        }
        Format::Html => html::page(report),
    }
}
