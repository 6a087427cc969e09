//! `noisescope data …`: the datasets a researcher has, fetching and verifying them, and their
//! basic statistics.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use indicatif::ProgressBar;
use noisescope_data::{
    DATA_ENV, FetchEvent, FetchOptions, ImageDataset, SearchPath, Split, VerifyReport, Wrapper,
    fetch, lookup, mean_std_on_device, registry, verify,
};
use serde_json::json;

use crate::args::{DataCommand, Global};
use crate::output::{bytes_bar, print_json};

pub fn run(g: &Global, cmd: &DataCommand) -> Result<()> {
    let search = SearchPath::from_env(g.data_dir.clone());
    match cmd {
        DataCommand::List => list(g, &search),
        DataCommand::Fetch { names, mirror } => {
            for name in names {
                fetch_one(g, name, mirror)?;
            }
            Ok(())
        }
        DataCommand::Verify { names, any_gzip } => verify_cmd(g, &search, names, *any_gzip),
        DataCommand::Info { name } => info(g, &search, name),
    }
}

fn list(g: &Global, search: &SearchPath) -> Result<()> {
    let rows: Vec<_> = registry::ALL
        .iter()
        .map(|d| (d, search.locate(d).ok()))
        .collect();
    if g.json {
        print_json(&json!(
            rows.iter()
                .map(|(d, dir)| json!({
                    "name": d.name, "description": d.description, "classes": d.n_classes(),
                    "found": dir.as_ref().map(|p| p.display().to_string()),
                }))
                .collect::<Vec<_>>()
        ));
        return Ok(());
    }
    println!("{:<22} {:<70} found in", "dataset", "description");
    for (d, dir) in rows {
        let at = dir.map_or("(not found: `noisescope data fetch`)".to_string(), |p| {
            p.display().to_string()
        });
        println!("{:<22} {:<70} {at}", d.name, d.description);
    }
    Ok(())
}

/// Where `fetch` writes: `--data-dir`, else $NOISESCOPE_DATA, else ./datasets; then `<name>/`.
fn fetch_root(g: &Global) -> PathBuf {
    g.data_dir
        .clone()
        .or_else(|| {
            std::env::var_os(DATA_ENV)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        })
        .unwrap_or_else(|| PathBuf::from("datasets"))
}

fn fetch_one(g: &Global, name: &str, mirrors: &[String]) -> Result<()> {
    let spec = lookup(name)?;
    let dest = fetch_root(g).join(spec.name);
    let opts = FetchOptions {
        mirrors: (!mirrors.is_empty()).then(|| mirrors.to_vec()),
        ..FetchOptions::default()
    };
    let mut bar: Option<ProgressBar> = None;
    let quiet = g.quiet || g.json;
    let report = fetch(spec, &dest, &opts, &mut |ev| match ev {
        FetchEvent::Present { file } => {
            if !quiet {
                eprintln!("{file}: present and verified");
            }
        }
        FetchEvent::Start { file, url, total } => {
            if !quiet {
                eprintln!("{file}: downloading {url}");
            }
            bar = Some(bytes_bar(quiet, total, file));
        }
        FetchEvent::Progress { bytes } => {
            if let Some(b) = &bar {
                b.inc(bytes)
            }
        }
        FetchEvent::MirrorFailed { url, error } => {
            if let Some(b) = bar.take() {
                b.abandon();
            }
            eprintln!("{url}: {error}; trying the next mirror");
        }
        FetchEvent::Done { file } => {
            if let Some(b) = bar.take() {
                b.finish_and_clear();
            }
            if !quiet {
                eprintln!("{file}: verified");
            }
        }
    })
    .with_context(|| format!("fetching {} into {}", spec.name, dest.display()))?;
    print_verified(g, &report);
    Ok(())
}

fn wrapper_note(w: Wrapper) -> &'static str {
    match w {
        Wrapper::Original => "original .gz",
        Wrapper::KnownRepack => "known re-compression",
        Wrapper::Unknown => "unknown .gz wrapper, contents verified",
        Wrapper::Uncompressed => "uncompressed",
    }
}

fn print_verified(g: &Global, r: &VerifyReport) {
    if g.json {
        print_json(&serde_json::to_value(r).expect("report serializes"));
        return;
    }
    println!("{}: ok ({})", r.name, r.dir.display());
    for f in &r.files {
        println!(
            "  {:<28} {:>6} samples  sha256 ok  {}",
            f.path
                .file_name()
                .map(|n| n.to_string_lossy())
                .unwrap_or_default(),
            f.count,
            wrapper_note(f.wrapper)
        );
    }
}

fn verify_cmd(g: &Global, search: &SearchPath, names: &[String], any_gzip: bool) -> Result<()> {
    let explicit = !names.is_empty();
    let specs: Vec<_> = if explicit {
        names.iter().map(|n| lookup(n)).collect::<Result<_, _>>()?
    } else {
        registry::ALL.iter().collect()
    };
    let mut failures = Vec::new();
    let mut reports = Vec::new();
    for spec in specs {
        let dir = match search.locate(spec) {
            Ok(d) => d,
            Err(e) if explicit => {
                failures.push(format!("{e}"));
                continue;
            }
            Err(_) => {
                if !g.json {
                    println!("{}: not present", spec.name);
                }
                continue;
            }
        };
        match verify(spec, &dir, any_gzip) {
            Ok(r) => {
                if !g.json {
                    print_verified(g, &r);
                }
                reports.push(r);
            }
            Err(e) => {
                eprintln!("{}: FAILED: {e}", spec.name);
                failures.push(format!("{}: {e}", spec.name));
            }
        }
    }
    if g.json {
        print_json(&json!({"verified": reports, "failed": failures}));
    }
    match failures.len() {
        0 => Ok(()),
        1 => bail!("{}", failures[0]),
        n => bail!("{n} datasets failed verification:\n{}", failures.join("\n")),
    }
}

fn info(g: &Global, search: &SearchPath, name: &str) -> Result<()> {
    let spec = lookup(name)?;
    let dir = search.locate(spec)?;
    let opened = crate::backend::open(g.backend, g.device)?;
    let mut splits = Vec::new();
    for split in [Split::Train, Split::Test] {
        let ds = ImageDataset::load_split(spec, &dir, split)?;
        let (mean, std) =
            mean_std_on_device(ds.pixels.iter().map(|&p| p as f32 / 255.0), &opened.device);
        splits.push((split, ds, mean, std));
    }
    if g.json {
        print_json(&json!({
            "name": spec.name, "dir": dir.display().to_string(), "device": opened.description,
            "classes": spec.classes,
            "splits": splits.iter().map(|(s, ds, m, sd)| json!({
                "split": s.name(), "samples": ds.len(), "rows": ds.rows, "cols": ds.cols,
                "class_counts": ds.class_counts(), "pixel_mean": m, "pixel_std": sd,
            })).collect::<Vec<_>>(),
        }));
        return Ok(());
    }
    println!("{} — {}", spec.name, spec.description);
    println!("from {}", dir.display());
    println!(
        "pixel statistics on the [0, 1] scale, computed on {}",
        opened.description
    );
    println!();
    println!(
        "{:<8} {:>8} {:>8} {:>11} {:>10}",
        "split", "samples", "shape", "pixel mean", "pixel std"
    );
    for (s, ds, m, sd) in &splits {
        println!(
            "{:<8} {:>8} {:>8} {:>11.4} {:>10.4}",
            s.name(),
            ds.len(),
            format!("{}x{}", ds.rows, ds.cols),
            m,
            sd
        );
    }
    println!();
    println!("{:<3} {:<14} {:>7} {:>7}", "", "class", "train", "test");
    let counts: Vec<Vec<usize>> = splits
        .iter()
        .map(|(_, ds, _, _)| ds.class_counts())
        .collect();
    for (c, cname) in spec.classes.iter().enumerate() {
        println!("{c:<3} {cname:<14} {:>7} {:>7}", counts[0][c], counts[1][c]);
    }
    Ok(())
}
