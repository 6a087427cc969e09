//! `noisescope`: parse the command line, run the command, map the outcome to an exit code.
//! Exit codes: 0 success, 1 a failed command (the error is printed), 2 bad usage (clap).

mod args;
mod backend;
mod bench_cmd;
mod campaign;
mod collect_cmd;
mod data_cmd;
mod draw;
mod escape_cmd;
mod experiment;
mod export_cmd;
mod fanout;
#[cfg(feature = "gpu-fusion")]
mod gpu_tuning;
mod host_allocator;
mod output;
mod plot_cmd;
mod probe_cmd;
mod raster;
mod run_loop;
mod shard;
mod slurm_cmd;
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
    noisescope_runs::provenance::mark_start();
    host_allocator::keep_freed_memory();
    let cli = args::Cli::parse();
    let threads = set_threads(cli.global.threads);
    if let Some(level) = cli.global.autotune {
        // SAFETY: set before any thread starts (no backend has been opened yet).
        unsafe { std::env::set_var("CUBECL_AUTOTUNE_LEVEL", level.as_env()) };
    }
    // After the variable, before any device: cubecl reads its configuration once.
    #[cfg(feature = "gpu-fusion")]
    gpu_tuning::configure();
    // After the variables: loading OpenBLAS starts its thread pool.
    if let Err(e) = noisescope_models::init_matmul_engine(cli.global.blas.as_deref(), threads) {
        eprintln!("error: --blas / NOISESCOPE_BLAS: {e}");
        return ExitCode::from(2);
    }
    let result = match &cli.command {
        args::Command::Data(cmd) => data_cmd::run(&cli.global, cmd),
        args::Command::Bench(a) => bench_cmd::run(&cli.global, a),
        args::Command::Train(a) => train_cmd::run(&cli.global, a),
        args::Command::Escape(a) => escape_cmd::run(&cli.global, a),
        args::Command::Probe(a) => probe_cmd::run(&cli.global, a),
        args::Command::Sweep(a) => sweep_cmd::run(&cli.global, a),
        args::Command::Plot(a) => plot_cmd::run(a),
        args::Command::Theory(a) => theory::run(&cli.global, a),
        args::Command::Export(a) => export_cmd::run(a),
        args::Command::Devices => backend::list(&cli.global),
        args::Command::Collect(a) => collect_cmd::run(&cli.global, a),
        args::Command::Slurm(a) => slurm_cmd::run(&cli.global, a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// One thread count for the host kernels and `matrixmultiply`: `--threads`, else
/// `MATMUL_NUM_THREADS`, else the cores this process may run on (its CPU affinity).
fn set_threads(flag: Option<u16>) -> usize {
    let from_env = std::env::var("MATMUL_NUM_THREADS")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|&n| n > 0);
    let n = flag
        .map(usize::from)
        .or(from_env)
        .unwrap_or_else(noisescope_models::host_threads);
    noisescope_models::set_host_threads(n);
    // OpenBLAS's idle workers spin for 2²⁸ cycles by default before they sleep, taking the
    // cores that the host kernels' own threads and the next elementwise passes want: W4's
    // Lanczos took 5.7–5.9 s with the default and 3.7–4.2 s with 2⁴ cycles (bench --quick, 2
    // cores, alternating runs). A user's own setting wins.
    if std::env::var_os("OPENBLAS_THREAD_TIMEOUT").is_none() {
        // SAFETY: as below, before any thread starts.
        unsafe { std::env::set_var("OPENBLAS_THREAD_TIMEOUT", "4") };
    }
    // SAFETY: before any thread starts and before any matrix product (matrixmultiply reads
    // the variable once, at its first product).
    unsafe { std::env::set_var("MATMUL_NUM_THREADS", n.to_string()) };
    n
}
