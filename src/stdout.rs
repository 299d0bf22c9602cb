//! Standard output, which carries only what a script would consume (the report, the
//! check's table or JSON, a completion script): progress and logs go to stderr.

/// Writes `text` on stdout; a closed pipe (`| head`) is the reader's choice, not an error.
pub fn print_stdout(text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        // A closed pipe (`| head`) is the reader's choice, not an error.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}
