//! Datasets resident on a compute device, and the minibatches gathered from them.
//!
//! Shapes: n samples, p input features, c classes, q output values.

use burn::prelude::*;
use burn::tensor::DType;

use crate::features::{Features, Targets};

/// Floating-point precision of device tensors: f32 everywhere, f64 on the CPU for reference
/// checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// 32-bit floats.
    #[default]
    F32,
    /// 64-bit floats.
    F64,
}

impl Precision {
    /// The burn dtype.
    pub fn dtype(self) -> DType {
        match self {
            Precision::F32 => DType::F32,
            Precision::F64 => DType::F64,
        }
    }
}

/// A dataset uploaded once to a device, so that minibatches are gathered there.
#[derive(Debug, Clone)]
pub struct DeviceDataset {
    /// Inputs, [n, p].
    pub x: Tensor<2>,
    /// Class labels, [n], when the data is a classification task.
    pub labels: Option<Tensor<1, Int>>,
    /// Regression targets [n, q], or one-hot class targets [n, c] for MSE on classes.
    pub y: Option<Tensor<2>>,
    /// Number of samples n.
    pub n: usize,
    /// Number of classes c, for classification data.
    pub classes: Option<usize>,
}

impl DeviceDataset {
    /// Uploads `f` to `device` in `precision`.
    pub fn upload(f: &Features, device: &Device, precision: Precision) -> Self {
        let opts = (device, precision.dtype());
        let x = Tensor::<2>::from_data(TensorData::new(f.x.clone(), [f.n, f.dim]), opts);
        let (labels, y, classes) = match &f.targets {
            Targets::Classes { labels, classes } => {
                let mut onehot = vec![0f32; f.n * classes];
                for (i, &l) in labels.iter().enumerate() {
                    onehot[i * classes + l as usize] = 1.0;
                }
                let idx: Vec<i64> = labels.iter().map(|&l| l as i64).collect();
                (
                    Some(Tensor::<1, Int>::from_data(
                        TensorData::new(idx, [f.n]),
                        device,
                    )),
                    Some(Tensor::<2>::from_data(
                        TensorData::new(onehot, [f.n, *classes]),
                        opts,
                    )),
                    Some(*classes),
                )
            }
            Targets::Values { y, dim } => (
                None,
                Some(Tensor::<2>::from_data(
                    TensorData::new(y.clone(), [f.n, *dim]),
                    opts,
                )),
                None,
            ),
            Targets::None => (None, None, None),
        };
        DeviceDataset {
            x,
            labels,
            y,
            n: f.n,
            classes,
        }
    }

    /// The class labels as one regression target per sample, y = label ∈ {0, 1, …}, [n, 1]:
    /// what a single-output net trained by (clipped) MSE on a binary task fits. Labels stay.
    pub fn with_label_targets(mut self) -> Self {
        if let Some(labels) = &self.labels {
            let dtype = self.x.dtype();
            self.y = Some(labels.clone().float().cast(dtype).reshape([self.n, 1]));
        }
        self
    }

    /// The samples at `indices` (repeats allowed), gathered on the device.
    pub fn gather(&self, indices: &[usize]) -> Self {
        let device = self.x.device();
        let idx: Vec<i64> = indices.iter().map(|&i| i as i64).collect();
        let idx = Tensor::<1, Int>::from_data(TensorData::new(idx, [indices.len()]), &device);
        DeviceDataset {
            x: self.x.clone().select(0, idx.clone()),
            labels: self.labels.clone().map(|l| l.select(0, idx.clone())),
            y: self.y.clone().map(|y| y.select(0, idx)),
            n: indices.len(),
            classes: self.classes,
        }
    }
}

/// Whether this binary was built with burn's kernel fusion and autotune on wgpu (the
/// `gpu-fusion` feature). They change how GPU work is scheduled, never what it computes.
pub const GPU_FUSION: bool = cfg!(feature = "gpu-fusion");

/// Whether `device` computes in host memory (burn's ndarray backend), where reading a tensor
/// back is a copy and host loops or plain matmuls can beat the backend's own kernels (its
/// packed matrix-vector products, its direct convolution). The device's backend variant
/// decides (an enum match, no formatting); an autodiff device is not one: burn must see its
/// ops.
#[allow(deprecated)] // burn marks ndarray deprecated in favour of flex; it is our CPU engine.
pub fn in_host_memory(device: &Device) -> bool {
    matches!(
        device.as_dispatch(),
        burn::backend::DispatchDevice::NdArray(_)
    )
}

/// Mean and population standard deviation of `values`, reduced on `device` in chunks of 2²⁰
/// f32 elements (one small upload and one small readback per chunk, so any size fits a GPU
/// buffer limit) and combined in f64 on the host.
///
/// Each chunk is laid out as rows of 2¹⁵ and summed along the rows only: on lavapipe a
/// one-shot reduction over a longer axis is wrong (burn 0.22.1's `sum_dim`; with burn's
/// fusion even the full `sum` of 2²⁰ numbers came out at a third of the truth). The zeros
/// that pad the last row change neither sum.
pub fn mean_std_on_device(values: impl Iterator<Item = f32>, device: &Device) -> (f64, f64) {
    const ROW: usize = 1 << 15;
    const CHUNK: usize = 1 << 20;
    let (mut n, mut s1, mut s2) = (0usize, 0f64, 0f64);
    let mut buf = Vec::with_capacity(CHUNK);
    let mut flush = |buf: &mut Vec<f32>| {
        if buf.is_empty() {
            return;
        }
        let len = buf.len();
        let rows = len.div_ceil(ROW);
        buf.resize(rows * ROW, 0.0);
        let t = Tensor::<2>::from_data(
            TensorData::new(std::mem::take(buf), [rows, ROW]),
            (device, DType::F32),
        );
        let sums = Tensor::cat(vec![t.clone().sum_dim(1), t.powi_scalar(2).sum_dim(1)], 1);
        let v: Vec<f64> = sums
            .into_data()
            .convert::<f64>()
            .try_to_vec::<f64>()
            .expect("float data");
        n += len;
        s1 += v.iter().step_by(2).sum::<f64>();
        s2 += v.iter().skip(1).step_by(2).sum::<f64>();
    };
    for v in values {
        buf.push(v);
        if buf.len() == CHUNK {
            flush(&mut buf);
        }
    }
    flush(&mut buf);
    let mean = s1 / n as f64;
    (mean, (s2 / n as f64 - mean * mean).max(0.0).sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn features() -> Features {
        Features {
            n: 3,
            dim: 2,
            x: vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
            targets: Targets::Classes {
                labels: vec![2, 0, 1],
                classes: 3,
            },
        }
    }

    #[allow(deprecated)]
    fn cpu() -> Device {
        Device::ndarray()
    }

    #[test]
    fn upload_and_gather_in_f64() {
        let d = DeviceDataset::upload(&features(), &cpu(), Precision::F64);
        assert_eq!(d.x.dtype(), DType::F64);
        let b = d.gather(&[2, 2, 0]);
        let x: Vec<f64> = b.x.into_data().try_to_vec::<f64>().unwrap();
        assert_eq!(x, vec![5.0, 6.0, 5.0, 6.0, 1.0, 2.0]);
        let l: Vec<i64> = b
            .labels
            .unwrap()
            .into_data()
            .convert::<i64>()
            .try_to_vec::<i64>()
            .unwrap();
        assert_eq!(l, vec![1, 1, 2]);
        let y: Vec<f64> = b.y.unwrap().into_data().try_to_vec::<f64>().unwrap();
        assert_eq!(y, vec![0.0, 1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]);
    }

    #[test]
    fn mean_std_on_device_across_chunks() {
        // 2.5 chunks of values 0, 1, 2, 0, 1, 2, …: mean 1, std √(2/3) (up to the ragged end).
        let n = (1usize << 20) * 5 / 2;
        let vals = (0..n).map(|i| (i % 3) as f32);
        let (m, s) = mean_std_on_device(vals.clone(), &cpu());
        let em = vals.clone().map(|v| v as f64).sum::<f64>() / n as f64;
        let es = (vals.map(|v| (v as f64 - em).powi(2)).sum::<f64>() / n as f64).sqrt();
        assert!(
            (m - em).abs() < 1e-6 && (s - es).abs() < 1e-6,
            "{m} {s} vs {em} {es}"
        );
    }
}
