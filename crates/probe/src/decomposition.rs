//! The escape direction: how Δθ = θ_t − θ* splits over the top Hessian eigenvectors at θ*.

use burn::prelude::*;

use crate::linalg::to_host;

/// Components of Δθ along orthonormal directions u_1 … u_k.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EscapeDecomposition {
    /// (u_jᵀ Δθ)² per direction.
    pub components: Vec<f64>,
    /// ‖Δθ‖².
    pub norm_sq: f64,
    /// Σ_j (u_jᵀ Δθ)² / ‖Δθ‖², the fraction in span{u_j} (0 when Δθ = 0).
    pub fraction: f64,
}

/// Decomposes Δθ [D] over the unit rows of U [k, D].
///
/// # Shapes
/// `u`: [k, D]; `delta`: [D].
///
/// # Returns
/// An [`EscapeDecomposition`]: k components (u_jᵀ Δθ)², ‖Δθ‖² and the fraction in span{u_j}.
pub fn escape_decomposition(u: &Tensor<2>, delta: &Tensor<1>) -> EscapeDecomposition {
    let d = delta.dims()[0];
    let c = crate::linalg::inner_products(u, &delta.clone().reshape([1, d]));
    let components: Vec<f64> = to_host(c.square()).into_iter().collect();
    let norm_sq = to_host(delta.clone().square().sum())[0];
    let fraction = if norm_sq > 0.0 {
        components.iter().sum::<f64>() / norm_sq
    } else {
        0.0
    };
    EscapeDecomposition {
        components,
        norm_sq,
        fraction,
    }
}

#[cfg(test)]
#[path = "decomposition_tests.rs"]
mod tests;
