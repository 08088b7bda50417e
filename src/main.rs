//! The `matador` command: the command-line front end ([`cli`]) over the
//! `matador` library (the product) and `matador-lab` (the virtual lab). It
//! parses arguments, calls the libraries and prints; nothing else lives here.

mod cli;

/// mimalloc instead of glibc's malloc: replay allocates and frees many small
/// records and strings per flow, and glibc's allocator was about a tenth of
/// its CPU time on real traffic (docs/dev-notes/issue-22-speed.md, round 3).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    cli::main()
}
