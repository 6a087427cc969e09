//! The cached covariance of a trainer state as a checkpoint stores it: a small JSON record
//! ([`NoiseRecord`]) and named flat tensors with their shapes. The file format (safetensors,
//! element types, paths) is the caller's; what the names hold and which belong together is
//! decided here.

use burn::prelude::*;

use crate::shape::NoiseShape;
use crate::surrogate::Covariance;

/// The tensor holding a diagonal covariance's s ([D]).
pub const NOISE_STD: &str = "noise.std";
/// The tensor holding a low-rank covariance's rows u_j ([k, D]).
pub const NOISE_VECTORS: &str = "noise.vectors";

/// The JSON part of a cached covariance.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum NoiseRecord {
    /// σ² I_D.
    Iso {
        /// σ.
        std: f64,
        /// D.
        dim: usize,
    },
    /// diag(s²); s is the tensor [`NOISE_STD`].
    Diag,
    /// Σ_j s_j² u_j u_jᵀ; the u_j are the rows of the tensor [`NOISE_VECTORS`].
    LowRank {
        /// s_j.
        std: Vec<f64>,
    },
    /// scale² G_F(θ).
    Ggn {
        /// √(Tr C / Tr G_F) at the last refresh.
        scale: f64,
        /// Tr C at the last refresh.
        trace: f64,
    },
}

/// A flat tensor with the shape it is stored under.
pub struct NamedTensor {
    /// Its name in the checkpoint.
    pub name: &'static str,
    /// Its shape there ([D] or [k, D]).
    pub shape: Vec<usize>,
    /// Its values, flattened row by row.
    pub values: Tensor<1>,
}

/// Why a stored covariance cannot be rebuilt; the caller names the file.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StoredNoiseError {
    /// A tensor the record needs is missing.
    #[error("lacks tensor `{0}`")]
    Missing(&'static str),
    /// A tensor is present that the record's kind does not use (`kind`: "a missing", "a
    /// ggn", "a diagonal", "a low-rank").
    #[error("tensor `{name}` does not belong to {kind} covariance")]
    Stray {
        /// The tensor.
        name: &'static str,
        /// The record's kind, with its article.
        kind: &'static str,
    },
    /// A number of the record is out of range.
    #[error("{0}")]
    Value(String),
}

impl Covariance {
    /// The covariance as stored: its record and the tensors it needs.
    pub fn to_stored(&self) -> (NoiseRecord, Vec<NamedTensor>) {
        match self {
            Covariance::Ggn { scale, trace } => (
                NoiseRecord::Ggn {
                    scale: *scale,
                    trace: *trace,
                },
                vec![],
            ),
            Covariance::Shape(NoiseShape::Iso { std, dim }) => (
                NoiseRecord::Iso {
                    std: *std,
                    dim: *dim,
                },
                vec![],
            ),
            Covariance::Shape(NoiseShape::Diag { std }) => (
                NoiseRecord::Diag,
                vec![NamedTensor {
                    name: NOISE_STD,
                    shape: std.dims().to_vec(),
                    values: std.clone(),
                }],
            ),
            Covariance::Shape(NoiseShape::LowRank { vectors, std }) => {
                let [k, d] = vectors.dims();
                (
                    NoiseRecord::LowRank { std: std.clone() },
                    vec![NamedTensor {
                        name: NOISE_VECTORS,
                        shape: vec![k, d],
                        values: vectors.clone().reshape([k * d]),
                    }],
                )
            }
        }
    }

    /// Rebuilds the cached covariance from its record (None: there was none) and the stored
    /// tensors: `present(name)` says whether a tensor is stored at all, `read(name)` reads
    /// it flat with its shape (its own checks may fail with `E`). Tensors the record's kind
    /// does not use are refused before any is read.
    pub fn from_stored<E>(
        record: Option<NoiseRecord>,
        present: impl Fn(&str) -> bool,
        mut read: impl FnMut(&'static str) -> Result<Option<(Tensor<1>, Vec<usize>)>, E>,
    ) -> Result<Option<Covariance>, StoredError<E>> {
        let refuse =
            |names: &[&'static str], kind: &'static str| match names.iter().find(|n| present(n)) {
                Some(name) => Err(StoredError::Noise(StoredNoiseError::Stray { name, kind })),
                None => Ok(()),
            };
        let mut need = |name: &'static str| match read(name) {
            Ok(Some(t)) => Ok(t),
            Ok(None) => Err(StoredError::Noise(StoredNoiseError::Missing(name))),
            Err(e) => Err(StoredError::Read(e)),
        };
        Ok(match record {
            None => {
                refuse(&[NOISE_STD, NOISE_VECTORS], "a missing")?;
                None
            }
            Some(NoiseRecord::Iso { std, dim }) => {
                if !(std.is_finite() && std >= 0.0) {
                    return Err(StoredError::Noise(StoredNoiseError::Value(format!(
                        "noise std {std} is not a finite σ ≥ 0"
                    ))));
                }
                Some(Covariance::Shape(NoiseShape::Iso { std, dim }))
            }
            Some(NoiseRecord::Ggn { scale, trace }) => {
                refuse(&[NOISE_STD, NOISE_VECTORS], "a ggn")?;
                if !(scale.is_finite() && scale >= 0.0 && trace.is_finite() && trace >= 0.0) {
                    return Err(StoredError::Noise(StoredNoiseError::Value(format!(
                        "ggn scale {scale} and Tr C {trace} are not finite values ≥ 0"
                    ))));
                }
                Some(Covariance::Ggn { scale, trace })
            }
            Some(NoiseRecord::Diag) => {
                refuse(&[NOISE_VECTORS], "a diagonal")?;
                let (std, _) = need(NOISE_STD)?;
                Some(Covariance::Shape(NoiseShape::Diag { std }))
            }
            Some(NoiseRecord::LowRank { std }) => {
                refuse(&[NOISE_STD], "a low-rank")?;
                let (flat, shape) = need(NOISE_VECTORS)?;
                Some(Covariance::Shape(NoiseShape::LowRank {
                    vectors: flat.reshape([shape[0], shape[1]]),
                    std,
                }))
            }
        })
    }
}

/// Why a stored covariance was not rebuilt: its record or tensors do not fit together, or
/// reading a tensor failed.
#[derive(Debug)]
pub enum StoredError<E> {
    /// The record and the tensors disagree, or a number is out of range.
    Noise(StoredNoiseError),
    /// The caller's reader failed.
    Read(E),
}
