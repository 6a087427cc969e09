//! Checks that a dataset folder holds exactly the registry's files.
//!
//! Per file: the sha256 of the decompressed contents must equal the registry's; a `.gz` must
//! also be a known wrapper of them (the original distribution, or a listed re-compression)
//! unless the caller accepts any wrapper; then the IDX structure, the sample count and the
//! label range are checked, and finally that images and labels of a split agree.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::{DataError, Result};
use crate::idx::{images_from_idx, labels_from_idx, parse_idx};
use crate::locate::file_in;
use crate::registry::{DatasetSpec, FileKind, FileSpec};

/// Lowercase hex sha256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// How a file's gzip wrapper relates to the published one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Wrapper {
    /// Byte-identical to the original distribution's `.gz`.
    Original,
    /// A known re-compression of the same contents.
    KnownRepack,
    /// A gzip file the registry does not know; its contents still verified.
    Unknown,
    /// Stored uncompressed.
    Uncompressed,
}

/// What `verify` found for one file.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FileReport {
    /// The file checked.
    pub path: PathBuf,
    /// Its gzip wrapper.
    pub wrapper: Wrapper,
    /// Samples it holds.
    pub count: usize,
}

/// What `verify` found for one dataset.
#[derive(Debug, Clone, serde::Serialize)]
pub struct VerifyReport {
    /// Registry name.
    pub name: &'static str,
    /// The folder checked.
    pub dir: PathBuf,
    /// One entry per file, in registry order.
    pub files: Vec<FileReport>,
}

/// Verifies every file of `spec` in `dir`.
///
/// With `any_wrapper = false`, a `.gz` whose own sha256 is neither the original nor a known
/// re-compression is an error even if its contents verify: a flipped byte in a gzip header
/// (time stamp, OS byte) does not change the contents, but the file is then not the one
/// published.
///
/// # Errors
/// The first problem met, naming the file: missing, unreadable, bad gzip,
/// [`DataError::Checksum`], an IDX error, a wrong count, or a label out of range.
pub fn verify(spec: &DatasetSpec, dir: &Path, any_wrapper: bool) -> Result<VerifyReport> {
    let mut files = Vec::new();
    for f in &spec.files {
        let path = file_in(dir, f).ok_or_else(|| DataError::NotFound {
            name: format!("{} ({})", spec.name, f.file_name),
            searched: vec![dir.to_path_buf()],
        })?;
        files.push(verify_file(spec, f, &path, any_wrapper)?);
    }
    for split in [crate::Split::Train, crate::Split::Test] {
        let (fi, fl) = spec.split_files(split);
        let ci = files[spec
            .files
            .iter()
            .position(|f| f.file_name == fi.file_name)
            .unwrap()]
        .clone();
        let cl = files[spec
            .files
            .iter()
            .position(|f| f.file_name == fl.file_name)
            .unwrap()]
        .clone();
        if ci.count != cl.count {
            return Err(DataError::CountMismatch {
                images: ci.path,
                n_images: ci.count,
                labels: cl.path,
                n_labels: cl.count,
            });
        }
    }
    Ok(VerifyReport {
        name: spec.name,
        dir: dir.to_path_buf(),
        files,
    })
}

/// Verifies one file against its registry entry.
pub fn verify_file(
    spec: &DatasetSpec,
    f: &FileSpec,
    path: &Path,
    any_wrapper: bool,
) -> Result<FileReport> {
    let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    let outer = sha256_hex(&bytes);
    let compressed = bytes.starts_with(&[0x1f, 0x8b]);
    let raw = crate::idx::decode_limited(path, bytes, f.idx_size(spec.image_shape))?;
    let inner = if compressed {
        sha256_hex(&raw)
    } else {
        outer.clone()
    };
    if inner != f.raw_sha256 {
        return Err(DataError::Checksum {
            path: path.to_path_buf(),
            what: "decompressed contents",
            expected: f.raw_sha256.to_string(),
            found: inner,
        });
    }
    let wrapper = if !compressed {
        Wrapper::Uncompressed
    } else if outer == f.gz_sha256 {
        Wrapper::Original
    } else if f.repacked_gz_sha256.contains(&outer.as_str()) {
        Wrapper::KnownRepack
    } else if any_wrapper {
        Wrapper::Unknown
    } else {
        return Err(DataError::Checksum {
            path: path.to_path_buf(),
            what: "gzip file (contents verified; pass --any-gzip to accept an unknown re-compression)",
            expected: f.gz_sha256.to_string(),
            found: outer,
        });
    };
    // The checksum already pins the contents; parsing still guards a registry entry that is
    // itself wrong, and reports the count.
    let array = parse_idx(path, &raw)?;
    let count = match f.kind {
        FileKind::Images => images_from_idx(path, array)?.n,
        FileKind::Labels => labels_from_idx(path, array, spec.n_classes())?.len(),
    };
    if count != f.count {
        return Err(DataError::BadDims {
            path: path.to_path_buf(),
            detail: format!("expected {} samples, found {count}", f.count),
        });
    }
    Ok(FileReport {
        path: path.to_path_buf(),
        wrapper,
        count,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::FASHION_MNIST_SMALL;

    fn copy_small(to: &Path) {
        let from = crate::locate::checkout_datasets().join("fashion-mnist-small");
        std::fs::create_dir_all(to).unwrap();
        for f in &FASHION_MNIST_SMALL.files {
            std::fs::copy(from.join(f.file_name), to.join(f.file_name)).unwrap();
        }
    }

    #[test]
    fn sha256_of_abc() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn bundled_copy_verifies_as_original() {
        let d = tempfile::tempdir().unwrap();
        copy_small(d.path());
        let r = verify(&FASHION_MNIST_SMALL, d.path(), false).unwrap();
        assert!(r.files.iter().all(|f| f.wrapper == Wrapper::Original));
        assert_eq!(
            r.files.iter().map(|f| f.count).collect::<Vec<_>>(),
            [2000, 2000, 1000, 1000]
        );
    }

    #[test]
    fn uncompressed_copy_verifies() {
        let d = tempfile::tempdir().unwrap();
        copy_small(d.path());
        let f = &FASHION_MNIST_SMALL.files[3];
        let raw = crate::idx::read_maybe_gz(&d.path().join(f.file_name)).unwrap();
        std::fs::remove_file(d.path().join(f.file_name)).unwrap();
        std::fs::write(d.path().join(f.raw_name()), raw).unwrap();
        let r = verify(&FASHION_MNIST_SMALL, d.path(), false).unwrap();
        assert_eq!(r.files[3].wrapper, Wrapper::Uncompressed);
    }

    /// Every single-byte flip, wherever it falls (gzip header, deflate stream, trailer), fails
    /// verification with an error naming the file.
    #[test]
    fn any_flipped_byte_fails_and_names_the_file() {
        let d = tempfile::tempdir().unwrap();
        copy_small(d.path());
        let f = &FASHION_MNIST_SMALL.files[3];
        let path = d.path().join(f.file_name);
        let good = std::fs::read(&path).unwrap();
        let positions = [
            0,
            1,
            3,
            4,
            7,
            8,
            9,
            10,
            good.len() / 2,
            good.len() - 5,
            good.len() - 1,
        ];
        for &pos in &positions {
            let mut bad = good.clone();
            bad[pos] ^= 0x01;
            std::fs::write(&path, &bad).unwrap();
            let err = verify(&FASHION_MNIST_SMALL, d.path(), false).unwrap_err();
            assert!(err.to_string().contains(f.file_name), "byte {pos}: {err}");
        }
        // A header-only flip keeps the contents: accepted only when any wrapper is.
        let mut bad = good.clone();
        bad[4] ^= 0x01; // gzip MTIME
        std::fs::write(&path, &bad).unwrap();
        let r = verify(&FASHION_MNIST_SMALL, d.path(), true).unwrap();
        assert_eq!(r.files[3].wrapper, Wrapper::Unknown);
    }

    #[test]
    fn truncated_file_fails() {
        let d = tempfile::tempdir().unwrap();
        copy_small(d.path());
        let f = &FASHION_MNIST_SMALL.files[0];
        let path = d.path().join(f.file_name);
        let good = std::fs::read(&path).unwrap();
        std::fs::write(&path, &good[..good.len() / 3]).unwrap();
        let err = verify(&FASHION_MNIST_SMALL, d.path(), false).unwrap_err();
        assert!(matches!(err, DataError::Gzip { .. }), "{err}");
    }

    #[test]
    fn missing_file_is_named() {
        let d = tempfile::tempdir().unwrap();
        copy_small(d.path());
        std::fs::remove_file(d.path().join(FASHION_MNIST_SMALL.files[1].file_name)).unwrap();
        let err = verify(&FASHION_MNIST_SMALL, d.path(), false).unwrap_err();
        assert!(
            err.to_string().contains("train-labels-idx1-ubyte.gz"),
            "{err}"
        );
    }
}
