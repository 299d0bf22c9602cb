//! The `catraca` binary: parse, run, map the result to an exit status, print an error once.

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = catraca::cli::Cli::parse();
    catraca::logging::init(cli.verbose, cli.quiet);
    match catraca::cli::run(cli) {
        Ok(exit) => ExitCode::from(exit.code()),
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(catraca::exit::Exit::Usage.code())
        }
    }
}
