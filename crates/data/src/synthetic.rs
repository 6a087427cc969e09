//! The synthetic problems of SPEC §5, all seeded (ChaCha8) and generated in f64 before the
//! cast to f32 features.
//!
//! - [`toy2d`]: Zhu et al.'s 2-D data, x = z · diag(√10, 1) · R(π/4) · 0.01, z ~ N(0, I₂).
//! - [`GaussianRegression`]: x ~ N(0, A), y = uᵀx + ε, ε ~ N(0, σ²) (Ziyin et al.).
//! - [`uniform_square`]: x ~ U[−2, 2]², label 1 if x₀ ≥ x₁ (Zhu et al. Fig. 4).
//! - [`TeacherStudent`]: x ~ N(0, diag(λ)) with a chosen spectrum λ, y from a linear or
//!   two-layer tanh teacher plus noise (Wang and Wu).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

use crate::error::{DataError, Result};
use crate::features::{Features, Targets};

fn normal(rng: &mut ChaCha8Rng) -> f64 {
    rng.sample::<f64, _>(StandardNormal)
}

/// Zhu et al.'s 2-D toy data: n points x = z · diag(√10, 1) · R(π/4) · 0.01 with
/// z ~ N(0, I₂) a row vector and R(φ) = [[cos φ, −sin φ], [sin φ, cos φ]].
/// Their covariance is 10⁻⁴ · Rᵀ diag(10, 1) R. No targets.
pub fn toy2d(n: usize, seed: u64) -> Features {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (s, c) = std::f64::consts::FRAC_PI_4.sin_cos();
    let mut x = Vec::with_capacity(2 * n);
    for _ in 0..n {
        let a = normal(&mut rng) * 10f64.sqrt();
        let b = normal(&mut rng);
        // [a b] · [[c, −s], [s, c]]
        x.push(((a * c + b * s) * 0.01) as f32);
        x.push(((-a * s + b * c) * 0.01) as f32);
    }
    Features {
        n,
        dim: 2,
        x,
        targets: Targets::None,
    }
}

/// n points x ~ U[−2, 2]² with label 1 if x₀ ≥ x₁, else 0.
pub fn uniform_square(n: usize, seed: u64) -> Features {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut x = Vec::with_capacity(2 * n);
    let mut labels = Vec::with_capacity(n);
    for _ in 0..n {
        let a: f64 = rng.random_range(-2.0..2.0);
        let b: f64 = rng.random_range(-2.0..2.0);
        x.push(a as f32);
        x.push(b as f32);
        labels.push((a >= b) as u32);
    }
    Features {
        n,
        dim: 2,
        x,
        targets: Targets::Classes { labels, classes: 2 },
    }
}

/// An input covariance A.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Covariance {
    /// A = diag(values).
    Diagonal(Vec<f64>),
    /// A dense symmetric positive-definite matrix, row-major `dim × dim`.
    Full(Vec<Vec<f64>>),
}

impl Covariance {
    /// Dimension D.
    pub fn dim(&self) -> usize {
        match self {
            Covariance::Diagonal(v) => v.len(),
            Covariance::Full(m) => m.len(),
        }
    }

    /// The lower Cholesky factor L, A = L Lᵀ, row-major.
    ///
    /// # Errors
    /// [`DataError::Invalid`] when A is not square, not symmetric or not positive definite.
    pub fn cholesky(&self) -> Result<Vec<f64>> {
        let d = self.dim();
        let a: Vec<f64> = match self {
            Covariance::Diagonal(v) => {
                let mut m = vec![0.0; d * d];
                for (i, &x) in v.iter().enumerate() {
                    m[i * d + i] = x;
                }
                m
            }
            Covariance::Full(m) => {
                if m.iter().any(|r| r.len() != d) {
                    return Err(DataError::invalid(
                        "covariance",
                        format!("not a square {d}×{d} matrix"),
                    ));
                }
                m.concat()
            }
        };
        for i in 0..d {
            for j in 0..i {
                if (a[i * d + j] - a[j * d + i]).abs() > 1e-12 * (1.0 + a[i * d + j].abs()) {
                    return Err(DataError::invalid(
                        "covariance",
                        format!("not symmetric at ({i}, {j})"),
                    ));
                }
            }
        }
        let mut l = vec![0.0; d * d];
        for i in 0..d {
            for j in 0..=i {
                let s: f64 = (0..j).map(|k| l[i * d + k] * l[j * d + k]).sum();
                if i == j {
                    let v = a[i * d + i] - s;
                    if v <= 0.0 {
                        return Err(DataError::invalid(
                            "covariance",
                            format!("not positive definite (pivot {i} is {v:.3e})"),
                        ));
                    }
                    l[i * d + i] = v.sqrt();
                } else {
                    l[i * d + j] = (a[i * d + j] - s) / l[j * d + j];
                }
            }
        }
        Ok(l)
    }
}

/// Linear regression with label noise: x ~ N(0, A), y = uᵀx + ε, ε ~ N(0, σ²).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GaussianRegression {
    /// Input covariance A (D × D).
    pub covariance: Covariance,
    /// Teacher u ∈ R^D.
    pub teacher: Vec<f64>,
    /// Label-noise standard deviation σ.
    pub noise_std: f64,
}

impl GaussianRegression {
    /// n samples; targets are `Values` of dimension 1.
    pub fn sample(&self, n: usize, seed: u64) -> Result<Features> {
        let d = self.covariance.dim();
        if self.teacher.len() != d {
            return Err(DataError::invalid(
                "teacher",
                format!(
                    "has {} entries, the covariance is {d}×{d}",
                    self.teacher.len()
                ),
            ));
        }
        let l = self.covariance.cholesky()?;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut x = Vec::with_capacity(n * d);
        let mut y = Vec::with_capacity(n);
        let mut z = vec![0.0; d];
        for _ in 0..n {
            z.iter_mut().for_each(|v| *v = normal(&mut rng));
            let mut dot = 0.0;
            for i in 0..d {
                let xi: f64 = (0..=i).map(|k| l[i * d + k] * z[k]).sum();
                dot += self.teacher[i] * xi;
                x.push(xi as f32);
            }
            y.push((dot + self.noise_std * normal(&mut rng)) as f32);
        }
        Ok(Features {
            n,
            dim: d,
            x,
            targets: Targets::Values { y, dim: 1 },
        })
    }
}

/// The eigenvalues of a teacher-student input covariance.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Spectrum {
    /// λ_j = j^(−alpha), j = 1..D.
    PowerLaw {
        /// Decay exponent.
        alpha: f64,
    },
    /// The first `rank` eigenvalues 1, the rest `floor` (input degeneracy).
    Rank {
        /// Number of unit eigenvalues.
        rank: usize,
        /// Value of the others (0 allowed).
        floor: f64,
    },
    /// Given values, D of them.
    Explicit {
        /// The eigenvalues.
        values: Vec<f64>,
    },
}

impl Spectrum {
    /// The D eigenvalues.
    pub fn values(&self, dim: usize) -> Result<Vec<f64>> {
        let v: Vec<f64> = match self {
            Spectrum::PowerLaw { alpha } => (1..=dim).map(|j| (j as f64).powf(-alpha)).collect(),
            Spectrum::Rank { rank, floor } => (0..dim)
                .map(|j| if j < *rank { 1.0 } else { *floor })
                .collect(),
            Spectrum::Explicit { values } => {
                if values.len() != dim {
                    return Err(DataError::invalid(
                        "spectrum",
                        format!("{} values for dimension {dim}", values.len()),
                    ));
                }
                values.clone()
            }
        };
        if v.iter().any(|&x| !(x >= 0.0 && x.is_finite())) || v.iter().all(|&x| x == 0.0) {
            return Err(DataError::invalid(
                "spectrum",
                "eigenvalues must be finite, ≥ 0 and not all 0",
            ));
        }
        Ok(v)
    }
}

/// Effective rank r(A) = (Tr A)² / Tr A² = (Σλ)² / Σλ² of a spectrum.
pub fn effective_rank(eigenvalues: &[f64]) -> f64 {
    let s: f64 = eigenvalues.iter().sum();
    let s2: f64 = eigenvalues.iter().map(|l| l * l).sum();
    s * s / s2
}

/// The teacher that labels teacher-student data.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Teacher {
    /// y = w*ᵀx with w* ~ N(0, I/D).
    Linear,
    /// y = aᵀ tanh(W x) / √width with W ~ N(0, 1/D), a ~ N(0, 1).
    TwoLayerTanh {
        /// Hidden width.
        width: usize,
    },
}

/// The teacher's function x ↦ y, before noise.
type Labeller = Box<dyn Fn(&[f64]) -> f64>;

/// Teacher-student regression data: x ~ N(0, diag(λ)), y = teacher(x) + ε, ε ~ N(0, σ²).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TeacherStudent {
    /// Input dimension D.
    pub dim: usize,
    /// Eigenvalues of the input covariance.
    pub spectrum: Spectrum,
    /// The labelling function.
    pub teacher: Teacher,
    /// Label-noise standard deviation σ.
    pub noise_std: f64,
}

impl TeacherStudent {
    /// n samples; the teacher is drawn from `seed`, the samples from `seed + 1`, so that
    /// training and test sets drawn with different sample seeds share one teacher.
    pub fn sample(&self, n: usize, seed: u64) -> Result<Features> {
        self.sample_with(n, seed, seed.wrapping_add(1))
    }

    /// n samples with the teacher from `teacher_seed` and the inputs from `sample_seed`.
    pub fn sample_with(&self, n: usize, teacher_seed: u64, sample_seed: u64) -> Result<Features> {
        let d = self.dim;
        let lambda = self.spectrum.values(d)?;
        let sd: Vec<f64> = lambda.iter().map(|l| l.sqrt()).collect();
        let mut trng = ChaCha8Rng::seed_from_u64(teacher_seed);
        let teacher: Labeller = match self.teacher {
            Teacher::Linear => {
                let w: Vec<f64> = (0..d)
                    .map(|_| normal(&mut trng) / (d as f64).sqrt())
                    .collect();
                Box::new(move |x| x.iter().zip(&w).map(|(a, b)| a * b).sum())
            }
            Teacher::TwoLayerTanh { width } => {
                if width == 0 {
                    return Err(DataError::invalid("teacher", "width must be positive"));
                }
                let w: Vec<f64> = (0..width * d)
                    .map(|_| normal(&mut trng) / (d as f64).sqrt())
                    .collect();
                let a: Vec<f64> = (0..width).map(|_| normal(&mut trng)).collect();
                Box::new(move |x| {
                    (0..width)
                        .map(|h| {
                            a[h] * w[h * d..(h + 1) * d]
                                .iter()
                                .zip(x)
                                .map(|(p, q)| p * q)
                                .sum::<f64>()
                                .tanh()
                        })
                        .sum::<f64>()
                        / (width as f64).sqrt()
                })
            }
        };
        let mut rng = ChaCha8Rng::seed_from_u64(sample_seed);
        let mut x = Vec::with_capacity(n * d);
        let mut y = Vec::with_capacity(n);
        let mut row = vec![0.0; d];
        for _ in 0..n {
            for (r, s) in row.iter_mut().zip(&sd) {
                *r = s * normal(&mut rng);
            }
            y.push((teacher(&row) + self.noise_std * normal(&mut rng)) as f32);
            x.extend(row.iter().map(|&v| v as f32));
        }
        Ok(Features {
            n,
            dim: d,
            x,
            targets: Targets::Values { y, dim: 1 },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sample covariance (population form) of the rows of f.x, in f64.
    fn cov(f: &Features) -> Vec<f64> {
        let d = f.dim;
        let mut m = vec![0.0; d];
        for i in 0..f.n {
            for (mj, &x) in m.iter_mut().zip(f.row(i)) {
                *mj += x as f64 / f.n as f64;
            }
        }
        let mut c = vec![0.0; d * d];
        for i in 0..f.n {
            for a in 0..d {
                for b in 0..d {
                    c[a * d + b] +=
                        (f.row(i)[a] as f64 - m[a]) * (f.row(i)[b] as f64 - m[b]) / f.n as f64;
                }
            }
        }
        c
    }

    #[test]
    fn toy2d_has_the_stated_covariance() {
        let f = toy2d(200_000, 1);
        let c = cov(&f);
        // 1e-4 · Rᵀ diag(10, 1) R with R(π/4): [[5.5, -4.5], [-4.5, 5.5]] · 1e-4.
        let want = [5.5e-4, -4.5e-4, -4.5e-4, 5.5e-4];
        for (g, w) in c.iter().zip(want) {
            assert!((g - w).abs() < 0.02 * 5.5e-4, "{c:?}");
        }
        assert_eq!(toy2d(5, 3), toy2d(5, 3));
    }

    #[test]
    fn gaussian_regression_matches_a_and_noise() {
        let g = GaussianRegression {
            covariance: Covariance::Full(vec![vec![2.0, 0.6], vec![0.6, 1.0]]),
            teacher: vec![1.0, -2.0],
            noise_std: 0.5,
        };
        let f = g.sample(100_000, 9).unwrap();
        let c = cov(&f);
        for (g, w) in c.iter().zip([2.0, 0.6, 0.6, 1.0]) {
            assert!((g - w).abs() < 0.03, "{c:?}");
        }
        let Targets::Values { y, .. } = &f.targets else {
            panic!()
        };
        let resid: f64 = (0..f.n)
            .map(|i| (y[i] as f64 - (f.row(i)[0] as f64 - 2.0 * f.row(i)[1] as f64)).powi(2))
            .sum::<f64>()
            / f.n as f64;
        assert!((resid - 0.25).abs() < 0.01, "{resid}");
    }

    #[test]
    fn covariance_errors() {
        assert!(
            Covariance::Full(vec![vec![1.0, 2.0], vec![2.0, 1.0]])
                .cholesky()
                .is_err()
        );
        assert!(
            Covariance::Full(vec![vec![1.0, 0.5], vec![0.4, 1.0]])
                .cholesky()
                .is_err()
        );
        assert!(
            Covariance::Full(vec![vec![1.0], vec![0.4, 1.0]])
                .cholesky()
                .is_err()
        );
        let g = GaussianRegression {
            covariance: Covariance::Diagonal(vec![1.0, 1.0]),
            teacher: vec![1.0],
            noise_std: 0.0,
        };
        assert!(g.sample(3, 0).unwrap_err().to_string().contains("teacher"));
    }

    #[test]
    fn uniform_square_labels() {
        let f = uniform_square(10_000, 2);
        let Targets::Classes { labels, classes: 2 } = &f.targets else {
            panic!()
        };
        for (i, &label) in labels.iter().enumerate() {
            let r = f.row(i);
            assert!(r.iter().all(|v| (-2.0..2.0).contains(v)));
            assert_eq!(label, (r[0] >= r[1]) as u32);
        }
        let ones = labels.iter().sum::<u32>() as f64 / f.n as f64;
        assert!((ones - 0.5).abs() < 0.03);
    }

    #[test]
    fn teacher_student_spectrum_and_rank() {
        let ts = TeacherStudent {
            dim: 6,
            spectrum: Spectrum::Rank {
                rank: 2,
                floor: 0.0,
            },
            teacher: Teacher::Linear,
            noise_std: 0.0,
        };
        assert_eq!(effective_rank(&ts.spectrum.values(6).unwrap()), 2.0);
        let f = ts.sample(100, 4).unwrap();
        // Degenerate directions carry exactly zero input.
        assert!((0..f.n).all(|i| f.row(i)[2..].iter().all(|&v| v == 0.0)));
        // Same teacher seed, different sample seed: same labelling function.
        let a = ts.sample_with(10, 1, 2).unwrap();
        let b = ts.sample_with(10, 1, 2).unwrap();
        assert_eq!(a, b);
        let p = Spectrum::PowerLaw { alpha: 1.0 }.values(3).unwrap();
        assert_eq!(p, vec![1.0, 0.5, 1.0 / 3.0]);
        assert!(Spectrum::Explicit { values: vec![1.0] }.values(2).is_err());
        let tl = TeacherStudent {
            teacher: Teacher::TwoLayerTanh { width: 8 },
            spectrum: Spectrum::PowerLaw { alpha: 0.5 },
            ..ts
        };
        let f = tl.sample(50, 0).unwrap();
        let Targets::Values { y, dim: 1 } = &f.targets else {
            panic!()
        };
        assert!(y.iter().all(|v| v.is_finite()) && y.iter().any(|&v| v != 0.0));
    }
}
