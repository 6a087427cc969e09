//! Turning `--backend` and `--device` into a burn `Device`, with an error (not a panic) for a
//! backend this build lacks or a device that is not there.

use anyhow::{Result, bail};
use burn::prelude::Device;

use crate::args::BackendKind;

/// An opened device and how to name it in logs.
pub struct Opened {
    /// The burn device.
    pub device: Device,
    /// `ndarray (CPU, N threads, matrix engine)` or the adapter's name.
    pub description: String,
    /// The backend.
    pub kind: BackendKind,
}

impl Opened {
    /// Refuses f64 on wgpu: f64 `exp`, `log` and `tanh` come out wrong there (on lavapipe: exp
    /// off by up to 2.7, log-softmax by 91, while f64 matmul and sums agree with ndarray to
    /// 1e-15; Vulkan's GLSL.std.450 defines these functions for 16- and 32-bit floats only), so
    /// a 784–64–10 MLP's loss after two SGD steps was 4.598 against 2.111 on ndarray.
    pub fn check_precision(&self, precision: noisescope_data::Precision) -> Result<()> {
        if self.kind == BackendKind::Wgpu && precision == noisescope_data::Precision::F64 {
            bail!(
                "precision = \"f64\" on the wgpu backend: f64 exp, log and tanh come out wrong there (Vulkan defines them for 32-bit floats only); \
                 use precision = \"f32\" on wgpu (the default), or f64 on --backend ndarray for reference runs"
            );
        }
        Ok(())
    }
}

/// Opens device `index` (default 0) of `kind`.
pub fn open(kind: BackendKind, index: Option<usize>) -> Result<Opened> {
    match kind {
        BackendKind::Ndarray => open_ndarray(index),
        BackendKind::Wgpu => open_wgpu(index),
    }
}

#[cfg(feature = "ndarray")]
#[allow(deprecated)] // burn 0.22 deprecates ndarray in favour of flex; it is still the faster f64 CPU path here.
fn open_ndarray(index: Option<usize>) -> Result<Opened> {
    if let Some(i) = index.filter(|&i| i != 0) {
        bail!("the ndarray backend has one device (0), not {i}");
    }
    Ok(Opened {
        device: Device::ndarray(),
        description: format!(
            "ndarray (CPU, {}, {})",
            threads_phrase(),
            noisescope_models::matmul_engine()
        ),
        kind: BackendKind::Ndarray,
    })
}

#[cfg(feature = "ndarray")]
/// "1 thread" or "N threads": the host kernels' count, which a run's summary records.
fn threads_phrase() -> String {
    match noisescope_models::host_threads() {
        1 => "1 thread".into(),
        n => format!("{n} threads"),
    }
}

#[cfg(not(feature = "ndarray"))]
fn open_ndarray(_: Option<usize>) -> Result<Opened> {
    bail!(
        "this noisescope was built without the ndarray backend; rebuild with `--features ndarray`"
    )
}

/// The wgpu devices by number (as `--device N` picks them), each described by its adapter's
/// name; an error saying what is missing when there are none.
#[cfg(feature = "wgpu")]
pub fn wgpu_devices() -> Result<Vec<(Device, String)>> {
    use burn::tensor::DeviceType;
    use cubecl_wgpu::{AutoGraphicsApi, Backend, GraphicsApi};
    // burn settles on Vulkan, DX12 or Metal when one reaches an adapter and falls back to
    // OpenGL otherwise. On OpenGL (Mesa's llvmpipe) burn 0.22's kernels were seen to return
    // wrong sums, so noisescope refuses it rather than report wrong numbers.
    if AutoGraphicsApi::backend() == Backend::Gl {
        bail!(
            "the wgpu backend found no Vulkan, Metal or DX12 adapter, only OpenGL, where burn 0.22's kernels \
             give wrong results (mnist-small's pixel mean came out 0.0434 on llvmpipe's OpenGL, 0.1302 on the CPU). \
             On Linux install the Vulkan loader and a driver (`apt-get install libvulkan1` and your GPU's driver, \
             or `mesa-vulkan-drivers` for the CPU rasterizer lavapipe), or use `--backend ndarray`"
        );
    }
    let devices: Vec<Device> = Device::enumerate(DeviceType::Wgpu).into_iter().collect();
    if devices.is_empty() {
        bail!(
            "the wgpu backend found no GPU adapter. It needs Vulkan (Linux), Metal (macOS) or DX12 (Windows): \
             on Linux install the Vulkan loader and a driver (`apt-get install libvulkan1` and your GPU's driver, \
             or `mesa-vulkan-drivers` for the CPU rasterizer lavapipe), or use `--backend ndarray`"
        );
    }
    Ok(devices
        .into_iter()
        .map(|d| {
            let name = describe(&d);
            (d, name)
        })
        .collect())
}

#[cfg(feature = "wgpu")]
fn open_wgpu(index: Option<usize>) -> Result<Opened> {
    let found = wgpu_devices()?;
    let i = index.unwrap_or(0);
    let names: Vec<String> = found.iter().map(|(_, n)| n.clone()).collect();
    let devices: Vec<Device> = found.into_iter().map(|(d, _)| d).collect();
    let Some(device) = devices.get(i).cloned() else {
        bail!(
            "wgpu device {i} does not exist; found {}:\n{}",
            devices.len(),
            names
                .iter()
                .enumerate()
                .map(|(k, n)| format!("  {k}: {n}"))
                .collect::<Vec<_>>()
                .join("\n")
        );
    };
    #[cfg(feature = "gpu-fusion")]
    eprintln!("{}", crate::gpu_tuning::announcement());
    Ok(Opened {
        device,
        description: format!("wgpu {i}: {}", names[i]),
        kind: BackendKind::Wgpu,
    })
}

#[cfg(feature = "wgpu")]
fn describe(d: &Device) -> String {
    d.identity()
        .map(|id| format!("{} [{}]", id.name, id.fingerprint))
        .unwrap_or_else(|| format!("{d:?}"))
}

#[cfg(not(feature = "wgpu"))]
pub fn wgpu_devices() -> Result<Vec<(Device, String)>> {
    bail!("this noisescope was built without the wgpu backend; rebuild with `--features wgpu`")
}

#[cfg(not(feature = "wgpu"))]
fn open_wgpu(_: Option<usize>) -> Result<Opened> {
    bail!("this noisescope was built without the wgpu backend; rebuild with `--features wgpu`")
}

/// `noisescope devices`: the CPU backend and every wgpu device with its number.
pub fn list(g: &crate::args::Global) -> Result<()> {
    let cpu = open(BackendKind::Ndarray, None)?.description;
    let gpus = wgpu_devices();
    if g.json {
        let wgpu: Vec<serde_json::Value> = match &gpus {
            Ok(list) => list
                .iter()
                .enumerate()
                .map(|(i, (_, n))| serde_json::json!({"device": i, "name": n}))
                .collect(),
            Err(_) => Vec::new(),
        };
        crate::output::print_json(&serde_json::json!({"ndarray": cpu, "wgpu": wgpu}));
        return Ok(());
    }
    println!("--backend ndarray: {cpu}");
    match gpus {
        Ok(list) => {
            for (i, (_, n)) in list.iter().enumerate() {
                println!("--backend wgpu --device {i}: {n}");
            }
        }
        Err(e) => println!("--backend wgpu: none ({e:#})"),
    }
    Ok(())
}
