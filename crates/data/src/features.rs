//! Samples as float features with targets: what models consume, on the host.
//!
//! Images become rows of `rows · cols` floats under a [`Normalization`]; synthetic problems
//! produce [`Features`] directly.

use crate::dataset::ImageDataset;

/// Targets of n samples.
#[derive(Debug, Clone, PartialEq)]
pub enum Targets {
    /// Class labels in `0..classes`.
    Classes {
        /// n labels.
        labels: Vec<u32>,
        /// Number of classes.
        classes: usize,
    },
    /// Real-valued outputs, `n × dim` row-major.
    Values {
        /// n·dim values.
        y: Vec<f32>,
        /// Output dimension.
        dim: usize,
    },
    /// Unlabelled samples (the 2-D toy potential takes its data as the loss's parameters).
    None,
}

/// n samples of dimension `dim`, row-major, with their targets.
#[derive(Debug, Clone, PartialEq)]
pub struct Features {
    /// Number of samples.
    pub n: usize,
    /// Input dimension.
    pub dim: usize,
    /// n·dim inputs.
    pub x: Vec<f32>,
    /// The targets.
    pub targets: Targets,
}

impl Features {
    /// Row i of x.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.x[i * self.dim..(i + 1) * self.dim]
    }
}

/// How pixels 0..=255 become floats.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Normalization {
    /// (x − 127.5) / 127.5 ∈ [−1, 1], as Zhu et al.
    Centered,
    /// x / 255 ∈ [0, 1].
    UnitInterval,
    /// (x/255 − mean) / std, with mean and std on the [0, 1] scale (MNIST: 0.1307, 0.3081).
    Standardize {
        /// Pixel mean on [0, 1].
        mean: f64,
        /// Pixel standard deviation on [0, 1].
        std: f64,
    },
}

impl Normalization {
    /// [`Normalization::Standardize`] with the pixel mean and std of `ds` (compute them on the
    /// training split and reuse them for the test split).
    pub fn fitted(ds: &ImageDataset) -> Self {
        let (mean, std) = ds.pixel_mean_std();
        Normalization::Standardize { mean, std }
    }

    /// The float for one pixel value.
    pub fn apply(&self, p: u8) -> f32 {
        let p = p as f64;
        (match *self {
            Normalization::Centered => (p - 127.5) / 127.5,
            Normalization::UnitInterval => p / 255.0,
            Normalization::Standardize { mean, std } => (p / 255.0 - mean) / std,
        }) as f32
    }
}

impl ImageDataset {
    /// Inputs x_i ∈ R^{rows·cols} under `norm`, targets the class labels.
    pub fn to_features(&self, norm: Normalization) -> Features {
        let table: Vec<f32> = (0..=255u8).map(|p| norm.apply(p)).collect();
        Features {
            n: self.len(),
            dim: self.pixel_dim(),
            x: self.pixels.iter().map(|&p| table[p as usize]).collect(),
            targets: Targets::Classes {
                labels: self.labels.iter().map(|&l| l as u32).collect(),
                classes: self.classes,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizations() {
        assert_eq!(Normalization::Centered.apply(0), -1.0);
        assert_eq!(Normalization::Centered.apply(255), 1.0);
        assert_eq!(Normalization::UnitInterval.apply(51), 0.2);
        let s = Normalization::Standardize {
            mean: 0.5,
            std: 0.25,
        };
        assert!((s.apply(255) - 2.0).abs() < 1e-6);
    }

    #[test]
    fn fitted_normalization_standardizes() {
        let ds = ImageDataset {
            name: "t".into(),
            rows: 1,
            cols: 3,
            classes: 2,
            pixels: vec![0, 10, 200, 30, 40, 255],
            labels: vec![0, 1],
        };
        let f = ds.to_features(Normalization::fitted(&ds));
        let m = f.x.iter().map(|&v| v as f64).sum::<f64>() / 6.0;
        let v = f.x.iter().map(|&x| (x as f64 - m).powi(2)).sum::<f64>() / 6.0;
        assert!(m.abs() < 1e-6 && (v - 1.0).abs() < 1e-5, "{m} {v}");
        assert_eq!(f.row(1).len(), 3);
        assert_eq!(
            f.targets,
            Targets::Classes {
                labels: vec![0, 1],
                classes: 2
            }
        );
    }

    #[test]
    fn config_form_rejects_unknown_keys() {
        let n: Normalization =
            serde_json::from_str(r#"{"kind":"standardize","mean":0.1,"std":0.3}"#).unwrap();
        assert_eq!(
            n,
            Normalization::Standardize {
                mean: 0.1,
                std: 0.3
            }
        );
        let err = serde_json::from_str::<Normalization>(
            r#"{"kind":"standardize","mean":0.1,"std":0.3,"scale":2}"#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("scale"), "{err}");
    }
}
