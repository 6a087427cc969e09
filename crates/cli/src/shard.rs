//! Shards: which of an experiment's units (its sweep runs, its escape dynamics) one process
//! runs. Shard i of n runs units i, i + n, i + 2n, … of the experiment's fixed unit list, so
//! that any number of processes, on one machine or as the tasks of a Slurm job array, split
//! the work without talking to each other: each unit has its own folder, and the combined
//! summary is built from the folders afterwards (`noisescope collect`).

use anyhow::{Context, Result, bail};

pub use crate::args::Shard;

impl Shard {
    /// The whole experiment in one process.
    pub const ALL: Shard = Shard { index: 0, count: 1 };

    /// The positions of this shard's units in a list of `units`.
    pub fn units(&self, units: usize) -> Vec<usize> {
        (self.index..units).step_by(self.count).collect()
    }

    /// The shard of a Slurm job-array task, from the variables Slurm sets in it: index
    /// (id − min) / step of `SLURM_ARRAY_TASK_COUNT` tasks (steps from
    /// `SLURM_ARRAY_TASK_STEP`, default 1). Only a regular array min, min + step, …, max
    /// qualifies: a list of ids (`--array=1,3,5`), or a single task resubmitted alone
    /// (`--array=3`), does not say which shard of how many it is, and would run units that
    /// other tasks run. None outside an array task.
    pub fn from_slurm(var: impl Fn(&str) -> Option<String>) -> Result<Option<Shard>> {
        let Some(id) = var("SLURM_ARRAY_TASK_ID") else {
            return Ok(None);
        };
        let num = |name: &str| -> Result<Option<usize>> {
            var(name)
                .map(|v| {
                    v.trim()
                        .parse::<usize>()
                        .with_context(|| format!("{name}={v}: not a task number"))
                })
                .transpose()
        };
        let id: usize = id
            .trim()
            .parse()
            .with_context(|| format!("SLURM_ARRAY_TASK_ID={id}: not a task number"))?;
        let min = num("SLURM_ARRAY_TASK_MIN")?.unwrap_or(0);
        let step = num("SLURM_ARRAY_TASK_STEP")?.unwrap_or(1).max(1);
        let max = num("SLURM_ARRAY_TASK_MAX")?;
        let count = match (num("SLURM_ARRAY_TASK_COUNT")?, max) {
            (Some(c), _) => c,
            (None, Some(max)) if max >= min => (max - min) / step + 1,
            _ => bail!(
                "SLURM_ARRAY_TASK_ID is set but neither SLURM_ARRAY_TASK_COUNT nor SLURM_ARRAY_TASK_MAX: cannot tell the shard; pass --shard i/n"
            ),
        };
        let regular = count > 0
            && id >= min
            && (id - min).is_multiple_of(step)
            && (id - min) / step < count
            && max.is_none_or(|m| m == min + step * (count - 1));
        if !regular {
            bail!(
                "SLURM_ARRAY_TASK_ID={id} is not one of a regular array of {count} tasks from {min} by {step}: pass --shard i/n"
            );
        }
        if count == 1 && id != 0 {
            bail!(
                "a one-task array with SLURM_ARRAY_TASK_ID={id}, a resubmitted task perhaps, does not say which shard it is: pass --shard {id}/N"
            );
        }
        Ok(Some(Shard {
            index: (id - min) / step,
            count,
        }))
    }

    /// `--shard` when given, else the Slurm array task's shard, else None (every unit).
    pub fn resolve(flag: Option<Shard>) -> Result<Option<Shard>> {
        match flag {
            Some(s) => Ok(Some(s)),
            None => Shard::from_slurm(|k| std::env::var(k).ok()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn parses_and_refuses() {
        assert_eq!("2/4".parse::<Shard>(), Ok(Shard { index: 2, count: 4 }));
        for bad in ["4/4", "0/0", "1", "-1/3", "a/b", "1/2/3"] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
    }

    #[test]
    fn shards_cover_every_unit_once() {
        for count in 1..6 {
            let mut seen: Vec<usize> = (0..count)
                .flat_map(|index| Shard { index, count }.units(11))
                .collect();
            seen.sort();
            assert_eq!(seen, (0..11).collect::<Vec<_>>());
        }
        assert_eq!(Shard { index: 1, count: 3 }.units(8), vec![1, 4, 7]);
    }

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| m.get(k).cloned()
    }

    #[test]
    fn reads_slurm_arrays() {
        assert_eq!(Shard::from_slurm(env(&[])).unwrap(), None);
        let s = Shard::from_slurm(env(&[
            ("SLURM_ARRAY_TASK_ID", "3"),
            ("SLURM_ARRAY_TASK_COUNT", "4"),
        ]))
        .unwrap();
        assert_eq!(s, Some(Shard { index: 3, count: 4 }));
        // An array 5-8: ids shift down to 0-3.
        let s = Shard::from_slurm(env(&[
            ("SLURM_ARRAY_TASK_ID", "6"),
            ("SLURM_ARRAY_TASK_MIN", "5"),
            ("SLURM_ARRAY_TASK_MAX", "8"),
            ("SLURM_ARRAY_TASK_COUNT", "4"),
        ]))
        .unwrap();
        assert_eq!(s, Some(Shard { index: 1, count: 4 }));
        let e = Shard::from_slurm(env(&[("SLURM_ARRAY_TASK_ID", "1")])).unwrap_err();
        assert!(e.to_string().contains("--shard"), "{e}");
        let e = Shard::from_slurm(env(&[
            ("SLURM_ARRAY_TASK_ID", "x"),
            ("SLURM_ARRAY_TASK_COUNT", "4"),
        ]))
        .unwrap_err();
        assert!(e.to_string().contains("SLURM_ARRAY_TASK_ID=x"), "{e}");
        let e = Shard::from_slurm(env(&[
            ("SLURM_ARRAY_TASK_ID", "4"),
            ("SLURM_ARRAY_TASK_COUNT", "4"),
        ]))
        .unwrap_err();
        assert!(e.to_string().contains("--shard"), "{e}");
        // An array 0-15:4: ids 0, 4, 8, 12 are shards 0-3 of 4.
        let s = Shard::from_slurm(env(&[
            ("SLURM_ARRAY_TASK_ID", "8"),
            ("SLURM_ARRAY_TASK_MIN", "0"),
            ("SLURM_ARRAY_TASK_MAX", "12"),
            ("SLURM_ARRAY_TASK_STEP", "4"),
            ("SLURM_ARRAY_TASK_COUNT", "4"),
        ]))
        .unwrap();
        assert_eq!(s, Some(Shard { index: 2, count: 4 }));
        // A list of ids, and a task resubmitted alone, are refused.
        for (id, min, max, count) in [("3", "1", "5", "3"), ("3", "3", "3", "1")] {
            let e = Shard::from_slurm(env(&[
                ("SLURM_ARRAY_TASK_ID", id),
                ("SLURM_ARRAY_TASK_MIN", min),
                ("SLURM_ARRAY_TASK_MAX", max),
                ("SLURM_ARRAY_TASK_COUNT", count),
            ]))
            .unwrap_err();
            assert!(e.to_string().contains("--shard"), "{e}");
        }
    }
}
