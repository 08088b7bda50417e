//! `measgen OUT [--measurements N] [--messages MIN-MAX] [--seed S] [--lag S]
//! [--clock S] [--noise PER_MIN] [--uncertainty SHARE] [--no-baselines]
//! [--open]`: writes a campaign folder (see the library docs).

use measgen::{Dialect, Spec, write_campaign};
use std::process::ExitCode;

fn parse(args: &[String]) -> Result<(String, Spec), String> {
    let mut spec = Spec::default();
    let mut out = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = |name: &str| -> Result<f64, String> {
            it.next()
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| format!("{name} needs a number"))
        };
        match a.as_str() {
            "--measurements" => spec.measurements = val(a)? as usize,
            "--seed" => spec.seed = val(a)? as u64,
            "--lag" => spec.cond.lag_max = val(a)?,
            "--clock" => spec.cond.clock_error = val(a)?,
            "--noise" => spec.cond.noise_per_min = val(a)?,
            "--uncertainty" => spec.cond.uncertainty_share = val(a)?,
            "--pairs" => spec.pairs = val(a)? as usize,
            "--messages" => {
                let v = it.next().ok_or("--messages needs MIN-MAX")?;
                let (lo, hi) = v.split_once('-').unwrap_or((v, v));
                let p = |s: &str| s.parse::<u32>().map_err(|_| format!("bad --messages {v}"));
                spec.messages = (p(lo)?, p(hi)?);
            }
            "--no-baselines" => spec.cond.baselines = false,
            "--open" => spec.dialect = Dialect::Open,
            s if !s.starts_with("--") && out.is_none() => out = Some(s.to_string()),
            s => return Err(format!("unknown argument {s}")),
        }
    }
    Ok((out.ok_or("usage: measgen OUT [options]")?, spec))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (out, spec) = match parse(&args) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("measgen: {e}");
            return ExitCode::from(2);
        }
    };
    match write_campaign(std::path::Path::new(&out), &spec) {
        Ok(c) => {
            println!(
                "{}: {} message measurements, {} messages",
                c.dir.display(),
                c.truth.len(),
                c.messages
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("measgen: {out}: {e}");
            ExitCode::FAILURE
        }
    }
}
