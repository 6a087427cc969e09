//! `noisescope`: parse the command line, run the command, map the outcome to an exit code.
//! Exit codes: 0 success, 1 a failed command (the error is printed), 2 bad usage (clap).

mod args;
mod backend;
mod bench;
mod campaign;
mod config;
mod data_cmd;
mod escape_cmd;
mod experiment;
mod host_allocator;
mod output;
mod plot;
mod probe_cmd;
mod probes;
mod rundir;
mod sweep_cmd;
mod theory;
mod train_cmd;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // Rust ignores SIGPIPE, so a closed pipe (`noisescope plot DIR | head`) made the next
    // println! panic. The default action ends the process quietly, as for other Unix tools;
    // everything a run writes to its folder is already written atomically.
    #[cfg(unix)]
    // SAFETY: before any thread starts; SIG_DFL is a valid handler for SIGPIPE.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    host_allocator::keep_freed_memory();
    let cli = args::Cli::parse();
    if let Some(level) = cli.global.autotune {
        // SAFETY: set before any thread starts (no backend has been opened yet).
        unsafe { std::env::set_var("CUBECL_AUTOTUNE_LEVEL", level.as_env()) };
    }
    let result = match &cli.command {
        args::Command::Data(cmd) => data_cmd::run(&cli.global, cmd),
        args::Command::Bench(a) => bench::run(&cli.global, a),
        args::Command::Train(a) => train_cmd::run(&cli.global, a),
        args::Command::Escape(a) => escape_cmd::run(&cli.global, a),
        args::Command::Probe(a) => probe_cmd::run(&cli.global, a),
        args::Command::Sweep(a) => sweep_cmd::run(&cli.global, a),
        args::Command::Plot(a) => plot::run(a),
        args::Command::Theory(a) => theory::run(&cli.global, a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}
