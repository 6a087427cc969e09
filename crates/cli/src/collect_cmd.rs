//! `noisescope collect DIR`: the combined summary, table and figures of a sharded experiment
//! (a sweep or an escape experiment run by `--shard`, `--jobs`, `--devices` or a Slurm
//! array), or of a campaign of seeds, from whatever units are finished; lists the units still
//! missing, unfinished or failed.

use anyhow::{Result, bail};

use crate::args::{CollectArgs, Global};

pub fn run(g: &Global, a: &CollectArgs) -> Result<()> {
    let dir = &a.dir;
    if dir.join("sweep.toml").is_file() {
        crate::sweep_cmd::report(g, dir)
    } else if dir.join("escape.toml").is_file() {
        crate::escape_cmd::report(g, dir)
    } else if let seeds @ [_, ..] = crate::campaign::seed_folders(dir).as_slice() {
        for f in crate::campaign::report(dir, seeds)? {
            println!("figure: {}", f.display());
        }
        Ok(())
    } else if !dir.is_dir() {
        bail!("{}: no such folder", dir.display())
    } else {
        bail!(
            "{}: holds no sweep (sweep.toml), escape experiment (escape.toml) or campaign (seed-N/escape.toml) to collect",
            dir.display()
        )
    }
}
