//! Which kernels a pass runs, decided in this one place.
//!
//! The device's capability decides ([`noisescope_data::in_host_memory`], one enum match on its
//! backend): on host memory (burn-ndarray) the passes run our host kernels, which read and
//! write the tensors' buffers in place; on every other device (wgpu on a GPU or on lavapipe)
//! they run burn's tensor ops. A tensor tracked by burn's autodiff always takes burn's ops
//! (the host kernels would cut the graph that the autodiff reference checks differentiate
//! through), and so does any dtype other than f32 and f64.
//!
//! Each layer with host kernels states its passes as a trait (`ConvKernels`, `PoolKernels`,
//! `ActivationKernels`) implemented by two kernel objects, [`Burn`] and [`Host<T>`]. Its
//! [`Layer`](crate::Layer) methods ask [`Engine::of`] once for the tensors the pass reads and
//! hand the pass to the object [`with_kernels!`] picks; no pass tests the device itself.

use burn::prelude::*;
use burn::tensor::DType;

/// Where a pass computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// burn's tensor ops, on any backend.
    Burn,
    /// The host kernels, on plain host memory, in this float (f32 or f64).
    Host(DType),
}

impl Engine {
    /// The engine for work in `dtype` on `device` that burn's autodiff does not record (a
    /// Lanczos recurrence, say): the host kernels for f32 and f64 in host memory, burn's ops
    /// otherwise. The device's capability, decided here for every pass.
    pub fn of_device(device: &Device, dtype: DType) -> Engine {
        match dtype {
            DType::F32 | DType::F64 if noisescope_data::in_host_memory(device) => {
                Engine::Host(dtype)
            }
            _ => Engine::Burn,
        }
    }

    /// The engine for a pass that reads `t`: [`of_device`](Self::of_device) for `t`'s device
    /// and float, and burn's ops whenever burn's autodiff tracks `t`.
    pub fn of<const D: usize>(t: &Tensor<D>) -> Engine {
        if t.is_autodiff() {
            Engine::Burn
        } else {
            Engine::of_device(&t.device(), t.dtype())
        }
    }

    /// This engine for a pass that also reads `t`: the host kernels only if `t` takes them in
    /// the same float.
    pub fn and<const D: usize>(self, t: &Tensor<D>) -> Engine {
        if self == Engine::of(t) {
            self
        } else {
            Engine::Burn
        }
    }

    /// [`and`](Self::and) for a layer's θ_l, when it has one.
    pub(crate) fn and_theta(self, theta: Option<&Tensor<1>>) -> Engine {
        theta.map_or(self, |t| self.and(t))
    }

    /// The host float, if the host kernels run.
    pub fn host(self) -> Option<DType> {
        match self {
            Engine::Host(d) => Some(d),
            Engine::Burn => None,
        }
    }
}

/// The kernel object that runs a layer's passes with burn's tensor ops, on any backend.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Burn;

/// The kernel object that runs a layer's passes as host kernels over buffers of `T`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Host<T>(std::marker::PhantomData<T>);

/// Runs `$body` with `$K` the kernel object for `$engine`: [`Burn`], `Host<f32>` or
/// `Host<f64>`.
macro_rules! with_kernels {
    ($engine:expr, $K:ident => $body:expr) => {
        match $engine {
            $crate::kernels::Engine::Burn => {
                type $K = $crate::kernels::Burn;
                $body
            }
            $crate::kernels::Engine::Host(burn::tensor::DType::F64) => {
                type $K = $crate::kernels::Host<f64>;
                $body
            }
            $crate::kernels::Engine::Host(_) => {
                type $K = $crate::kernels::Host<f32>;
                $body
            }
        }
    };
}
pub(crate) use with_kernels;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::cpu;

    #[test]
    fn host_memory_takes_the_host_kernels_and_everything_else_takes_burns_ops() {
        let host = cpu();
        let f32s = Tensor::<2>::zeros([2, 3], (&host, DType::F32));
        let f64s = Tensor::<1>::zeros([3], (&host, DType::F64));
        assert_eq!(Engine::of(&f32s), Engine::Host(DType::F32));
        assert_eq!(Engine::of(&f64s), Engine::Host(DType::F64));
        // Mixed floats, an autodiff-tracked θ and a wgpu tensor all take burn's ops.
        assert_eq!(Engine::of(&f32s).and(&f64s), Engine::Burn);
        let tracked = Tensor::<1>::zeros([3], (&cpu().autodiff(), DType::F64));
        assert_eq!(Engine::of(&f64s).and_theta(Some(&tracked)), Engine::Burn);
        assert_eq!(Engine::of(&f64s).and_theta(None), Engine::Host(DType::F64));
        assert_eq!(Engine::Burn.host(), None);
        assert_eq!(Engine::Host(DType::F64).host(), Some(DType::F64));
    }

    #[test]
    fn an_ndarray_device_is_host_memory_and_its_autodiff_device_is_not() {
        let host = cpu();
        assert_eq!(
            Engine::of_device(&host, DType::F32),
            Engine::Host(DType::F32)
        );
        assert_eq!(
            Engine::of_device(&host, DType::F64),
            Engine::Host(DType::F64)
        );
        // burn must see an autodiff device's ops, so its tensors are not the host kernels'.
        assert_eq!(
            Engine::of_device(&host.clone().autodiff(), DType::F64),
            Engine::Burn
        );
        // Only f32 and f64 have host kernels.
        assert_eq!(Engine::of_device(&host, DType::F16), Engine::Burn);
    }
}
