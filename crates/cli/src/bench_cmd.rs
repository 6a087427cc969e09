//! `noisescope bench`: opens the device, runs the workloads of the `noisescope-bench` crate
//! with a row counter, and prints the table (or the JSON document).

use anyhow::{Result, bail};
use noisescope_bench::{Options, Target, selection, table};

use crate::args::{BackendKind, BenchArgs, Global};
use crate::backend;

pub fn run(g: &Global, args: &BenchArgs) -> Result<()> {
    let workloads = selection(args.only.as_deref(), args.skip.as_deref())?;
    if args.file.is_some() && !g.json {
        bail!("a file name for bench's output goes after --json: `noisescope bench --json FILE`");
    }
    let opened = backend::open(g.backend, g.device)?;
    let target = Target {
        device: opened.device.clone(),
        description: opened.description.clone(),
        backend: format!("{:?}", g.backend).to_lowercase(),
        gpu: opened.kind == BackendKind::Wgpu,
        reference: backend::open(BackendKind::Ndarray, None)?.device,
    };
    let options = Options {
        quick: args.quick,
        workloads,
        seed: args.seed,
        budget_s: args.budget_s,
        out: args.file.clone(),
    };
    let bench = noisescope_bench::run(
        &target,
        &options,
        crate::output::rows_counter(g.quiet, "bench"),
    )?;
    if g.json && bench.out().is_none() {
        crate::output::print_json(&bench.document(true));
    } else {
        println!(
            "noisescope bench on {} ({} mode, {:.0} s)",
            opened.description,
            if args.quick { "quick" } else { "full" },
            bench.elapsed_s()
        );
        print!("{}", table(bench.rows()));
        if let Some(p) = bench.out() {
            println!("\nrows written to {}", p.display());
        }
    }
    let failed = bench.failed();
    if !failed.is_empty() {
        bail!(
            "{} row(s) failed (see their `error`): {}",
            failed.len(),
            failed.join("; ")
        );
    }
    Ok(())
}
