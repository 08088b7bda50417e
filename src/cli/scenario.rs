//! `matador scenario`: check a scenario file, print its JSON Schema.

use clap::{Args, Subcommand};
use matador::campaign::plan::Plan;
use matador::scenario::LoadedScenario;
use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `matador scenario`.
#[derive(Debug, Args)]
pub struct ScenarioArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: ScenarioCommand,
}

/// `matador scenario` subcommands.
#[derive(Debug, Subcommand)]
pub enum ScenarioCommand {
    /// Validates scenario files: errors name file, line and column and say what was expected.
    Check {
        /// Scenario YAML files.
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
    },
    /// Prints the JSON Schema of scenario files (generated from the types with schemars).
    Schema,
}

/// Runs `matador scenario`.
pub fn run(args: ScenarioArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        ScenarioCommand::Schema => {
            println!("{}", matador::scenario::schema::json_schema());
            Ok(ExitCode::SUCCESS)
        }
        ScenarioCommand::Check { files } => {
            let mut failed = false;
            for f in &files {
                match LoadedScenario::load(f) {
                    Ok(ls) => {
                        let plan = Plan::expand(&ls);
                        println!(
                            "{}: ok ({} measurements: {} message, {} baseline; {} messages; about {})",
                            f.display(),
                            plan.measurements.len(),
                            plan.count_kind(matador::campaign::plan::Kind::Message),
                            plan.count_kind(matador::campaign::plan::Kind::Baseline),
                            plan.total_messages(),
                            plan.duration_text(ls.scenario.node_capacity),
                        );
                    }
                    Err(e) => {
                        eprintln!("{e}");
                        failed = true;
                    }
                }
            }
            Ok(if failed {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            })
        }
    }
}
