//! The `matador` command: the command-line front end ([`cli`]) over the
//! `matador` library (the product) and `matador-lab` (the virtual lab). It
//! parses arguments, calls the libraries and prints; nothing else lives here.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
