//! The `catraca` binary: parse, run, map the result to an exit status, print an error once.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args_os()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    catraca::i18n::init(catraca::i18n::lang_flag(&args).as_deref());
    let cli = catraca::cli::Cli::parse_localized();
    catraca::logging::init(cli.verbose, cli.quiet);
    match catraca::cli::run(cli) {
        Ok(exit) => ExitCode::from(exit.code()),
        Err(error) => {
            let error = format!("{error:#}");
            eprintln!(
                "{}",
                catraca::i18n::tr(catraca::i18n::Msg::ErrorPrefix, &[("error", &error)])
            );
            ExitCode::from(catraca::exit::Exit::Usage.code())
        }
    }
}
