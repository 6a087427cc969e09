//! From a run config to the objects a run needs: the net, θ₀, the training and test data on the
//! device.

use anyhow::{Result, bail};
use burn::prelude::*;
use noisescope_data::{DeviceDataset, Features, Precision, SearchPath};
use noisescope_models::Net;
use noisescope_runs::config::RunConfig;

use crate::backend::Opened;

/// A run's net and data.
pub struct Experiment {
    /// The network.
    pub net: Net,
    /// Training data on the device.
    pub train: DeviceDataset,
    /// Test data on the device, when the config has some.
    pub test: Option<DeviceDataset>,
    /// One line naming the data (for logs).
    pub describe: String,
}

/// Uploads one data set and reads a sum of it back, so that a device that cannot hold it
/// (lavapipe's buffers stop at 128 MiB) fails here, naming the set and its size, rather than
/// with a backend panic at the first evaluation.
fn upload(
    f: &Features,
    what: &str,
    device: &Device,
    precision: Precision,
) -> Result<DeviceDataset> {
    let data = DeviceDataset::upload(f, device, precision);
    let bytes = f.n * f.dim * precision.dtype().size();
    match data.x.clone().sum().try_into_scalar::<f64>() {
        Ok(_) => Ok(data),
        Err(e) => bail!(
            "could not place the {what} ({} × {} values, {:.0} MB) on the device: {e}",
            f.n,
            f.dim,
            bytes as f64 / 1e6
        ),
    }
}

/// Refuses a run whose θ-sized buffers would not fit in host memory (on a CPU backend),
/// before anything is allocated: θ, its gradient, the update's temporaries and optimizer
/// buffers (8 copies), the k rows of a low-rank or Hessian noise, and the Lanczos basis and
/// blocks of directions of the probes.
fn check_memory(cfg: &RunConfig, dim: usize, opened: &Opened) -> Result<()> {
    if !noisescope_data::in_host_memory(&opened.device) {
        return Ok(());
    }
    let Some(available) = available_memory() else {
        return Ok(());
    };
    let rows =
        8 + match cfg.noise.dynamic {
            noisescope_noise::Dynamic::LowRank(k) | noisescope_noise::Dynamic::Hessian(k) => {
                k.saturating_mul(3)
            }
            _ => 0,
        } + if cfg.probes.every > 0 {
            cfg.probes
                .lanczos_steps
                .saturating_add(cfg.probes.chunk)
                .saturating_add(cfg.probes.sharpness.batch)
        } else {
            0
        };
    let bytes = (dim as u128) * (rows as u128) * cfg.precision.dtype().size() as u128;
    if bytes > available as u128 {
        bail!(
            "the {} model has D = {dim} parameters: about {rows} vectors of D values ({:.1} GB) would be needed, and {:.1} GB of memory is available",
            cfg.model.name(),
            bytes as f64 / 1e9,
            available as f64 / 1e9
        );
    }
    Ok(())
}

/// Refuses a training run whose sample-space eigensolves would not fit in memory, before
/// its first step: a `lowrank-k` dynamic's (over the N samples, or the ⌊N/m⌋ batch means of
/// `minibatch-pass`) and the online `noise` probe's (over `probes.samples`).
pub fn check_sample_space(cfg: &RunConfig, n: usize) -> Result<()> {
    if let noisescope_noise::Dynamic::LowRank(_) = cfg.noise.dynamic {
        let rows = match cfg.noise.estimate {
            noisescope_noise::CovarianceEstimate::Exact => n,
            noisescope_noise::CovarianceEstimate::MinibatchPass => n / cfg.noise.batch.max(1),
        };
        check_gram_memory(
            rows,
            &format!(
                "noise.dynamic = \"{}\" (a smaller data.train, or noise.estimate = \"minibatch-pass\", needs less)",
                cfg.noise.dynamic
            ),
        )?;
    }
    if cfg.probes.every > 0
        && cfg
            .probes
            .list
            .contains(&noisescope_runs::config::Probe::Noise)
    {
        check_gram_memory(
            cfg.probes.samples.unwrap_or(n).min(n),
            "the `noise` probe (a smaller probes.samples needs less)",
        )?;
    }
    Ok(())
}

/// Refuses an n × n sample-space eigensolve that would not fit in host memory, before it
/// starts: the Gram matrix of the per-sample gradients (f32), its f64 copy on the host, the
/// symmetrized copy the dense eigensolver takes, its eigenvectors and their row-major copy
/// (f64), about 36 n² bytes. `what` names the setting that asks for it. (Full MNIST,
/// n = 60 000, would need 130 GB and hours of O(n³) work.)
pub fn check_gram_memory(n: usize, what: &str) -> Result<()> {
    let Some(available) = available_memory() else {
        return Ok(());
    };
    let bytes = (n as u128) * (n as u128) * 36;
    if bytes > available as u128 {
        bail!(
            "{what}: the top eigenpairs of Σ come from an n × n matrix of n = {n} gradients, about {:.1} GB with the eigensolver's copies, and {:.1} GB of memory is available",
            bytes as f64 / 1e9,
            available as f64 / 1e9
        );
    }
    Ok(())
}

/// Bytes of host memory the system can still give, when it says (Linux `MemAvailable`).
pub fn available_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Builds the net and uploads the data of `cfg` to the opened device.
pub fn build(cfg: &RunConfig, opened: &Opened, search: &SearchPath) -> Result<Experiment> {
    opened.check_precision(cfg.precision)?;
    let device = &opened.device;
    let net = cfg.model.build(device, cfg.precision)?;
    check_memory(cfg, net.dim(), opened)?;
    let (tr, te, describe) = cfg.data.load(cfg.seed, search)?;
    cfg.check(net.dim(), tr.n)?;
    let train = net.adapt(upload(&tr, "training set", device, cfg.precision)?);
    let test = match te {
        Some(t) => Some(net.adapt(upload(&t, "test set", device, cfg.precision)?)),
        None => None,
    };
    let probe_theta = Tensor::<1>::zeros([net.dim()], (device, cfg.precision.dtype()));
    net.check(&probe_theta, &train)?;
    Ok(Experiment {
        net,
        train,
        test,
        describe,
    })
}

/// Loss and accuracy of θ on `data`, evaluated `chunk` samples at a time (a convolution's
/// unfolded patches for 10 000 images would not fit at once).
pub fn evaluate(
    net: &Net,
    theta: &Tensor<1>,
    data: &DeviceDataset,
    chunk: usize,
) -> (f64, Option<f64>) {
    let mut loss = 0.0;
    let mut hits = 0.0;
    let mut has_acc = true;
    for start in (0..data.n).step_by(chunk.max(1)) {
        let idx: Vec<usize> = (start..(start + chunk).min(data.n)).collect();
        let part = if idx.len() == data.n {
            data.clone()
        } else {
            data.gather(&idx)
        };
        let w = idx.len() as f64;
        let (l, acc) = net.loss_and_accuracy(theta, &part);
        loss += l * w;
        match acc {
            Some(a) => hits += a * w,
            None => has_acc = false,
        }
    }
    let n = data.n as f64;
    (loss / n, has_acc.then_some(hits / n))
}
