//! `noisescope`: parse the command line, run the command, map the outcome to an exit code.
//! Exit codes: 0 success, 1 a failed command (the error is printed), 2 bad usage (clap).

mod args;
mod backend;
mod bench_cmd;
mod data_cmd;
mod output;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = args::Cli::parse();
    let result = match &cli.command {
        args::Command::Data(cmd) => data_cmd::run(&cli.global, cmd),
        args::Command::Bench(a) => bench_cmd::run(&cli.global, a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}
