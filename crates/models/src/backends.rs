//! The f32 checks on the wgpu backend: every zoo model's gradient, per-sample gradients, HVP
//! and GGN product on the GPU (on lavapipe, Mesa's software Vulkan, where there is no GPU)
//! against the f64 ndarray results that the other tests verify.
//!
//! Without a Vulkan, Metal or DX12 adapter the test says so on stderr and passes, unless
//! `NOISESCOPE_REQUIRE_WGPU` is set (CI sets it), in which case it fails.

use burn::prelude::*;
use burn::tensor::DeviceType;
use noisescope_data::Precision;

use crate::testing::{cpu, host, host2, rel_err, zoo_cases};

fn wgpu() -> Option<Device> {
    use cubecl_wgpu::{AutoGraphicsApi, Backend, GraphicsApi};
    let devices: Vec<Device> = Device::enumerate(DeviceType::Wgpu).into_iter().collect();
    // burn falls back to OpenGL without Vulkan; its kernels were seen to be wrong there.
    if !devices.is_empty() && AutoGraphicsApi::backend() != Backend::Gl {
        return Some(devices[0].clone());
    }
    let why =
        "wgpu has no Vulkan, Metal or DX12 adapter (install mesa-vulkan-drivers for lavapipe)";
    assert!(
        std::env::var_os("NOISESCOPE_REQUIRE_WGPU").is_none(),
        "NOISESCOPE_REQUIRE_WGPU is set but {why}"
    );
    eprintln!("NOT RUN: the wgpu checks need a GPU adapter: {why}");
    None
}

#[test]
fn wgpu_f32_matches_f64_reference_for_every_model() {
    let Some(gpu) = wgpu() else { return };
    for case in zoo_cases() {
        let (n64, t64, d64) = case.build(&cpu(), Precision::F64);
        let (nw, tw, dw) = case.build(&gpu, Precision::F32);
        let d = n64.dim();
        let v: Vec<f64> = (0..2 * d)
            .map(|j| ((j * 7919) % 13) as f64 / 6.0 - 1.0)
            .collect();
        let v64 = Tensor::<2>::from_data(
            TensorData::new(v.clone(), [2, d]),
            (&cpu(), Precision::F64.dtype()),
        );
        let vw = Tensor::<2>::from_data(TensorData::new(v, [2, d]), (&gpu, Precision::F32.dtype()));
        let checks = [
            (
                "gradient",
                host(nw.gradient(&tw, &dw).1),
                host(n64.gradient(&t64, &d64).1),
            ),
            (
                "per-sample gradients",
                host2(nw.per_sample_gradients(&tw, &dw)),
                host2(n64.per_sample_gradients(&t64, &d64)),
            ),
            (
                "HVP",
                host2(nw.hvp(&tw, &dw, &vw)),
                host2(n64.hvp(&t64, &d64, &v64)),
            ),
            (
                "GGN product",
                host2(nw.ggn_vp(&tw, &dw, &vw)),
                host2(n64.ggn_vp(&t64, &d64, &v64)),
            ),
        ];
        for (what, got, want) in checks {
            let e = rel_err(&got, &want);
            assert!(e < 1e-4, "{} on wgpu: {what} rel. error {e:e}", case.name);
        }
    }
}
