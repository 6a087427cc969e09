//! The one error type of the data layer. Every variant carries the file, field or parameter
//! that explains it, so a message read alone tells the user what to fix.

use std::path::PathBuf;

/// Everything that can go wrong when reading, verifying, fetching or tweaking data.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The operating system refused a read or write.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The file is named or marked as gzip but does not decompress.
    #[error("{path}: bad gzip data ({detail})")]
    Gzip {
        /// The file.
        path: PathBuf,
        /// What the decoder said.
        detail: String,
    },
    /// The first four bytes are not an IDX magic number for unsigned bytes.
    #[error(
        "{path}: bad IDX magic {found:#010x} (expected 0x00000801 for labels or 0x00000803 for images)"
    )]
    BadMagic {
        /// The file.
        path: PathBuf,
        /// The big-endian u32 found at offset 0.
        found: u32,
    },
    /// The IDX header declares dimensions the caller cannot use.
    #[error("{path}: wrong dimensions: {detail}")]
    BadDims {
        /// The file.
        path: PathBuf,
        /// Expected against found.
        detail: String,
    },
    /// The payload is shorter (or longer) than the header promises.
    #[error(
        "{path}: truncated data: header promises {expected} bytes of payload, file holds {found}"
    )]
    Truncated {
        /// The file.
        path: PathBuf,
        /// Bytes the header promises.
        expected: usize,
        /// Bytes present.
        found: usize,
    },
    /// The payload is longer than the header promises.
    #[error("{path}: {extra} trailing bytes after the {expected} bytes the header promises")]
    TrailingBytes {
        /// The file.
        path: PathBuf,
        /// Bytes the header promises.
        expected: usize,
        /// Bytes beyond them.
        extra: usize,
    },
    /// Images and labels of one split disagree on the number of samples.
    #[error("{images} holds {n_images} images but {labels} holds {n_labels} labels")]
    CountMismatch {
        /// The image file.
        images: PathBuf,
        /// Its sample count.
        n_images: usize,
        /// The label file.
        labels: PathBuf,
        /// Its sample count.
        n_labels: usize,
    },
    /// A label is not below the number of classes.
    #[error("{path}: label {label} at index {index} is out of range (classes 0..{classes})")]
    LabelOutOfRange {
        /// The label file.
        path: PathBuf,
        /// Sample index.
        index: usize,
        /// The label found.
        label: u8,
        /// Number of classes.
        classes: usize,
    },
    /// A file's sha256 differs from the registry's.
    #[error(
        "{path}: sha256 of the {what} is {found}, expected {expected}: the file is corrupt or not the published one"
    )]
    Checksum {
        /// The file.
        path: PathBuf,
        /// `"gzip file"` or `"decompressed contents"`.
        what: &'static str,
        /// Registry value.
        expected: String,
        /// Computed value.
        found: String,
    },
    /// No search location holds the dataset.
    #[error("dataset '{name}' not found; looked in:\n{}\nfetch it with `noisescope data fetch {name}` (or pass --data-dir, or set NOISESCOPE_DATA)", searched.iter().map(|p| format!("  {}", p.display())).collect::<Vec<_>>().join("\n"))]
    NotFound {
        /// Dataset name.
        name: String,
        /// Every folder tried, in order.
        searched: Vec<PathBuf>,
    },
    /// The name is not in the registry.
    #[error("unknown dataset '{name}' (known: {})", known.join(", "))]
    UnknownDataset {
        /// The name asked for.
        name: String,
        /// Names the registry knows.
        known: Vec<&'static str>,
    },
    /// A download failed on every mirror.
    #[error("download of {file} failed: {detail}")]
    Download {
        /// The file being fetched.
        file: String,
        /// What each mirror answered.
        detail: String,
    },
    /// A tweak or generator was given parameters that make no sense for the data.
    #[error("invalid {what}: {detail}")]
    Invalid {
        /// The parameter or operation.
        what: &'static str,
        /// Why.
        detail: String,
    },
}

/// The data layer's result type.
pub type Result<T> = std::result::Result<T, DataError>;

impl DataError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        DataError::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn invalid(what: &'static str, detail: impl Into<String>) -> Self {
        DataError::Invalid {
            what,
            detail: detail.into(),
        }
    }
}
