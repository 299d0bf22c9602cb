//! Logs go to stderr through env_logger: warnings by default, `-v` adds information,
//! `-vv` debug details, `-q` only errors; `RUST_LOG` overrides all of it. Nothing logged
//! at any level holds a password: drivers never format credentials or request bodies
//! that carry them.

/// Sets up the logger once for the process.
pub fn init(verbose: u8, quiet: bool) {
    let level = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        _ => "debug",
    };
    // Debug logs of our dependencies (HTTP internals) are noise for operators.
    let filter = format!("{level},ureq=warn,ureq_proto=warn,rustls=warn");
    env_logger::Builder::new()
        .parse_filters(&filter)
        .parse_env("RUST_LOG")
        .format_timestamp(None)
        .format_target(false)
        .init();
}
