//! The dynamics of SPEC §2 and their settings.

use std::fmt;
use std::str::FromStr;

use noisescope_data::Sampling;

/// One dynamic of SPEC §2: a full-batch gradient step plus Gaussian noise ξ ~ N(0, C), or the
/// real minibatch noise (`sgd`), or none (`gd`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dynamic {
    /// Full-batch gradient descent, C = 0.
    Gd,
    /// Minibatch SGD: the real noise.
    Sgd,
    /// C = σ² I with σ fixed.
    IsoConst,
    /// C = (Tr Σ_m / D) I.
    IsoDynamic,
    /// C = diag Σ_m.
    Diag,
    /// C = the top-k eigenpairs of Σ_m.
    LowRank(usize),
    /// C = the top-k eigenpairs of H with λ > 0, eigenvalues rescaled to Tr Σ_m.
    Hessian(usize),
    /// C ∝ G_F, sampled exactly through one backward pass.
    Ggn,
    /// C = Tr Σ_m · u₁u₁ᵀ, u₁ the top Hessian eigenvector.
    HessianTop1,
}

impl Dynamic {
    /// Whether C is estimated at θ and kept for `refresh` steps (every dynamic but gd, sgd
    /// and iso-const).
    pub fn refreshed(self) -> bool {
        matches!(
            self,
            Dynamic::IsoDynamic
                | Dynamic::Diag
                | Dynamic::Ggn
                | Dynamic::LowRank(_)
                | Dynamic::Hessian(_)
                | Dynamic::HessianTop1
        )
    }

    /// Whether a refresh runs an eigensolver on H (hessian-k, hessian-top1), whose
    /// Hessian-vector products the metric lines count.
    pub fn solves_hessian(self) -> bool {
        matches!(self, Dynamic::Hessian(_) | Dynamic::HessianTop1)
    }

    /// Whether the covariance needs Tr Σ_m (every surrogate whose trace is matched).
    pub fn matches_trace(self) -> bool {
        !matches!(self, Dynamic::Gd | Dynamic::Sgd | Dynamic::IsoConst)
    }
}

impl fmt::Display for Dynamic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Dynamic::Gd => write!(f, "gd"),
            Dynamic::Sgd => write!(f, "sgd"),
            Dynamic::IsoConst => write!(f, "iso-const"),
            Dynamic::IsoDynamic => write!(f, "iso-dynamic"),
            Dynamic::Diag => write!(f, "diag"),
            Dynamic::LowRank(k) => write!(f, "lowrank-{k}"),
            Dynamic::Hessian(k) => write!(f, "hessian-{k}"),
            Dynamic::Ggn => write!(f, "ggn"),
            Dynamic::HessianTop1 => write!(f, "hessian-top1"),
        }
    }
}

/// An unknown dynamic name.
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "unknown dynamic `{0}`: expected gd, sgd, iso-const, iso-dynamic, diag, lowrank[-k], hessian[-k], ggn or hessian-top1"
)]
pub struct UnknownDynamic(pub String);

impl FromStr for Dynamic {
    type Err = UnknownDynamic;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || UnknownDynamic(s.to_string());
        let with_k = |rest: &str| -> Result<usize, UnknownDynamic> {
            match rest {
                "" => Ok(20),
                r => r
                    .strip_prefix('-')
                    .and_then(|k| k.parse().ok())
                    .filter(|&k| k > 0)
                    .ok_or_else(bad),
            }
        };
        Ok(match s {
            "gd" => Dynamic::Gd,
            "sgd" => Dynamic::Sgd,
            "iso-const" => Dynamic::IsoConst,
            "iso-dynamic" => Dynamic::IsoDynamic,
            "diag" => Dynamic::Diag,
            "ggn" => Dynamic::Ggn,
            "hessian-top1" => Dynamic::HessianTop1,
            _ => {
                if let Some(rest) = s.strip_prefix("lowrank") {
                    Dynamic::LowRank(with_k(rest)?)
                } else if let Some(rest) = s.strip_prefix("hessian") {
                    Dynamic::Hessian(with_k(rest)?)
                } else {
                    return Err(bad());
                }
            }
        })
    }
}

impl serde::Serialize for Dynamic {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Dynamic {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// What Tr C is set to.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TraceTarget {
    /// Tr C = Tr Σ_m(θ_t): SGD's total noise at batch size m (SPEC's default).
    Match,
    /// Tr C fixed (Zhu et al.'s toy: 0.01).
    Fixed(f64),
}

/// Where Σ comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CovarianceEstimate {
    /// Σ_m = s Σ₁ from the per-sample gradients of the whole training set (exact).
    Exact,
    /// Zhu et al.'s code: the covariance of the mean gradients of the ⌊N/m⌋ disjoint batches
    /// of one shuffled pass, centred and divided by (batches − 1), which estimates Σ_m
    /// directly.
    MinibatchPass,
}

/// When the noise is added.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Injection {
    /// At every step.
    EveryStep,
    /// Only on the steps where C is recomputed (Zhu et al.'s `lowrank`).
    RefreshSteps,
}

/// Where ξ enters the update.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Apply {
    /// θ ← θ − η (∇L + ξ): Cov of the step's noise η² C, as for SGD (SPEC §2).
    Gradient,
    /// θ ← θ − η ∇L + ξ: the noise added to the weights after the step, Cov C (Zhu's toy).
    Weights,
}

/// How the top Hessian eigenvector(s) are found.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case", tag = "method", deny_unknown_fields)]
pub enum EigenSolver {
    /// Lanczos with full reorthogonalization.
    Lanczos {
        /// Steps (≥ k); with `tol` > 0, the most steps.
        steps: usize,
        /// Stop once the top-k Ritz pairs have residuals ‖H u − λ u‖ ≤ tol · λ_1 (0: always
        /// `steps` steps). Each value found is then within its residual of an eigenvalue, but
        /// one the Krylov space has not picked up yet can be missing from the top k: at full
        /// size on the Zhu et al. campaign (with `warm_start`), one or two of the 20 near the
        /// bottom of the window went missing at four of six points checked; a cold start
        /// missed one at one of three (docs/zhu2019-fashionmnist.md).
        #[serde(default, skip_serializing_if = "is_zero")]
        tol: f64,
        /// Start from the previous refresh's eigenvectors ([`noisescope_probe::warm_start`])
        /// instead of a random vector. With `tol`, a direction that the previous refresh
        /// missed starts with little weight, so it can stay missing for later refreshes.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        warm_start: bool,
    },
    /// Power iteration with deflation (Zhu et al.'s code: 30 iterations).
    Power {
        /// Iterations per eigenvector.
        iterations: usize,
    },
}

/// The noise settings of a run.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NoiseConfig {
    /// The dynamic.
    pub dynamic: Dynamic,
    /// Batch size m: SGD's minibatch and the m of Σ_m.
    pub batch: usize,
    /// How SGD draws batches (and which Σ_m formula applies).
    pub sampling: Sampling,
    /// What Tr C is set to.
    pub trace: TraceTarget,
    /// σ of `iso-const`.
    pub sigma: f64,
    /// Steps between recomputations of C: Tr Σ_m of iso-dynamic, diag Σ_m of diag, Tr G_F
    /// of ggn, the eigenpairs of lowrank, hessian and hessian-top1 (1: every step).
    pub refresh: usize,
    /// Rescale `lowrank` to the trace target (false: Zhu et al.'s code).
    pub rescale: bool,
    /// Where Σ comes from. (Zhu et al.'s code also divides H by its Frobenius norm before
    /// the eigensolve; the eigenvalues are then rescaled to the trace, so that normalization
    /// cancels and is not an option here.)
    pub estimate: CovarianceEstimate,
    /// When the noise is added.
    pub inject: Injection,
    /// Where ξ enters the update.
    pub apply: Apply,
    /// Eigen solver of hessian-k and hessian-top1.
    pub eigensolver: EigenSolver,
}

impl NoiseConfig {
    /// Checks every setting for finiteness and range against a net of `dim` parameters
    /// trained on `n` samples; the error names the field.
    pub fn check(&self, dim: usize, n: usize) -> Result<(), String> {
        if let Dynamic::LowRank(k) | Dynamic::Hessian(k) = self.dynamic {
            let most = if matches!(self.dynamic, Dynamic::LowRank(_)) {
                dim.min(n)
            } else {
                dim
            };
            if k == 0 || k > most {
                return Err(format!(
                    "noise.dynamic = \"{}\": k = {k}, expected 1 ≤ k ≤ {most} (D = {dim}, N = {n})",
                    self.dynamic
                ));
            }
        }
        if self.batch == 0 {
            return Err("noise.batch = 0: expected a batch size ≥ 1".into());
        }
        if self.dynamic.refreshed() || self.dynamic == Dynamic::Sgd {
            if self.batch > n {
                return Err(format!(
                    "noise.batch = {}: larger than the {n} training samples",
                    self.batch
                ));
            }
            // One minibatch has no spread to measure: Σ would be 0, so C would be too where its
            // trace follows Σ, and its shape undefined where it takes Σ's.
            let uses_sigma = self.trace == TraceTarget::Match
                || matches!(self.dynamic, Dynamic::LowRank(_) | Dynamic::Diag);
            if self.dynamic.refreshed()
                && uses_sigma
                && self.estimate == CovarianceEstimate::MinibatchPass
                && n < 2 * self.batch
            {
                return Err(format!(
                    "noise.estimate = \"minibatch-pass\" with noise.batch = {}: needs at least two batches, N = {n} < {}",
                    self.batch,
                    2 * self.batch
                ));
            }
        }
        if !(self.sigma.is_finite() && self.sigma >= 0.0) {
            return Err(format!(
                "noise.sigma = {}: expected a finite σ ≥ 0",
                self.sigma
            ));
        }
        if self.refresh == 0 {
            return Err("noise.refresh = 0: expected ≥ 1 step".into());
        }
        if let TraceTarget::Fixed(v) = self.trace
            && !(v.is_finite() && v >= 0.0)
        {
            return Err(format!(
                "noise.trace.fixed = {v}: expected a finite Tr C ≥ 0"
            ));
        }
        match self.eigensolver {
            EigenSolver::Lanczos { steps: 0, .. } => {
                return Err("noise.eigensolver.steps = 0: expected ≥ 1".into());
            }
            EigenSolver::Lanczos { tol, .. } if !(tol.is_finite() && tol >= 0.0) => {
                return Err(format!(
                    "noise.eigensolver.tol = {tol}: expected a finite tolerance ≥ 0"
                ));
            }
            EigenSolver::Power { iterations: 0 } => {
                return Err("noise.eigensolver.iterations = 0: expected ≥ 1".into());
            }
            _ => {}
        }
        Ok(())
    }
}

impl Default for NoiseConfig {
    fn default() -> Self {
        NoiseConfig {
            dynamic: Dynamic::Gd,
            batch: 32,
            sampling: Sampling::Shuffle,
            trace: TraceTarget::Match,
            sigma: 1e-3,
            refresh: 10,
            rescale: true,
            estimate: CovarianceEstimate::Exact,
            inject: Injection::EveryStep,
            apply: Apply::Gradient,
            eigensolver: EigenSolver::Lanczos {
                steps: 100,
                tol: 0.0,
                warm_start: false,
            },
        }
    }
}

fn is_zero(v: &f64) -> bool {
    *v == 0.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_eigensolver_key_of_the_other_method_is_an_error() {
        let parse = |t: &str| toml::from_str::<NoiseConfig>(t);
        assert!(parse("eigensolver = { method = \"power\", iterations = 30 }").is_ok());
        let e = parse("eigensolver = { method = \"power\", iterations = 30, steps = 60 }")
            .unwrap_err()
            .to_string();
        assert!(e.contains("steps"), "{e}");
    }

    #[test]
    fn batches_that_cannot_give_sigma_are_named() {
        let cfg = |dynamic, estimate, trace| NoiseConfig {
            dynamic,
            batch: 700,
            estimate,
            trace,
            ..NoiseConfig::default()
        };
        let pass = CovarianceEstimate::MinibatchPass;
        let e = cfg(Dynamic::Sgd, CovarianceEstimate::Exact, TraceTarget::Match)
            .check(100, 500)
            .unwrap_err();
        assert!(e.contains("noise.batch = 700"), "{e}");
        let e = cfg(Dynamic::LowRank(2), pass, TraceTarget::Match)
            .check(100, 1200)
            .unwrap_err();
        assert!(e.contains("two batches"), "{e}");
        // A fixed trace with a dynamic that takes nothing from Σ needs no second batch.
        assert!(
            cfg(Dynamic::HessianTop1, pass, TraceTarget::Fixed(0.01))
                .check(100, 1200)
                .is_ok()
        );
        assert!(
            cfg(Dynamic::LowRank(2), pass, TraceTarget::Match)
                .check(100, 1400)
                .is_ok()
        );
    }

    #[test]
    fn names_round_trip() {
        for d in [
            Dynamic::Gd,
            Dynamic::Sgd,
            Dynamic::IsoConst,
            Dynamic::IsoDynamic,
            Dynamic::Diag,
            Dynamic::LowRank(7),
            Dynamic::Hessian(20),
            Dynamic::Ggn,
            Dynamic::HessianTop1,
        ] {
            assert_eq!(d.to_string().parse::<Dynamic>().unwrap(), d);
        }
        assert_eq!("lowrank".parse::<Dynamic>().unwrap(), Dynamic::LowRank(20));
        for bad in ["lowrank-0", "hessian-x", "adam", "lowrank20"] {
            let e = bad.parse::<Dynamic>().unwrap_err();
            assert!(e.to_string().contains(bad), "{e}");
        }
    }
}
