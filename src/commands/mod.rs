//! The commands, each run from its resolved configuration: the command line (`cli`)
//! builds an [`Invocation`], and nothing here knows about flags.

pub mod agent;
pub mod check;
pub mod demo;
pub mod enroll;
pub mod learn_card;
pub mod publish;
pub mod status;

use crate::bench::BenchArgs;
use crate::exit::Exit;
use catraca_sim::SimulateArgs;
use check::CheckConfig;
use demo::DemoConfig;

/// One command, ready to run.
#[derive(Debug)]
pub enum Invocation {
    /// `enroll`, `plan` or `remove`.
    Enroll(enroll::EnrollConfig),
    Demo(DemoConfig),
    Simulate(SimulateArgs),
    Bench(BenchArgs),
    Check(CheckConfig),
    LearnCard(learn_card::LearnCardConfig),
    Publish(publish::PublishConfig),
    Agent(agent::AgentConfig),
    Status(status::StatusConfig),
    /// Text for stdout, already made (a completion script).
    Print(String),
}

/// Runs `invocation`: the process's exit status, or an error (exit 2).
pub fn run(invocation: Invocation) -> anyhow::Result<Exit> {
    match invocation {
        Invocation::Enroll(config) => enroll::run(config),
        Invocation::Demo(config) => demo::run(config),
        Invocation::Simulate(args) => catraca_sim::run(args).map(|()| Exit::Done),
        Invocation::Bench(args) => crate::bench::run(args),
        Invocation::Check(config) => check::run(config),
        Invocation::LearnCard(config) => learn_card::run(config),
        Invocation::Publish(config) => publish::run(config),
        Invocation::Agent(config) => agent::run(config),
        Invocation::Status(config) => status::run(config),
        Invocation::Print(text) => {
            crate::stdout::print_stdout(&text)?;
            Ok(Exit::Done)
        }
    }
}
