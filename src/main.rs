//! The `catraca` binary: parse, run, map the result to an exit status, print an error once.

use catraca::i18n::{tr, Msg};
use std::process::ExitCode;

fn main() -> ExitCode {
    let result = catraca::cli::Cli::from_env().and_then(catraca::commands::run);
    match result {
        Ok(exit) => ExitCode::from(exit.code()),
        Err(error) => {
            let error = format!("{error:#}");
            eprintln!("{}", tr(Msg::ErrorPrefix, &[("error", &error)]));
            ExitCode::from(catraca::exit::Exit::Usage.code())
        }
    }
}
