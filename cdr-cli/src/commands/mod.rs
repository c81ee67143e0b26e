//! One file per subcommand: flags → settings → the library → the printer.

mod annotate;
mod config;
mod eval;
mod generate;
mod info;
mod logprobs;
mod merge;
mod pairs;
mod route;
mod score;
mod serve;

use crate::cli::Command;
use crate::printer::Printer;

/// Runs `command`, reporting on `printer`.
pub fn run(command: Command, printer: &mut Printer) -> anyhow::Result<()> {
    match command {
        Command::Score(args) => score::run(args, printer),
        Command::Eval(args) => eval::run(args, printer),
        Command::Annotate(args) => annotate::run(args, printer),
        Command::Generate(args) => generate::run(args, printer),
        Command::Logprobs(args) => logprobs::run(args, printer),
        Command::Pairs(args) => pairs::run(args, printer),
        Command::Route(args) => route::run(args, printer),
        Command::Serve(args) => serve::run(args, printer),
        Command::Info(args) => info::run(&args, printer),
        Command::Merge(args) => merge::run(args, printer),
        Command::Config(args) => config::run(&args, printer),
    }
}
