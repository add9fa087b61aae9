use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = edgetune::cli::Cli::parse();
    match edgetune::cli::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("edgetune: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
