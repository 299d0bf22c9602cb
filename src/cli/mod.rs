//! The command line: every command's flags as clap parses them (`args`), their
//! Portuguese help, and their resolution into a ready [`Invocation`] (`resolve`).
//!
//! Raw flags become a validated configuration in one place, as ripgrep's LowArgs become
//! HiArgs: the settings file, the environment and the built-in defaults are applied
//! there once, and every input that can be checked before a device is contacted is
//! checked there (exit 2 with a message that names the file, field or flag). No other
//! module imports this one.

mod args;
mod resolve;

pub use args::*;

use crate::commands::Invocation;
use crate::exit::EXIT_STATUS_HELP;
use crate::i18n::{self, Msg};
use crate::reporter::Verbosity;
use crate::settings::Settings;
use catraca_sim::SimulateArgs;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use std::path::PathBuf;

const EXAMPLES: &str = "Examples:
  catraca demo
  catraca enroll --users participants.csv --devices devices.toml
  catraca plan --users participants.csv --devices devices.toml --prune
  catraca enroll --users participants.csv --devices devices.toml --prune --expire --verify 5%
  catraca remove --users leaving.csv --devices devices.toml
  cat participants.csv | catraca enroll --users - --device http://10.0.0.5 --device http://10.0.0.6
  catraca check --devices devices.toml
  catraca learn-card --device portaria-3 --devices devices.toml --card 43,3012
  catraca enroll --users participants.csv --devices devices.toml --dashboard --events events.jsonl
  catraca publish --users all.csv --devices fleet.toml --queue redis://central:6379/0
  catraca agent --queue redis://central:6379/0 --site campinas --devices campinas.toml
  catraca status --queue redis://central:6379/0 --wait
  catraca simulate --devices 5 --port 8001 --latency-ms 50";

/// Enroll every participant on every access-control turnstile, fast and exactly once.
#[derive(Debug, Parser)]
#[command(name = "catraca", version, after_help = format!("{EXAMPLES}\n\n{EXIT_STATUS_HELP}"))]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// More output: -v prints one line per person-on-device, -vv adds debug logs.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Only the final report and errors: no progress, no warnings.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Language of messages: en or pt-BR (default: from LC_ALL / LC_MESSAGES / LANG).
    #[arg(long, global = true, value_name = "en|pt-BR")]
    pub lang: Option<String>,
    /// A settings file with defaults (threads, cache, devices, ...); default: catraca.toml
    /// in the current directory, if there is one. Flags and environment win over it.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

impl Cli {
    /// The process's command line, ready to run: the language chosen (`--lang`, the
    /// locale, the settings file) before clap parses so `--help` follows it, logging set
    /// up, then flags, environment and settings file resolved into one [`Invocation`].
    pub fn from_env() -> anyhow::Result<Invocation> {
        let args: Vec<String> = std::env::args_os()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let config = i18n::flag_value(&args, "--config").map(PathBuf::from);
        let settings = Settings::load(config.as_deref());
        let file_lang = settings.as_ref().ok().and_then(|s| s.lang.clone());
        i18n::init(
            i18n::flag_value(&args, "--lang").as_deref(),
            file_lang.as_deref(),
        );
        let matches = localize(Cli::command()).get_matches();
        let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
        crate::logging::init(cli.verbose, cli.quiet);
        let settings = settings?;
        if let Some(path) = &settings.path {
            log::debug!("settings from {}", path.display());
        }
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        resolve::invocation(cli, &matches, &settings, &env)
    }

    /// How much the run prints.
    pub fn verbosity(&self) -> Verbosity {
        match (self.quiet, self.verbose) {
            (true, _) => Verbosity::Quiet,
            (false, 0) => Verbosity::Normal,
            _ => Verbosity::Pairs,
        }
    }
}

/// The command definition with its help in the language in use (English as written in
/// the `///` comments; Portuguese from the catalogue, where clap lets us: descriptions,
/// flag help, headings, examples).
pub fn localize(cmd: clap::Command) -> clap::Command {
    if !i18n::is_pt() {
        return cmd;
    }
    fn walk(cmd: clap::Command, root: bool) -> clap::Command {
        let help_pt = |key: &str| {
            i18n::HELP_PT
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, text)| *text)
        };
        let name = cmd.get_name().to_string();
        let mut cmd = cmd
            .help_template(format!(
                "{{before-help}}{{about-with-newline}}\n{} {{usage}}\n\n{{all-args}}{{after-help}}",
                i18n::t(Msg::HelpUsage)
            ))
            .subcommand_help_heading(i18n::t(Msg::HelpCommands).trim_end_matches(':'))
            .disable_help_flag(true)
            .arg(
                clap::Arg::new("help")
                    .short('h')
                    .long("help")
                    .action(clap::ArgAction::Help)
                    .help("Mostra a ajuda")
                    .global(root),
            );
        if root {
            cmd = cmd.disable_version_flag(true).arg(
                clap::Arg::new("version")
                    .short('V')
                    .long("version")
                    .action(clap::ArgAction::Version)
                    .help("Mostra a versão"),
            );
        }
        if let Some(about) = help_pt(&format!("about:{name}")) {
            cmd = cmd.about(about.trim_end_matches('.'));
        }
        if cmd.get_after_help().is_some() {
            cmd = cmd.after_help(i18n::AFTER_HELP_PT);
        }
        let ids: Vec<String> = cmd
            .get_arguments()
            .map(|a| a.get_id().to_string())
            .collect();
        let heading: &'static str = i18n::t(Msg::HelpOptions).trim_end_matches(':');
        for id in ids {
            let text = help_pt(&format!("{name}:{id}")).or_else(|| help_pt(&id));
            cmd = cmd.mut_arg(id, |arg| {
                let arg = arg.help_heading(heading);
                match text {
                    Some(text) => arg.help(text.trim_end_matches('.')).long_help(None::<&str>),
                    None => arg,
                }
            });
        }
        let subs: Vec<String> = cmd
            .get_subcommands()
            .map(|s| s.get_name().to_string())
            .collect();
        for sub in subs {
            cmd = cmd.mut_subcommand(sub, |s| walk(s, false));
        }
        cmd
    }
    walk(cmd, true)
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Put every participant of a CSV on every device.
    Enroll(EnrollArgs),
    /// Show what `enroll` would do on each device (reads the devices, writes nothing).
    Plan(EnrollArgs),
    /// Take the people of a CSV off every device (with their cards and group links); a
    /// registration column is enough.
    Remove(EnrollArgs),
    /// Enroll the shipped 100 participants on 5 simulated turnstiles, twice.
    Demo(DemoArgs),
    /// Serve simulated Control iD, Hikvision and Intelbras devices on loopback (for tests and trials).
    #[command(after_long_help = catraca_sim::PROFILES)]
    Simulate(SimulateArgs),
    /// Measure enrollments against simulated turnstiles and print one table of figures.
    Bench(crate::bench::BenchArgs),
    /// Preflight: contact every device and tell whether it is ready (exit 0) or not (1).
    Check(CheckArgs),
    /// Read one swipe at a device and tell which card_format writes cards as its reader
    /// does (writes nothing to the device).
    LearnCard(LearnCardArgs),
    /// Central office: cut a participants CSV into per-site jobs on the central Redis
    /// (`--queue`), for the agents of each site.
    Publish(PublishArgs),
    /// On a site's box: do that site's jobs from the central Redis, with the site's own
    /// devices file (URLs and passwords stay at the site).
    Agent(AgentArgs),
    /// Central office: the report of a run of many sites, per device, per site, and the
    /// agents seen (`--wait` until it is done).
    Status(StatusArgs),
    /// Print the shell completion script (bash, zsh or fish) on stdout.
    Completions(CompletionsArgs),
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_bare_dashboard_flag_listens_on_loopback_8787() {
        let parse = |extra: &[&str]| {
            let mut args = vec!["catraca", "enroll", "--users", "p.csv"];
            args.extend_from_slice(extra);
            match Cli::try_parse_from(args).unwrap().command {
                Command::Enroll(args) => args.watch,
                other => panic!("{other:?}"),
            }
        };
        assert_eq!(parse(&[]).dashboard, None);
        let bare = parse(&["--dashboard"]);
        assert_eq!(bare.dashboard.as_deref(), Some("127.0.0.1:8787"));
        assert_eq!(bare.dashboard_linger, Duration::ZERO);
        let given = parse(&["--dashboard", "0.0.0.0:9000", "--dashboard-linger", "5m"]);
        assert_eq!(given.dashboard.as_deref(), Some("0.0.0.0:9000"));
        assert_eq!(given.dashboard_linger, Duration::from_secs(300));
    }

    #[test]
    fn every_flag_has_help_and_the_definition_is_consistent() {
        Cli::command().debug_assert();
        fn check(cmd: &clap::Command) {
            for arg in cmd.get_arguments() {
                if arg.get_id() != "help" && arg.get_id() != "version" {
                    assert!(
                        arg.get_help().is_some(),
                        "{} --{} has no help",
                        cmd.get_name(),
                        arg.get_id()
                    );
                }
            }
            for sub in cmd.get_subcommands() {
                check(sub);
            }
        }
        check(&Cli::command());
    }

    #[test]
    fn every_flag_has_portuguese_help_meant_for_its_own_command() {
        fn check(cmd: &clap::Command) {
            let name = cmd.get_name();
            for arg in cmd.get_arguments() {
                let id = arg.get_id().as_str();
                if id == "help" || id == "version" {
                    continue;
                }
                let found = i18n::HELP_PT
                    .iter()
                    .any(|(k, _)| *k == format!("{name}:{id}") || *k == id);
                assert!(found, "{name} --{id} has no Portuguese help");
            }
            for sub in cmd.get_subcommands() {
                check(sub);
            }
        }
        check(&Cli::command());
    }
}
