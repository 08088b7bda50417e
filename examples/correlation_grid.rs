//! The grid evaluation of server identification (docs/correlation.md):
//! `cargo run --release --example correlation_grid -- [MEASUREMENTS_PER_CELL] [SEED] [quick|final|full|hard|small]`
//! prints a Markdown table of precision and recall per condition cell on
//! campaigns from the independent generator `bench/measgen`.

#[path = "../tests/grid_common/mod.rs"]
mod grid_common;

use grid_common::{HEADER, grid, row, run_cell};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let n: usize = args.first().and_then(|s| s.parse().ok()).unwrap_or(105);
    let seed: u64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(1000);
    let mode = args.get(2).map_or("full", |s| s.as_str());
    let cells = if mode == "small" {
        grid_common::small_cells()
    } else if mode == "hard" {
        grid(&[6.0], &[0.5], &[60.0], &[false], &[0.0, 1.0])
            .into_iter()
            .map(|c| c.with_messages(2, 3))
            .collect()
    } else if mode == "final" {
        // The realistic corners and the hardest cells of the full grid.
        let mut v = grid(&[1.0], &[0.1], &[5.0], &[true], &[1.0]);
        v.extend(grid(&[3.0], &[0.3], &[30.0], &[true, false], &[1.0, 0.0]));
        v.extend(grid(&[3.0], &[0.3], &[60.0], &[true], &[1.0]));
        v.extend(grid(&[1.0], &[0.5], &[30.0], &[true], &[1.0]));
        v.extend(grid(&[6.0], &[0.5], &[5.0, 60.0], &[true], &[1.0]));
        v.extend(grid(&[6.0], &[0.5], &[60.0], &[false], &[1.0, 0.0]));
        v.push(grid(&[3.0], &[0.3], &[30.0], &[false], &[1.0])[0].with_messages(2, 3));
        v.push(grid(&[6.0], &[0.5], &[60.0], &[false], &[0.0])[0].with_messages(2, 3));
        v
    } else if mode == "full" {
        // Every lag × clock × noise with baselines; without baselines and
        // without any written uncertainty at the realistic corner and beyond.
        let mut v = grid(
            &[1.0, 3.0, 6.0],
            &[0.1, 0.3, 0.5],
            &[5.0, 30.0, 60.0],
            &[true],
            &[1.0],
        );
        v.extend(grid(
            &[3.0, 6.0],
            &[0.3, 0.5],
            &[30.0, 60.0],
            &[false],
            &[1.0],
        ));
        v.extend(grid(&[3.0, 6.0], &[0.3], &[30.0], &[true, false], &[0.0]));
        v.push(grid(&[3.0], &[0.3], &[30.0], &[false], &[1.0])[0].with_messages(2, 3));
        v.push(grid(&[6.0], &[0.5], &[60.0], &[false], &[0.0])[0].with_messages(2, 3));
        v
    } else {
        grid(&[3.0, 6.0], &[0.3, 0.5], &[30.0, 60.0], &[true], &[1.0])
    };
    println!("{HEADER}");
    let verbose = std::env::var_os("GRID_VERBOSE").is_some();
    for (i, c) in cells.iter().enumerate() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let cfg = matador::analysis::correlate::CorrelateConfig::default();
        let (s, alone) = run_cell(dir.path(), c, n, seed + i as u64, &cfg, verbose);
        println!("{}", row(c, &s, &alone));
        eprintln!(
            "cell {i}: {} measurements replayed in {:.1} s",
            s.measurements, s.secs
        );
    }
}
