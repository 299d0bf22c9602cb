//! Colour on the terminal, and only there: the summary and `catraca check` mark what
//! needs attention (failures red, ready green, warnings yellow) when their stream is a
//! terminal, `NO_COLOR` is unset or empty (<https://no-color.org>) and `TERM` is not
//! `dumb`. Files, pipes and CI logs get plain text. clap's help and the logs follow the
//! same rules through anstream.

use std::io::IsTerminal;

/// The colours catraca uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Color {
    Red,
    Green,
    Yellow,
}

/// Whether to colour what goes to stdout.
pub fn stdout_enabled() -> bool {
    enabled(std::io::stdout().is_terminal(), &|name| {
        std::env::var(name).ok()
    })
}

/// The rule, with the environment injected for tests.
pub fn enabled(terminal: bool, env: &dyn Fn(&str) -> Option<String>) -> bool {
    terminal
        && env("NO_COLOR").is_none_or(|v| v.is_empty())
        && env("TERM").as_deref() != Some("dumb")
}

/// `text` in `color` when `on`, else unchanged.
pub fn paint(text: &str, color: Color, on: bool) -> String {
    if !on {
        return text.to_string();
    }
    let code = match color {
        Color::Red => "31",
        Color::Green => "32",
        Color::Yellow => "33",
    };
    format!("\x1b[{code}m{text}\x1b[0m")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_color_and_pipes_turn_colour_off() {
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                vars.iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.to_string())
            }
        };
        assert!(enabled(true, &env(&[])));
        assert!(!enabled(false, &env(&[])));
        assert!(!enabled(true, &env(&[("NO_COLOR", "1")])));
        assert!(enabled(true, &env(&[("NO_COLOR", "")])));
        assert!(!enabled(true, &env(&[("TERM", "dumb")])));
        assert_eq!(paint("x", Color::Red, false), "x");
        assert_eq!(paint("x", Color::Red, true), "\x1b[31mx\x1b[0m");
    }
}
