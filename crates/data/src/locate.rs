//! Where a dataset's files are looked for, in order:
//!
//! 1. the `--data-dir` folder given on the command line,
//! 2. the folder named by the environment variable `NOISESCOPE_DATA`,
//! 3. `./datasets/<name>` under the working directory,
//! 4. `datasets/<name>` of the source checkout the binary was built from (so `cargo run` finds
//!    the bundled data from any working directory),
//! 5. `/usr/share/datasets/<name>` (where Debian's `dataset-fashion-mnist` installs).
//!
//! For 1 and 2 both `<dir>/<name>` and `<dir>` itself are tried, so `--data-dir` may name a
//! root of several datasets or one dataset's folder.

use std::path::{Path, PathBuf};

use crate::error::{DataError, Result};
use crate::registry::{DatasetSpec, FileSpec};

/// Name of the environment variable that points at a data root.
pub const DATA_ENV: &str = "NOISESCOPE_DATA";

/// The folders to search, already in order.
#[derive(Debug, Clone, Default)]
pub struct SearchPath {
    /// `--data-dir`, if given.
    pub data_dir: Option<PathBuf>,
    /// `$NOISESCOPE_DATA`, if set and non-empty.
    pub env_dir: Option<PathBuf>,
}

impl SearchPath {
    /// A search path with `--data-dir` and the current value of `NOISESCOPE_DATA`.
    pub fn from_env(data_dir: Option<PathBuf>) -> Self {
        let env_dir = std::env::var_os(DATA_ENV)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from);
        SearchPath { data_dir, env_dir }
    }

    /// Every folder tried for `name`, in order, without duplicates.
    pub fn candidates(&self, name: &str) -> Vec<PathBuf> {
        let mut out: Vec<PathBuf> = Vec::new();
        for root in [&self.data_dir, &self.env_dir].into_iter().flatten() {
            out.push(root.join(name));
            out.push(root.clone());
        }
        out.push(PathBuf::from("datasets").join(name));
        out.push(checkout_datasets().join(name));
        out.push(PathBuf::from("/usr/share/datasets").join(name));
        let mut seen = Vec::new();
        out.retain(|p| {
            let key = p.canonicalize().unwrap_or_else(|_| p.clone());
            let fresh = !seen.contains(&key);
            seen.push(key);
            fresh
        });
        out
    }

    /// The first folder that holds all of `spec`'s files (gzipped or not).
    ///
    /// # Errors
    /// [`DataError::NotFound`], listing every folder tried and how to fetch.
    pub fn locate(&self, spec: &DatasetSpec) -> Result<PathBuf> {
        let candidates = self.candidates(spec.name);
        candidates
            .iter()
            .find(|dir| spec.files.iter().all(|f| file_in(dir, f).is_some()))
            .cloned()
            .ok_or_else(|| DataError::NotFound {
                name: spec.name.to_string(),
                searched: candidates,
            })
    }
}

/// The path of `file` inside `dir`: the published `.gz` name, else the uncompressed name.
pub fn file_in(dir: &Path, file: &FileSpec) -> Option<PathBuf> {
    [file.file_name, file.raw_name()]
        .into_iter()
        .map(|n| dir.join(n))
        .find(|p| p.is_file())
}

/// The `datasets/` folder of the source checkout: from the crate's directory as cargo reports
/// it when it runs us (`cargo run`, `cargo test`), else as it was when this crate was compiled.
/// The runtime value comes first because a target directory shared between checkouts (a CI
/// cache) can hold this crate compiled in another checkout.
pub fn checkout_datasets() -> PathBuf {
    let crate_dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    crate_dir.join("../../datasets")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::MNIST;

    fn touch_all(dir: &Path) {
        std::fs::create_dir_all(dir).unwrap();
        for f in &MNIST.files {
            std::fs::write(dir.join(f.file_name), b"").unwrap();
        }
    }

    #[test]
    fn order_is_data_dir_then_env_then_local() {
        let sp = SearchPath {
            data_dir: Some("/a".into()),
            env_dir: Some("/b".into()),
        };
        let c = sp.candidates("mnist");
        assert_eq!(c[0], PathBuf::from("/a/mnist"));
        assert_eq!(c[1], PathBuf::from("/a"));
        assert_eq!(c[2], PathBuf::from("/b/mnist"));
        assert_eq!(c[3], PathBuf::from("/b"));
        assert_eq!(c[4], PathBuf::from("datasets/mnist"));
        assert_eq!(
            c.last().unwrap(),
            &PathBuf::from("/usr/share/datasets/mnist")
        );
    }

    #[test]
    fn data_dir_wins_over_env_and_accepts_both_layouts() {
        let root = tempfile::tempdir().unwrap();
        let a = root.path().join("a");
        let b = root.path().join("b");
        touch_all(&a.join("mnist"));
        touch_all(&b);
        let sp = SearchPath {
            data_dir: Some(a.clone()),
            env_dir: Some(b.clone()),
        };
        assert_eq!(sp.locate(&MNIST).unwrap(), a.join("mnist"));
        let sp = SearchPath {
            data_dir: None,
            env_dir: Some(b.clone()),
        };
        assert_eq!(sp.locate(&MNIST).unwrap(), b);
    }

    #[test]
    fn missing_dataset_lists_where_it_looked() {
        let root = tempfile::tempdir().unwrap();
        // Three of four files is not a dataset.
        std::fs::write(root.path().join(MNIST.files[0].file_name), b"").unwrap();
        let sp = SearchPath {
            data_dir: Some(root.path().to_path_buf()),
            env_dir: None,
        };
        let err = sp.locate(&MNIST).unwrap_err().to_string();
        assert!(err.contains(&root.path().display().to_string()), "{err}");
        assert!(err.contains("/usr/share/datasets/mnist"), "{err}");
        assert!(err.contains("noisescope data fetch mnist"), "{err}");
    }

    #[test]
    fn uncompressed_files_are_accepted() {
        let root = tempfile::tempdir().unwrap();
        for f in &MNIST.files {
            std::fs::write(root.path().join(f.raw_name()), b"").unwrap();
        }
        assert!(
            file_in(root.path(), &MNIST.files[0])
                .unwrap()
                .ends_with("train-images-idx3-ubyte")
        );
    }
}
