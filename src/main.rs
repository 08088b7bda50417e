//! The `matador` command. Everything lives in the library; this stays thin.

fn main() -> std::process::ExitCode {
    matador::cli::main()
}
