//! The CPU matrix-product engine: a system CBLAS (OpenBLAS) loaded at run time when one is
//! installed, else `matrixmultiply`.
//!
//! Measured on this project's 2-core AVX-512 machine (2026-12-06): 1024³ f32 in 25 ms with
//! `matrixmultiply` on one thread and 20 ms on two, against 18 and 8.6 ms with OpenBLAS
//! (PyTorch: 19 and 9.6 ms); a tanh layer's [128, 784] × [784, 2048] in 6.0 ms against 3.9
//! (one thread) and 2.6 ms (two). The `gemm` crate took 41–50 ms (its AVX-512 kernels need a
//! nightly compiler).
//!
//! Loaded with `dlopen`, not linked: a machine without OpenBLAS still builds and runs
//! noisescope (at `matrixmultiply`'s speed), and nothing but the library itself is needed
//! (Debian's `libopenblas0`). `NOISESCOPE_BLAS` picks: unset or `auto` tries the usual names,
//! `none` keeps `matrixmultiply`, anything else is the path of a CBLAS library.
//!
//! The two engines round differently, so they give different bits; each is deterministic
//! for any thread count (both split a product by output blocks, never along the sum).

use std::ffi::{CStr, c_char, c_int};
use std::sync::OnceLock;

use burn::tensor::DType;

use crate::host_conv::Real;

const ROW_MAJOR: c_int = 101;
const NO_TRANS: c_int = 111;
const TRANS: c_int = 112;

/// `cblas_?gemm(order, transA, transB, M, N, K, α, A, lda, B, ldb, β, C, ldc)` for one float.
macro_rules! gemm_fn {
    ($t:ty) => {
        unsafe extern "C" fn(
            c_int,
            c_int,
            c_int,
            c_int,
            c_int,
            c_int,
            $t,
            *const $t,
            c_int,
            *const $t,
            c_int,
            $t,
            *mut $t,
            c_int,
        )
    };
}
type Sgemm = gemm_fn!(f32);
type Dgemm = gemm_fn!(f64);

/// A loaded CBLAS: its two products and what to call it.
struct Cblas {
    sgemm: Sgemm,
    dgemm: Dgemm,
    name: String,
}

static ENGINE: OnceLock<Result<Option<Cblas>, String>> = OnceLock::new();

/// Library names tried by `auto`, most specific first.
const AUTO: &[&str] = &[
    "libopenblas.so.0",
    "libopenblas.so",
    "libopenblas.dylib",
    "/opt/homebrew/opt/openblas/lib/libopenblas.dylib",
    "/usr/local/opt/openblas/lib/libopenblas.dylib",
];

/// Chooses the engine from `choice` (`auto`, `none` or a library path; `None` reads
/// `NOISESCOPE_BLAS`) and sets its thread count, once per process: later calls return the
/// first outcome.
///
/// # Returns
/// The engine's name (OpenBLAS's configuration, `OpenBLAS 0.3.21 … SkylakeX …`, another
/// CBLAS's path, or `matrixmultiply`), or an error naming the
/// library that a path choice could not load.
pub fn init_matmul_engine(choice: Option<&str>, threads: usize) -> Result<String, String> {
    match engine(choice, threads) {
        Ok(Some(c)) => Ok(c.name.clone()),
        Ok(None) => Ok("matrixmultiply".into()),
        Err(e) => Err(e.clone()),
    }
}

/// The engine's name, choosing it from `NOISESCOPE_BLAS` on first use.
pub fn matmul_engine() -> String {
    init_matmul_engine(None, crate::host_threads()).unwrap_or_else(|_| "matrixmultiply".into())
}

/// Whether the products run in the built-in `matrixmultiply` (`--blas none`, or no CBLAS
/// found): the engine whose bits match earlier versions. Host sums elsewhere (the probes'
/// Gram–Schmidt) then keep their earlier order too, so a run continued with it keeps its bits.
pub fn builtin_matmul_engine() -> bool {
    // Once chosen, a lookup; the probes' sweeps ask it per dot product.
    match ENGINE.get() {
        Some(engine) => !matches!(engine, Ok(Some(_))),
        None => cblas().is_none(),
    }
}

fn cblas() -> Option<&'static Cblas> {
    engine(None, crate::host_threads()).as_ref().ok()?.as_ref()
}

/// The process's engine, loaded by the first call from `choice`, else `NOISESCOPE_BLAS`, else
/// `auto`.
fn engine(choice: Option<&str>, threads: usize) -> &'static Result<Option<Cblas>, String> {
    ENGINE.get_or_init(|| {
        let from_env = std::env::var("NOISESCOPE_BLAS").ok();
        load(choice.or(from_env.as_deref()).unwrap_or("auto"), threads)
    })
}

fn load(choice: &str, threads: usize) -> Result<Option<Cblas>, String> {
    match choice {
        "none" | "off" | "matrixmultiply" => Ok(None),
        "auto" | "" => Ok(AUTO.iter().find_map(|name| open(name, threads).ok())),
        path => open(path, threads).map(Some),
    }
}

fn open(path: &str, threads: usize) -> Result<Cblas, String> {
    let fail = |e: libloading::Error| format!("cannot use {path} as a CBLAS library: {e}");
    // SAFETY: loading runs the library's initializers; OpenBLAS's only start its thread pool.
    let lib = unsafe { libloading::Library::new(path) }.map_err(fail)?;
    // SAFETY: the CBLAS signatures, fixed by the standard (32-bit integers: Debian's and
    // Homebrew's libopenblas; the 64-bit-integer builds carry a suffix, libopenblas64_).
    let (sgemm, dgemm) = unsafe {
        (
            *lib.get::<Sgemm>(b"cblas_sgemm\0").map_err(fail)?,
            *lib.get::<Dgemm>(b"cblas_dgemm\0").map_err(fail)?,
        )
    };
    let mut name = format!("CBLAS {path}");
    // SAFETY: OpenBLAS's own entry points, when present: (int) → void and () → C string.
    unsafe {
        if let Ok(set) = lib.get::<unsafe extern "C" fn(c_int)>(b"openblas_set_num_threads\0") {
            set(threads.min(c_int::MAX as usize) as c_int);
        }
        if let Ok(config) =
            lib.get::<unsafe extern "C" fn() -> *const c_char>(b"openblas_get_config\0")
        {
            let text = config();
            if !text.is_null() {
                name = CStr::from_ptr(text).to_string_lossy().trim().to_string();
            }
        }
    }
    // The function pointers must outlive every call: the library stays loaded for the process.
    std::mem::forget(lib);
    Ok(Cblas { sgemm, dgemm, name })
}

/// C ← op(A) op(B) in the system CBLAS, for row-major A [rows, cols] (`ta`: read as Aᵀ), B
/// likewise and C [m, n]; `false` (C untouched) without one, or for sizes past its 32-bit
/// integers.
pub(crate) fn gemm<T: Real>(
    (a, [ra, ca], ta): (&[T], [usize; 2], bool),
    (b, [rb, cb], tb): (&[T], [usize; 2], bool),
    c: &mut [T],
) -> bool {
    let Some(blas) = cblas() else { return false };
    let (m, k) = if ta { (ca, ra) } else { (ra, ca) };
    let n = if tb { rb } else { cb };
    let fits = |x: usize| c_int::try_from(x).is_ok();
    if ![m, n, k, ca, cb].into_iter().all(fits) || a.len() < m * k || b.len() < k * n {
        return false;
    }
    assert!(c.len() >= m * n);
    let trans = |t: bool| if t { TRANS } else { NO_TRANS };
    let (m, n, k) = (m as c_int, n as c_int, k as c_int);
    let (lda, ldb, ldc) = (ca.max(1) as c_int, cb.max(1) as c_int, n.max(1));
    macro_rules! call {
        ($f:expr) => {
            $f(
                ROW_MAJOR,
                trans(ta),
                trans(tb),
                m,
                n,
                k,
                1.0,
                a.as_ptr().cast(),
                lda,
                b.as_ptr().cast(),
                ldb,
                0.0,
                c.as_mut_ptr().cast(),
                ldc,
            )
        };
    }
    // SAFETY: A, B and C hold the row-major shapes that the leading dimensions and
    // transposition flags describe (checked above); T is f32 or f64 as its dtype says.
    unsafe {
        match T::dtype() {
            DType::F32 => call!(blas.sgemm),
            DType::F64 => call!(blas.dgemm),
            _ => return false,
        }
    }
    true
}
