//! Host kernels for the convolution and 2 × 2 max-pooling layers when the device is host
//! memory (ndarray), in f32 or f64.
//!
//! Every pass of a valid, stride-1 convolution is a small matmul per sample between the
//! filters and that sample's patches P_n = unfold(a_n), [c_i·kh·kw, L]:
//! - forward: z_n = W P_n + b, W [c_o, c_i·kh·kw];
//! - weight gradient: Σ_n δ_n P_nᵀ and Σ_{n,l} δ_n;
//! - input cotangent: fold(Wᵀ δ_n).
//!
//! Written as burn ops, these passes went through ndarray's element-by-element layout
//! copies: patch extraction, folding, channel-first transposes and burn's max-pool took
//! ≈ 90% of a convyu step on 1200 images, the matmuls 9% (perf, 2026-11-27). Here each
//! sample's patches are built in a buffer that stays in cache, the matmuls go straight to
//! the gemm crate (one sample's small products) or `matrixmultiply` (stacked directions)
//! with strides in place of transposes, and samples are split over the cores. The wgpu path keeps burn's kernels (`conv.rs`, `pool.rs`).

// burn marks its ndarray backend deprecated in favour of flex; it is still our CPU engine
// (docs/performance.md), and reading its buffers in place is what `values` is for.
#![allow(deprecated)]

use std::ops::Range;

use burn::backend::NdArray;
use burn::backend::ndarray::NdArrayTensor;
use burn::prelude::*;
use burn::tensor::{Element, TensorData};

/// `matrixmultiply`'s `?gemm(m, k, n, α, A, rsa, csa, B, rsb, csb, β, C, rsc, csc)`:
/// C ← α A B + β C with row and column strides.
pub(crate) type Packed<T> = unsafe fn(
    usize,
    usize,
    usize,
    T,
    *const T,
    isize,
    isize,
    *const T,
    isize,
    isize,
    T,
    *mut T,
    isize,
    isize,
);

/// A float that the host kernels run in.
pub(crate) trait Real:
    Element + Copy + Send + Sync + PartialOrd + std::ops::AddAssign + std::ops::Mul<Output = Self>
{
    /// 0.
    const ZERO: Self;

    /// C ← A B + β C for an [m, k] A, a [k, n] B and an [m, n] C given by row and column
    /// strides (elements).
    ///
    /// # Safety
    /// The strides must keep every addressed element inside the given slices (checked by
    /// [`gemm`]).
    #[allow(clippy::too_many_arguments)]
    unsafe fn gemm_raw(
        m: usize,
        k: usize,
        n: usize,
        a: (*const Self, isize, isize),
        b: (*const Self, isize, isize),
        beta: Self,
        c: (*mut Self, isize, isize),
    );

    /// `matrixmultiply`'s product for this float: burn-ndarray's matmul runs it, so a
    /// product through it has the same bits as burn's.
    const PACKED: Packed<Self>;

    /// The row-major values of burn-ndarray's tensor `t` in place, if it holds this float in
    /// a contiguous row-major buffer.
    fn in_place(t: &NdArrayTensor) -> Option<&[Self]>;

    /// The row-major values of burn-ndarray's tensor `t`, copied row by row, if it holds this
    /// float in rows of unit stride (a narrowed view of a row-major buffer, say): one memcpy
    /// per row, where ndarray's own copy of a view walks it element by element.
    fn rows_copied(t: &NdArrayTensor) -> Option<Vec<Self>>;

    /// `f` of the rows of burn-ndarray's 2-D tensor `t` read in place, if it holds this float
    /// in rows of unit stride (a narrowed view of a row-major buffer, say).
    fn with_rows<R>(t: &NdArrayTensor, f: impl FnOnce(&[&[Self]]) -> R) -> Option<R>;
}

macro_rules! real_with_gemm {
    ($t:ty, $packed:path, $variant:ident) => {
        impl Real for $t {
            const ZERO: $t = 0.0;
            const PACKED: Packed<$t> = $packed;
            fn in_place(t: &NdArrayTensor) -> Option<&[$t]> {
                match t {
                    NdArrayTensor::$variant(s) => s.view().to_slice(),
                    _ => None,
                }
            }
            fn with_rows<R>(t: &NdArrayTensor, f: impl FnOnce(&[&[$t]]) -> R) -> Option<R> {
                match t {
                    NdArrayTensor::$variant(s) => {
                        let v = s.view();
                        if v.ndim() != 2 {
                            return None;
                        }
                        let rows: Option<Vec<&[$t]>> = (0..v.shape()[0])
                            .map(|r| v.clone().index_axis_move(ndarray::Axis(0), r).to_slice())
                            .collect();
                        rows.map(|rows| f(&rows))
                    }
                    _ => None,
                }
            }
            fn rows_copied(t: &NdArrayTensor) -> Option<Vec<$t>> {
                match t {
                    NdArrayTensor::$variant(s) => {
                        let v = s.view();
                        if v.ndim() == 0 {
                            return None;
                        }
                        let mut out = Vec::with_capacity(v.len());
                        for row in v.rows() {
                            out.extend_from_slice(row.to_slice()?);
                        }
                        Some(out)
                    }
                    _ => None,
                }
            }
            unsafe fn gemm_raw(
                m: usize,
                k: usize,
                n: usize,
                a: (*const $t, isize, isize),
                b: (*const $t, isize, isize),
                beta: $t,
                c: (*mut $t, isize, isize),
            ) {
                if m < SMALL_M {
                    // SAFETY: the caller's bounds (checked in `gemm`). The gemm crate takes
                    // (column, row) strides and computes dst ← α dst + β A B.
                    unsafe {
                        gemm::gemm(
                            m,
                            n,
                            k,
                            c.0,
                            c.2,
                            c.1,
                            beta != 0.0,
                            a.0,
                            a.2,
                            a.1,
                            b.0,
                            b.2,
                            b.1,
                            beta,
                            1.0,
                            false,
                            false,
                            false,
                            gemm::Parallelism::None,
                        )
                    }
                } else {
                    // SAFETY: as above.
                    unsafe {
                        Self::PACKED(
                            m, k, n, 1.0, a.0, a.1, a.2, b.0, b.1, b.2, beta, c.0, c.1, c.2,
                        )
                    }
                }
            }
        }
    };
}
real_with_gemm!(f32, matrixmultiply::sgemm, F32);
real_with_gemm!(f64, matrixmultiply::dgemm, F64);

/// Below this many output rows (one sample's filter bank: c_o = 10 in `convyu`) a product
/// goes to the gemm crate, above it to `matrixmultiply`. Measured on this project's 2-core
/// AVX-512 machine, one thread (docs/performance.md, attempt 6): for [10, 25] × [25, 576] and
/// [10, 250] × [250, 64] the gemm crate took 3.8–4.0 µs against 6.7–8.0, and 5.0 against
/// 10.8 µs for [10, 576] × [576, 25] read transposed, because `matrixmultiply` packs both
/// operands of every call; stacked banks of 20 directions ([200, ·]) ran 15–25% faster in
/// `matrixmultiply`.
const SMALL_M: usize = 64;

/// A row-major matrix operand, possibly read transposed: `Mat(s, rows, cols, false)` is s as
/// [rows, cols]; `Mat(s, rows, cols, true)` is the transpose of s stored as [cols, rows].
#[derive(Clone, Copy)]
pub(crate) struct Mat<'a, T>(
    pub(crate) &'a [T],
    pub(crate) usize,
    pub(crate) usize,
    pub(crate) bool,
);

impl<'a, T> Mat<'a, T> {
    /// s stored row-major as `[rows, cols]`, read transposed when `t`.
    pub(crate) fn stored(s: &'a [T], [rows, cols]: [usize; 2], t: bool) -> Self {
        if t {
            Mat(s, cols, rows, true)
        } else {
            Mat(s, rows, cols, false)
        }
    }

    /// The shape s is stored in, `[rows, cols]`.
    pub(crate) fn stored_shape(&self) -> [usize; 2] {
        if self.3 {
            [self.2, self.1]
        } else {
            [self.1, self.2]
        }
    }

    pub(crate) fn strides(&self) -> (isize, isize) {
        let (r, c) = (self.1 as isize, self.2 as isize);
        if self.3 { (1, r) } else { (c, 1) }
    }
}

/// C ← A B (+ C when `accumulate`), C row-major [A.rows, B.cols].
fn gemm<T: Real>(a: Mat<T>, b: Mat<T>, c: &mut [T], accumulate: bool) {
    let (m, k, n) = (a.1, a.2, b.2);
    assert!(b.1 == k && a.0.len() >= m * k && b.0.len() >= k * n && c.len() >= m * n);
    let (rsa, csa) = a.strides();
    let (rsb, csb) = b.strides();
    let beta = if accumulate {
        T::from_elem(1.0)
    } else {
        T::ZERO
    };
    // SAFETY: the lengths were checked against the shapes the strides address.
    unsafe {
        T::gemm_raw(
            m,
            k,
            n,
            (a.0.as_ptr(), rsa, csa),
            (b.0.as_ptr(), rsb, csb),
            beta,
            (c.as_mut_ptr(), n as isize, 1),
        )
    }
}

/// The shape of a valid, stride-1 convolution over one sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Geometry {
    /// c_i input channels.
    pub c_in: usize,
    /// c_o output channels (filters).
    pub c_out: usize,
    /// Input height and width.
    pub input: [usize; 2],
    /// Kernel height and width.
    pub kernel: [usize; 2],
}

impl Geometry {
    fn out_hw(&self) -> [usize; 2] {
        [
            self.input[0] - self.kernel[0] + 1,
            self.input[1] - self.kernel[1] + 1,
        ]
    }
    /// L, output positions.
    fn positions(&self) -> usize {
        let [h, w] = self.out_hw();
        h * w
    }
    /// c_i·kh·kw.
    fn patch(&self) -> usize {
        self.c_in * self.kernel[0] * self.kernel[1]
    }
    /// c_i·h·w.
    fn image(&self) -> usize {
        self.c_in * self.input[0] * self.input[1]
    }
    /// c_o·L.
    fn out(&self) -> usize {
        self.c_out * self.positions()
    }

    /// P = unfold(x), [c_i·kh·kw, L], rows ordered (channel, kernel row, kernel column).
    fn unfold<T: Real>(&self, x: &[T], cols: &mut [T]) {
        let ([kh, kw], [ho, wo], [h, w]) = (self.kernel, self.out_hw(), self.input);
        let l = ho * wo;
        for c in 0..self.c_in {
            let plane = &x[c * h * w..(c + 1) * h * w];
            for i in 0..kh {
                for j in 0..kw {
                    let row = (c * kh + i) * kw + j;
                    let dst = &mut cols[row * l..(row + 1) * l];
                    for y in 0..ho {
                        let src = &plane[(y + i) * w + j..(y + i) * w + j + wo];
                        dst[y * wo..(y + 1) * wo].copy_from_slice(src);
                    }
                }
            }
        }
    }

    /// Pᵀ = unfold(x)ᵀ, [L, c_i·kh·kw]: each output position's patch as one row, entries
    /// ordered as [`Geometry::unfold`]'s rows.
    fn unfold_t<T: Real>(&self, x: &[T], rows: &mut [T]) {
        match self.kernel[1] {
            // A fixed run length lets the compiler inline each run's copy; a runtime one
            // calls memcpy once per kw entries.
            5 => self.unfold_t_runs::<T, 5>(x, rows),
            3 => self.unfold_t_runs::<T, 3>(x, rows),
            _ => self.unfold_t_runs::<T, 0>(x, rows),
        }
    }

    /// [`Geometry::unfold_t`] with kernel width `KW` (0: read from the geometry).
    #[inline(always)]
    fn unfold_t_runs<T: Real, const KW: usize>(&self, x: &[T], rows: &mut [T]) {
        let ([kh, kw], [ho, wo], [h, w]) = (self.kernel, self.out_hw(), self.input);
        let kw = if KW == 0 { kw } else { KW };
        let rows = &mut rows[..ho * wo * self.patch()];
        let mut at = 0;
        for y in 0..ho {
            for xo in 0..wo {
                for c in 0..self.c_in {
                    let mut from = (c * h + y) * w + xo;
                    for _ in 0..kh {
                        rows[at..at + kw].copy_from_slice(&x[from..from + kw]);
                        at += kw;
                        from += w;
                    }
                }
            }
        }
    }

    /// Whether a weight-gradient product Σ δ Pᵀ with `rows` cotangent rows (c_o, or k·c_o
    /// for stacked directions) reads the patches as Pᵀ rows ([`Geometry::unfold_t`]) rather
    /// than P transposed in place.
    ///
    /// The gemm crate wants the product's left operand (P, after it turns C = δPᵀ into
    /// Cᵀ = P δᵀ for a row-major C) with unit row stride; read from P's rows it gathers every
    /// entry with stride L while packing, which took a fifth of a convyu Hessian-vector
    /// product (perf, 2026-12-06). Packing only copies, so the products keep their bits,
    /// except where the crate picks another kernel by the operands' strides: outputs of at
    /// most 16 × 16 entries, single rows or columns, and depths of at most 2. Those keep P.
    fn patches_by_position(&self, rows: usize) -> bool {
        let (cp, l) = (self.patch(), self.positions());
        rows >= 2 && cp >= 2 && l > 2 && rows * cp > 16 * 16
    }

    /// x += fold(cols): each patch entry added back at its input position (the adjoint of
    /// [`Geometry::unfold`]).
    fn fold_add<T: Real>(&self, cols: &[T], x: &mut [T]) {
        let ([kh, kw], [ho, wo], [h, w]) = (self.kernel, self.out_hw(), self.input);
        let l = ho * wo;
        for c in 0..self.c_in {
            let plane = &mut x[c * h * w..(c + 1) * h * w];
            for i in 0..kh {
                for j in 0..kw {
                    let row = (c * kh + i) * kw + j;
                    let src = &cols[row * l..(row + 1) * l];
                    for y in 0..ho {
                        let dst = &mut plane[(y + i) * w + j..(y + i) * w + j + wo];
                        for (d, s) in dst.iter_mut().zip(&src[y * wo..(y + 1) * wo]) {
                            *d += *s;
                        }
                    }
                }
            }
        }
    }
}

/// How many threads share n items: the cores, at most n, at least 1.
fn threads(n: usize) -> usize {
    crate::threads::host_threads().min(n).max(1)
}

/// Splits `0..n` over the cores and runs `f` on each part (inline for small n).
fn split<R: Send>(n: usize, f: impl Fn(Range<usize>) -> R + Sync) -> Vec<R> {
    let threads = threads(n);
    if threads == 1 {
        return vec![f(0..n)];
    }
    let per = n.div_ceil(threads);
    std::thread::scope(|scope| {
        let f = &f;
        let handles: Vec<_> = (0..threads)
            .map(|t| scope.spawn(move || f(t * per..((t + 1) * per).min(n))))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a host convolution thread panicked"))
            .collect()
    })
}

/// Fills `out`, [k, n, len], over the cores split by sample: `f(samples, slabs)` gets, for
/// each of the k blocks, the rows of its samples (`slabs[kk]` is [samples.len(), len]).
fn split_samples<T: Send>(
    out: &mut [T],
    k: usize,
    n: usize,
    len: usize,
    f: impl Fn(Range<usize>, Vec<&mut [T]>) + Sync,
) {
    if n == 0 || len == 0 {
        return f(0..n, Vec::new());
    }
    let threads = threads(n);
    let per = n.div_ceil(threads);
    let mut slabs: Vec<Vec<&mut [T]>> = (0..threads).map(|_| Vec::with_capacity(k)).collect();
    for block in out.chunks_mut(n * len) {
        let mut rest = block;
        for (t, slab) in slabs.iter_mut().enumerate() {
            let rows = ((t + 1) * per).min(n).saturating_sub(t * per);
            let (mine, after) = rest.split_at_mut(rows * len);
            slab.push(mine);
            rest = after;
        }
    }
    let range = |t: usize| (t * per).min(n)..((t + 1) * per).min(n);
    if threads == 1 {
        let slab = slabs.pop().expect("one thread");
        return f(range(0), slab);
    }
    std::thread::scope(|scope| {
        let f = &f;
        for (t, slab) in slabs.into_iter().enumerate() {
            scope.spawn(move || f(range(t), slab));
        }
    });
}

/// Fills `out`, rows of `len`, by `f(row range, its rows)` over the cores.
pub(crate) fn split_rows<T: Send>(
    out: &mut [T],
    len: usize,
    f: impl Fn(Range<usize>, &mut [T]) + Sync,
) {
    if out.is_empty() {
        return;
    }
    let rows = out.len() / len.max(1);
    split_samples(out, 1, rows, len, |range, mut slab| {
        f(range, slab.pop().expect("k = 1"))
    });
}

/// An operand over k directions that may be shared by all of them (`per_k == false`):
/// `data` holds [k or 1, n, len].
#[derive(Clone, Copy)]
pub(crate) struct Blocks<'a, T> {
    data: &'a [T],
    per_k: bool,
    n: usize,
    len: usize,
}

impl<'a, T> Blocks<'a, T> {
    fn new(data: &'a [T], k: usize, n: usize, len: usize) -> Self {
        let blocks = data.len() / (n * len).max(1);
        assert!(
            data.len() == blocks * n * len && (blocks == 1 || blocks == k),
            "host convolution: {} values for [{k} or 1, {n}, {len}]",
            data.len()
        );
        Blocks {
            data,
            per_k: blocks == k && k > 1,
            n,
            len,
        }
    }
    fn get(&self, k: usize, s: usize) -> &'a [T] {
        let b = if self.per_k { k } else { 0 };
        let at = (b * self.n + s) * self.len;
        &self.data[at..at + self.len]
    }
}

/// z[k, n] = W_k ⊛ x_{k,n} + b_k, [k, n, c_o·L], for inputs x [k or 1, n, c_i·h·w], filters
/// w [k or 1, c_o, c_i·kh·kw] and biases [k or 1, c_o]. A shared input is unfolded once per
/// sample for all k filters.
pub(crate) fn forward<T: Real>(
    g: &Geometry,
    k: usize,
    n: usize,
    x: &[T],
    w: &[T],
    b: Option<&[T]>,
) -> Vec<T> {
    let (cp, l, out) = (g.patch(), g.positions(), g.out());
    let x = Blocks::new(x, k, n, g.image());
    let wk = Blocks::new(w, k, 1, g.c_out * cp);
    let bk = b.map(|b| Blocks::new(b, k, 1, g.c_out));
    let mut z = vec![T::ZERO; k * n * out];
    // Rows of z are (k, n) pairs; split over samples so that a shared input is unfolded
    // once per sample: each thread fills its samples' rows in every k block.
    split_samples(&mut z, k, n, out, |range, mut slabs| {
        let mut cols = vec![T::ZERO; cp * l];
        // A shared input against k filter banks: one matmul of the stacked banks
        // [k·c_o, cp] (contiguous as given) with the patches, which are packed once.
        let stacked = !x.per_k && wk.per_k;
        let mut buf = vec![T::ZERO; if stacked { k * out } else { 0 }];
        for (si, s) in range.enumerate() {
            if stacked {
                g.unfold(x.get(0, s), &mut cols);
                gemm(
                    Mat(w, k * g.c_out, cp, false),
                    Mat(&cols, cp, l, false),
                    &mut buf,
                    false,
                );
            }
            for (kk, slab) in slabs.iter_mut().enumerate() {
                let dst = &mut slab[si * out..(si + 1) * out];
                if stacked {
                    dst.copy_from_slice(&buf[kk * out..(kk + 1) * out]);
                } else {
                    if kk == 0 || x.per_k {
                        g.unfold(x.get(kk, s), &mut cols);
                    }
                    gemm(
                        Mat(wk.get(kk, 0), g.c_out, cp, false),
                        Mat(&cols, cp, l, false),
                        dst,
                        false,
                    );
                }
                if let Some(bk) = &bk {
                    for (row, &bias) in dst.chunks_mut(l).zip(bk.get(kk, 0)) {
                        row.iter_mut().for_each(|v| *v += bias);
                    }
                }
            }
        }
    });
    z
}

/// How a weight-gradient product reads the patches ([`Geometry::patches_by_position`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Patches {
    /// P, [cp, L], read transposed.
    ByRow,
    /// Pᵀ, [L, cp], read as it is.
    ByPosition,
}

impl Patches {
    fn choose(g: &Geometry, rows: usize) -> Self {
        if g.patches_by_position(rows) {
            Patches::ByPosition
        } else {
            Patches::ByRow
        }
    }

    fn unfold<T: Real>(self, g: &Geometry, x: &[T], cols: &mut [T]) {
        match self {
            Patches::ByRow => g.unfold(x, cols),
            Patches::ByPosition => g.unfold_t(x, cols),
        }
    }

    /// Pᵀ, [L, cp], as a product operand over `cols` filled by [`Patches::unfold`].
    fn transposed<'a, T>(self, g: &Geometry, cols: &'a [T]) -> Mat<'a, T> {
        let (cp, l) = (g.patch(), g.positions());
        Mat(cols, l, cp, self == Patches::ByRow)
    }
}

/// Σ_n d_{k,n} P(x_{k,n})ᵀ and, when `bias`, Σ_{n,l} d_{k,n}: [k, c_o·c_i·kh·kw (+ c_o)], for
/// inputs x [k or 1, n, c_i·h·w] and cotangents d [k or 1, n, c_o·L].
pub(crate) fn weight_grads<T: Real>(
    g: &Geometry,
    k: usize,
    n: usize,
    x: &[T],
    d: &[T],
    bias: bool,
) -> Vec<T> {
    weight_grads_reading(g, k, n, x, d, bias, None)
}

/// [`weight_grads`] reading the patches as `layout` says (`None`: as
/// [`Geometry::patches_by_position`] chooses).
fn weight_grads_reading<T: Real>(
    g: &Geometry,
    k: usize,
    n: usize,
    x: &[T],
    d: &[T],
    bias: bool,
    layout: Option<Patches>,
) -> Vec<T> {
    let (cp, l) = (g.patch(), g.positions());
    let x = Blocks::new(x, k, n, g.image());
    let d = Blocks::new(d, k, n, g.out());
    let row = g.c_out * cp + if bias { g.c_out } else { 0 };
    // k cotangents against one shared input: stack them as [k·c_o, L] and accumulate one
    // matmul per sample into [k·c_o, cp], so that the patches are packed once.
    let stacked = !x.per_k && d.per_k;
    let patches =
        layout.unwrap_or_else(|| Patches::choose(g, if stacked { k * g.c_out } else { g.c_out }));
    let parts = split(n, |range| {
        let mut cols = vec![T::ZERO; cp * l];
        let mut acc = vec![T::ZERO; k * row];
        let (mut ds, mut wacc) = if stacked {
            (vec![T::ZERO; k * g.out()], vec![T::ZERO; k * g.c_out * cp])
        } else {
            (Vec::new(), Vec::new())
        };
        for s in range {
            if stacked {
                patches.unfold(g, x.get(0, s), &mut cols);
                for kk in 0..k {
                    ds[kk * g.out()..(kk + 1) * g.out()].copy_from_slice(d.get(kk, s));
                }
                gemm(
                    Mat(&ds, k * g.c_out, l, false),
                    patches.transposed(g, &cols),
                    &mut wacc,
                    true,
                );
            }
            for kk in 0..k {
                let dk = d.get(kk, s);
                let dst = &mut acc[kk * row..(kk + 1) * row];
                if !stacked {
                    if kk == 0 || x.per_k {
                        patches.unfold(g, x.get(kk, s), &mut cols);
                    }
                    // [c_o, L] @ [L, cp].
                    gemm(
                        Mat(dk, g.c_out, l, false),
                        patches.transposed(g, &cols),
                        &mut dst[..g.c_out * cp],
                        true,
                    );
                }
                if bias {
                    for (acc_b, drow) in dst[g.c_out * cp..].iter_mut().zip(dk.chunks(l)) {
                        drow.iter().for_each(|&v| *acc_b += v);
                    }
                }
            }
        }
        if stacked {
            for (dst, src) in acc.chunks_mut(row).zip(wacc.chunks(g.c_out * cp)) {
                dst[..g.c_out * cp].copy_from_slice(src);
            }
        }
        acc
    });
    let mut total = vec![T::ZERO; k * row];
    for part in parts {
        total.iter_mut().zip(part).for_each(|(t, v)| *t += v);
    }
    total
}

/// The per-sample gradients [vec(δ_n P_nᵀ); Σ_l δ_n], [n, c_o·c_i·kh·kw + c_o].
pub(crate) fn per_sample_grads<T: Real>(g: &Geometry, n: usize, x: &[T], d: &[T]) -> Vec<T> {
    per_sample_grads_reading(g, n, x, d, None)
}

/// [`per_sample_grads`] reading the patches as `layout` says (`None`: as
/// [`Geometry::patches_by_position`] chooses).
fn per_sample_grads_reading<T: Real>(
    g: &Geometry,
    n: usize,
    x: &[T],
    d: &[T],
    layout: Option<Patches>,
) -> Vec<T> {
    let (cp, l) = (g.patch(), g.positions());
    let row = g.c_out * cp + g.c_out;
    let x = Blocks::new(x, 1, n, g.image());
    let d = Blocks::new(d, 1, n, g.out());
    let mut out = vec![T::ZERO; n * row];
    let patches = layout.unwrap_or_else(|| Patches::choose(g, g.c_out));
    split_rows(&mut out, row, |range, part| {
        let mut cols = vec![T::ZERO; cp * l];
        for (s, dst) in range.zip(part.chunks_mut(row)) {
            patches.unfold(g, x.get(0, s), &mut cols);
            let ds = d.get(0, s);
            gemm(
                Mat(ds, g.c_out, l, false),
                patches.transposed(g, &cols),
                &mut dst[..g.c_out * cp],
                false,
            );
            for (b, drow) in dst[g.c_out * cp..].iter_mut().zip(ds.chunks(l)) {
                *b = drow.iter().fold(T::ZERO, |mut a, &v| {
                    a += v;
                    a
                });
            }
        }
    });
    out
}

/// fold(W_kᵀ t_{k,n}), [k, n, c_i·h·w], for filters w [k or 1, c_o, c_i·kh·kw] and
/// cotangents t [k or 1, n, c_o·L].
pub(crate) fn transpose<T: Real>(g: &Geometry, k: usize, n: usize, w: &[T], t: &[T]) -> Vec<T> {
    let (cp, l, image) = (g.patch(), g.positions(), g.image());
    let wk = Blocks::new(w, k, 1, g.c_out * cp);
    let t = Blocks::new(t, k, n, g.out());
    let mut out = vec![T::ZERO; k * n * image];
    split_rows(&mut out, image, |range, part| {
        let mut cols = vec![T::ZERO; cp * l];
        for (r, dst) in range.zip(part.chunks_mut(image)) {
            let (kk, s) = (r / n, r % n);
            // [cp, c_o] @ [c_o, L] with Wᵀ read in place.
            gemm(
                Mat(wk.get(kk, 0), cp, g.c_out, true),
                Mat(t.get(kk, s), g.c_out, l, false),
                &mut cols,
                false,
            );
            g.fold_add(&cols, dst);
        }
    });
    out
}

/// Window argmax of 2 × 2 pooling over planes of h × w: for each output, the flat position
/// (row·w + column) in its plane of the window's largest entry (the first of equal ones; a
/// NaN wins, so that divergence shows), [planes, h/2·w/2].
pub(crate) fn pool_argmax<T: Real>(planes: usize, [h, w]: [usize; 2], a: &[T]) -> Vec<u32> {
    let (h2, w2) = (h / 2, w / 2);
    let mut arg = vec![0u32; planes * h2 * w2];
    split_rows(&mut arg, h2 * w2, |range, part| {
        for (p, dst) in range.zip(part.chunks_mut(h2 * w2)) {
            let plane = &a[p * h * w..(p + 1) * h * w];
            for y in 0..h2 {
                for x in 0..w2 {
                    let mut best = (2 * y) * w + 2 * x;
                    for at in [best + 1, best + w, best + w + 1] {
                        let (v, b) = (plane[at], plane[best]);
                        #[allow(clippy::eq_op)]
                        let nan = v != v && b == b;
                        if v > b || nan {
                            best = at;
                        }
                    }
                    dst[y * w2 + x] = best as u32;
                }
            }
        }
    });
    arg
}

/// Gathers each window's argmax entry: out[r, j] = src[r, arg[r mod P, j]] for the
/// src planes r of `plane` entries and the P argmax rows (planes repeat every P rows, as k
/// direction blocks of the same n samples), [rows, h/2·w/2].
pub(crate) fn pool_gather<T: Real>(arg: &[u32], outs: usize, plane: usize, src: &[T]) -> Vec<T> {
    let p = arg.len() / outs;
    let rows = src.len() / plane;
    let mut out = vec![T::ZERO; rows * outs];
    split_rows(&mut out, outs, |range, part| {
        for (r, dst) in range.zip(part.chunks_mut(outs)) {
            let (src, a) = (
                &src[r * plane..(r + 1) * plane],
                &arg[(r % p) * outs..][..outs],
            );
            dst.iter_mut()
                .zip(a)
                .for_each(|(d, &i)| *d = src[i as usize]);
        }
    });
    out
}

/// The adjoint of [`pool_gather`]: out[r, arg[r mod P, j]] = t[r, j], every other entry 0,
/// [rows, plane].
pub(crate) fn pool_scatter<T: Real>(arg: &[u32], outs: usize, plane: usize, t: &[T]) -> Vec<T> {
    let p = arg.len() / outs;
    let rows = t.len() / outs;
    let mut out = vec![T::ZERO; rows * plane];
    split_rows(&mut out, plane, |range, part| {
        for (r, dst) in range.zip(part.chunks_mut(plane)) {
            let (t, a) = (&t[r * outs..(r + 1) * outs], &arg[(r % p) * outs..][..outs]);
            a.iter().zip(t).for_each(|(&i, &v)| dst[i as usize] = v);
        }
    });
    out
}

/// The values of a host tensor as a row-major slice of T: [`values`].
pub(crate) enum Values<T: Real> {
    /// burn-ndarray's own tensor, sharing its buffer (row-major, contiguous).
    Stored(NdArrayTensor),
    /// A row-major copy.
    Copied(Vec<T>),
}

impl<T: Real> std::ops::Deref for Values<T> {
    type Target = [T];

    fn deref(&self) -> &[T] {
        match self {
            Values::Stored(t) => T::in_place(t).expect("checked row-major in `values`"),
            Values::Copied(v) => v,
        }
    }
}

impl<T: Real> Values<T> {
    /// The values as an owned vector (a copy unless they already are one).
    pub(crate) fn into_vec(self) -> Vec<T> {
        match self {
            Values::Stored(_) => self.to_vec(),
            Values::Copied(v) => v,
        }
    }
}

/// The values of `t` on the host as T, row-major.
///
/// A tensor whose ndarray buffer is already row-major and contiguous (most are: fresh results,
/// θ's layer slices, reshapes of either) is read in place, sharing the buffer: no copy. A view
/// whose rows have unit stride (a narrowed slice of directions) is copied row by row. Any
/// other (a transposed view) is copied: the product with 1 gives ndarray a fresh
/// array that it hands over without a second copy, because `into_data` of an array that is
/// still shared walks it element by element through dynamic-rank indices (two thirds of a
/// convyu step, once).
pub(crate) fn values<T: Real, const D: usize>(t: Tensor<D>) -> Values<T> {
    values_in_place(&t)
        .or_else(|| rows_copied(&t))
        .unwrap_or_else(|| {
            Values::Copied(
                (t * 1.0)
                    .into_data()
                    .try_into_vec::<T>()
                    .expect("host kernels read the tensor's own dtype"),
            )
        })
}

/// The values of `t` copied row by row ([`Real::rows_copied`]) when its rows have unit
/// stride; `None` otherwise (a transposed view).
pub(crate) fn rows_copied<T: Real, const D: usize>(t: &Tensor<D>) -> Option<Values<T>> {
    let p = t.clone().try_into_primitive::<NdArray>().ok()?;
    T::rows_copied(&p).map(Values::Copied)
}

/// The values of `t` when its ndarray buffer is already row-major and contiguous (read in
/// place, no copy); `None` otherwise.
pub(crate) fn values_in_place<T: Real, const D: usize>(t: &Tensor<D>) -> Option<Values<T>> {
    let p = t.clone().try_into_primitive::<NdArray>().ok()?;
    T::in_place(&p).is_some().then_some(Values::Stored(p))
}

/// A tensor of `shape` on `device` holding `v`.
pub(crate) fn tensor<T: Real, const D: usize>(
    v: Vec<T>,
    shape: [usize; D],
    device: &Device,
) -> Tensor<D> {
    let dtype = T::dtype();
    Tensor::from_data(TensorData::new(v, shape), (device, dtype))
}

/// Runs `$body` with `$T` the Rust float type of the host dtype `$dt` (f32 or f64).
macro_rules! with_real {
    ($dt:expr, $T:ident => $body:expr) => {
        match $dt {
            burn::tensor::DType::F64 => {
                type $T = f64;
                $body
            }
            _ => {
                type $T = f32;
                $body
            }
        }
    };
}
pub(crate) use with_real;

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn random(len: usize, seed: u64) -> Vec<f64> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        (0..len).map(|_| rng.random_range(-1.0..1.0)).collect()
    }

    const G: Geometry = Geometry {
        c_in: 2,
        c_out: 3,
        input: [5, 6],
        kernel: [3, 2],
    };

    /// z[co, y, x] = Σ_{ci,i,j} W[co, ci, i, j] x[ci, y+i, x+j], straight from the definition.
    fn direct(x: &[f64], w: &[f64]) -> Vec<f64> {
        let ([kh, kw], [ho, wo], [h, wd]) = (G.kernel, G.out_hw(), G.input);
        let mut z = vec![0.0; G.out()];
        for co in 0..G.c_out {
            for y in 0..ho {
                for xx in 0..wo {
                    let mut s = 0.0;
                    for ci in 0..G.c_in {
                        for i in 0..kh {
                            for j in 0..kw {
                                s += w[((co * G.c_in + ci) * kh + i) * kw + j]
                                    * x[(ci * h + y + i) * wd + xx + j];
                            }
                        }
                    }
                    z[(co * ho + y) * wo + xx] = s;
                }
            }
        }
        z
    }

    fn dot(a: &[f64], b: &[f64]) -> f64 {
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    }

    fn close(a: &[f64], b: &[f64]) {
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(b) {
            assert!((x - y).abs() < 1e-12, "{x} vs {y}");
        }
    }

    #[test]
    fn forward_matches_the_definition_for_shared_and_per_direction_operands() {
        let (k, n) = (3, 4);
        let xs = random(k * n * G.image(), 1);
        let ws = random(k * G.c_out * G.patch(), 2);
        let bs = random(k * G.c_out, 3);
        let w0 = &ws[..G.c_out * G.patch()];
        // Per-direction inputs, one shared filter bank.
        let z = forward(&G, k, n, &xs, w0, None);
        for r in 0..k * n {
            close(
                &z[r * G.out()..(r + 1) * G.out()],
                &direct(&xs[r * G.image()..][..G.image()], w0),
            );
        }
        // One shared input, per-direction filters and biases.
        let z = forward(&G, k, n, &xs[..n * G.image()], &ws, Some(&bs));
        for kk in 0..k {
            for s in 0..n {
                let w = &ws[kk * G.c_out * G.patch()..][..G.c_out * G.patch()];
                let mut want = direct(&xs[s * G.image()..][..G.image()], w);
                for (co, row) in want.chunks_mut(G.positions()).enumerate() {
                    row.iter_mut().for_each(|v| *v += bs[kk * G.c_out + co]);
                }
                close(&z[(kk * n + s) * G.out()..][..G.out()], &want);
            }
        }
    }

    #[test]
    fn gradients_and_transpose_are_the_adjoints_of_forward() {
        // ⟨d, W ⊛ x⟩ = ⟨weight_grads(x, d), W⟩ = ⟨transpose(W, d), x⟩ for every direction.
        let (k, n) = (2, 3);
        let xs = random(k * n * G.image(), 4);
        let ds = random(k * n * G.out(), 5);
        let ws = random(k * G.c_out * G.patch(), 6);
        let p = G.c_out * G.patch();
        let gw = weight_grads(&G, k, n, &xs, &ds, true);
        let gw_shared_x = weight_grads(&G, k, n, &xs[..n * G.image()], &ds, true);
        let t = transpose(&G, k, n, &ws, &ds);
        let ps = per_sample_grads(&G, n, &xs[..n * G.image()], &ds[..n * G.out()]);
        for kk in 0..k {
            let w = &ws[kk * p..(kk + 1) * p];
            let (mut lhs, mut lhs_shared, mut adj_x, mut bias) = (0.0, 0.0, 0.0, 0.0);
            for s in 0..n {
                let (x, d) = (
                    &xs[(kk * n + s) * G.image()..][..G.image()],
                    &ds[(kk * n + s) * G.out()..][..G.out()],
                );
                lhs += dot(d, &direct(x, w));
                lhs_shared += dot(d, &direct(&xs[s * G.image()..][..G.image()], w));
                adj_x += dot(&t[(kk * n + s) * G.image()..][..G.image()], x);
                bias += d.iter().sum::<f64>();
            }
            let row = &gw[kk * (p + G.c_out)..(kk + 1) * (p + G.c_out)];
            assert!((dot(&row[..p], w) - lhs).abs() < 1e-12);
            assert!((row[p..].iter().sum::<f64>() - bias).abs() < 1e-12);
            let shared = &gw_shared_x[kk * (p + G.c_out)..(kk + 1) * (p + G.c_out)];
            assert!((dot(&shared[..p], w) - lhs_shared).abs() < 1e-12);
            assert!((shared[p..].iter().sum::<f64>() - bias).abs() < 1e-12);
            assert!((adj_x - lhs).abs() < 1e-12);
        }
        // The per-sample gradients add up to the (k = 1) gradient.
        let g1 = weight_grads(&G, 1, n, &xs[..n * G.image()], &ds[..n * G.out()], true);
        let sum: Vec<f64> = (0..p + G.c_out)
            .map(|j| (0..n).map(|s| ps[s * (p + G.c_out) + j]).sum())
            .collect();
        close(&sum, &g1);
    }

    /// Weight gradients, stacked or not, and per-sample gradients in `T` with the patches read
    /// both ways, as bits.
    fn both_layouts<T: Real>(g: &Geometry, k: usize, n: usize, seed: u64) -> [[Vec<u64>; 2]; 4] {
        let cast = |v: Vec<f64>| v.into_iter().map(T::from_elem).collect::<Vec<T>>();
        let bits =
            |v: Vec<T>| -> Vec<u64> { v.into_iter().map(|x| x.to_f64().to_bits()).collect() };
        let xs: Vec<T> = cast(random(k * n * g.image(), seed));
        let ds: Vec<T> = cast(random(k * n * g.out(), seed + 1));
        let x1 = &xs[..n * g.image()];
        let d1 = &ds[..n * g.out()];
        let runs = [Patches::ByRow, Patches::ByPosition].map(|p| {
            [
                bits(weight_grads_reading(g, k, n, &xs, &ds, true, Some(p))),
                bits(weight_grads_reading(g, k, n, x1, &ds, true, Some(p))),
                bits(weight_grads_reading(g, 1, n, x1, d1, false, Some(p))),
                bits(per_sample_grads_reading(g, n, x1, d1, Some(p))),
            ]
        });
        let [a, b] = runs;
        [0, 1, 2, 3].map(|i| [a[i].clone(), b[i].clone()])
    }

    #[test]
    fn patches_read_by_position_give_the_same_bits_wherever_they_are_chosen() {
        // convyu's two convolutions, a 3 × 3 one, and sizes around the gemm crate's 16 × 16
        // kernel; k = 7 stacks 56 to 119 rows, up to and past the gemm crate's limit into
        // matrixmultiply.
        let shapes = [
            (1, 10, [28, 28], [5, 5]),
            (10, 10, [12, 12], [5, 5]),
            (3, 8, [9, 7], [3, 3]),
            (2, 13, [6, 6], [3, 3]),
            (4, 17, [6, 5], [2, 2]),
            // A kernel taller than wide; 56 stacked rows of 8 patch entries (the one case
            // where the crate packs the patches only for the width of its column block).
            (2, 9, [7, 6], [3, 2]),
            (2, 8, [6, 6], [2, 2]),
        ];
        for (c_in, c_out, input, kernel) in shapes {
            let g = Geometry {
                c_in,
                c_out,
                input,
                kernel,
            };
            for k in [2, 7] {
                // Per-direction inputs; a shared input (stacked); k = 1; per sample.
                let want_same =
                    [c_out, k * c_out, c_out, c_out].map(|rows| g.patches_by_position(rows));
                for (runs, same) in [
                    both_layouts::<f32>(&g, k, 3, 11),
                    both_layouts::<f64>(&g, k, 3, 12),
                ]
                .into_iter()
                .flat_map(|r| r.into_iter().zip(want_same))
                {
                    // Where the choice is by position, the bits must not move; elsewhere the
                    // values still agree.
                    if same {
                        assert_eq!(runs[0], runs[1], "{g:?}, k = {k}");
                    } else {
                        for (a, b) in runs[0].iter().zip(&runs[1]) {
                            let (a, b) = (f64::from_bits(*a), f64::from_bits(*b));
                            assert!((a - b).abs() <= 1e-4 * (1.0 + a.abs()), "{g:?}: {a} vs {b}");
                        }
                    }
                }
            }
        }
        // convyu's second convolution is read by position, its first (16 × 16 outputs or
        // fewer: the crate's own small kernel) is not.
        let conv2 = Geometry {
            c_in: 10,
            c_out: 10,
            input: [12, 12],
            kernel: [5, 5],
        };
        assert!(conv2.patches_by_position(10));
        let conv1 = Geometry {
            c_in: 1,
            input: [28, 28],
            ..conv2
        };
        assert!(!conv1.patches_by_position(10));
    }

    #[test]
    fn pooling_picks_window_maxima_and_scatters_back_to_them() {
        let (planes, hw) = (3, [4, 6]);
        let mut a = random(planes * 24, 7);
        (a[0], a[1]) = (2.0, 2.0); // a tie for the window's maximum: the first entry wins
        let arg = pool_argmax(planes, hw, &a);
        assert_eq!(arg.len(), planes * 6);
        for p in 0..planes {
            for y in 0..2 {
                for x in 0..3 {
                    let window = [0, 1, 6, 7].map(|o| p * 24 + 2 * y * 6 + 2 * x + o);
                    let best = window.iter().map(|&i| a[i]).fold(f64::MIN, f64::max);
                    assert_eq!(a[p * 24 + arg[p * 6 + y * 3 + x] as usize], best);
                }
            }
        }
        assert_eq!(arg[0], 0);
        // Two blocks of planes share the argmax; scatter is gather's adjoint.
        let src = random(2 * planes * 24, 8);
        let t = random(2 * planes * 6, 9);
        let z = pool_gather(&arg, 6, 24, &src);
        let back = pool_scatter(&arg, 6, 24, &t);
        assert!((dot(&z, &t) - dot(&src, &back)).abs() < 1e-12);
        let mut nan = a.clone();
        nan[7] = f64::NAN;
        assert!(pool_gather(&pool_argmax(planes, hw, &nan), 6, 24, &nan)[0].is_nan());
    }
}
