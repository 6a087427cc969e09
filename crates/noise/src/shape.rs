//! The noise covariances C of SPEC §2 in factored form, each sampled in O(D) or O(kD):
//! ξ = σ z (isotropic), s ⊙ z (diagonal), Σ_j s_j z_j u_j (low rank), with z standard normal.

use burn::prelude::*;
use burn::tensor::DType;
use noisescope_models::ops::matmul;

use crate::stream::NoiseStream;

/// A centered Gaussian N(0, C) given by a square-root factor of C.
#[derive(Debug, Clone)]
pub enum NoiseShape {
    /// C = σ² I_D.
    Iso {
        /// σ.
        std: f64,
        /// D.
        dim: usize,
    },
    /// C = diag(s²).
    Diag {
        /// s, [D].
        std: Tensor<1>,
    },
    /// C = Σ_j s_j² u_j u_jᵀ for orthonormal rows u_j.
    LowRank {
        /// u_j as rows, [k, D].
        vectors: Tensor<2>,
        /// s_j.
        std: Vec<f64>,
    },
}

impl NoiseShape {
    /// Tr C.
    pub fn trace(&self) -> f64 {
        match self {
            NoiseShape::Iso { std, dim } => std * std * *dim as f64,
            NoiseShape::Diag { std } => std.clone().square().sum().into_scalar::<f64>(),
            NoiseShape::LowRank { std, .. } => std.iter().map(|s| s * s).sum(),
        }
    }

    /// `count` independent draws as rows, [count, D] (one matmul for a low-rank C).
    ///
    /// # Shapes
    /// Returns [count, D] in `dtype` on `device`.
    pub fn sample_block(
        &self,
        stream: &mut NoiseStream,
        count: usize,
        device: &Device,
        dtype: DType,
    ) -> Tensor<2> {
        match self {
            NoiseShape::Iso { std, dim } => stream.tensor(count, *dim, device, dtype) * *std,
            NoiseShape::Diag { std } => {
                let d = std.dims()[0];
                stream.tensor(count, d, device, dtype) * std.clone().reshape([1, d])
            }
            NoiseShape::LowRank { vectors, std } => {
                let k = std.len();
                let s =
                    Tensor::<2>::from_data(TensorData::new(std.clone(), [1, k]), (device, dtype));
                matmul(
                    stream.tensor(count, k, device, dtype) * s,
                    false,
                    vectors.clone(),
                    false,
                )
            }
        }
    }

    /// One draw ξ ~ N(0, C), [D].
    ///
    /// # Shapes
    /// Returns [D] in `dtype` on `device`.
    pub fn sample(&self, stream: &mut NoiseStream, device: &Device, dtype: DType) -> Tensor<1> {
        match self {
            NoiseShape::Iso { std, dim } => {
                stream.tensor(1, *dim, device, dtype).reshape([*dim]) * *std
            }
            NoiseShape::Diag { std } => {
                let d = std.dims()[0];
                stream.tensor(1, d, device, dtype).reshape([d]) * std.clone()
            }
            NoiseShape::LowRank { vectors, std } => {
                let [k, d] = vectors.dims();
                let z: Vec<f64> = stream
                    .normals(k)
                    .iter()
                    .zip(std)
                    .map(|(z, s)| z * s)
                    .collect();
                let z = Tensor::<2>::from_data(TensorData::new(z, [1, k]), (device, dtype));
                matmul(z, false, vectors.clone(), false).reshape([d])
            }
        }
    }
}
