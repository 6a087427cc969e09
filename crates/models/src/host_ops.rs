//! Host-memory versions of burn ops whose ndarray implementations copy element by element:
//! products with a transposed operand (also plus a bias row, and by blocks of directions),
//! and concatenation.
//!
//! burn-ndarray's matmul reshapes each operand to `[batch, rows, cols]`, which for a
//! transposed view (`w.transpose()`, `δ.transpose()`) walks it through `to_vec_mapped` before
//! `matrixmultiply` runs; `matrixmultiply` itself reads any strides. Its `cat` goes through
//! `ndarray::concatenate`, an element-wise `Zip`. In a tanh 784–2048–10 SGD step on 128
//! samples (one core, perf, 2026-12-06) the transposed copies took 9% and the two
//! concatenations of the gradient 13%, against 34% for the products themselves.
//!
//! Here, on host memory (f32 or f64, outside burn's autodiff), a product goes to the system
//! CBLAS when one is loaded ([`crate::blas`]), which takes transposed operands as flags, and
//! else to `matrixmultiply` with the operands' strides, which gives burn's bits (the same
//! kernel over the same packed panels). A concatenation is one `memcpy` per part and block,
//! burn's values moved. Elsewhere (wgpu, autodiff) both are burn's ops.

use burn::prelude::*;

use crate::host_conv::{Mat, Real, Values, tensor, values, with_real};
use crate::kernels::Engine;

/// op(A) op(B), where op transposes the operand when its flag is set: `a.matmul(b)` with `a`
/// read as Aᵀ when `ta` and `b` as Bᵀ when `tb`.
///
/// # Shapes
/// op(A) [m, k], op(B) [k, n] → [m, n].
pub fn matmul(a: Tensor<2>, ta: bool, b: Tensor<2>, tb: bool) -> Tensor<2> {
    match Engine::of(&a).and(&b).host() {
        Some(dt) => with_real!(dt, T => host_matmul::<T>(a, ta, b, tb)),
        None => {
            let a = if ta { a.transpose() } else { a };
            let b = if tb { b.transpose() } else { b };
            a.matmul(b)
        }
    }
}

/// op(A_j) op(B_j) for every batch j, where an operand with one batch is shared by all.
///
/// # Shapes
/// A [ka, ·, ·], B [kb, ·, ·] with ka = kb, or either 1; op(A_j) [m, k], op(B_j) [k, n] →
/// [max(ka, kb), m, n].
pub fn batched_matmul(a: Tensor<3>, ta: bool, b: Tensor<3>, tb: bool) -> Tensor<3> {
    match Engine::of(&a).and(&b).host() {
        Some(dt) => with_real!(dt, T => host_batched_matmul::<T>(a, ta, b, tb)),
        None => {
            let a = if ta { a.swap_dims(1, 2) } else { a };
            let b = if tb { b.swap_dims(1, 2) } else { b };
            a.matmul(b)
        }
    }
}

/// op(A) op(B) + 1 cᵀ: a product plus a row vector added to every row (a dense layer's
/// a Wᵀ + b).
///
/// On host memory the bias is added in place into the product's own buffer (one pass fewer,
/// one buffer fewer), each entry rounded once, as burn's broadcast sum rounds it: the same
/// bits. Elsewhere burn's ops.
///
/// # Shapes
/// op(A) [m, k], op(B) [k, n], `c` [n] → [m, n].
pub fn matmul_plus_row(a: Tensor<2>, ta: bool, b: Tensor<2>, tb: bool, c: Tensor<1>) -> Tensor<2> {
    match Engine::of(&a).and(&b).and(&c).host() {
        Some(dt) => with_real!(dt, T => host_matmul_plus_row::<T>(a, ta, b, tb, c)),
        None => matmul(a, ta, b, tb) + c.unsqueeze_dim::<2>(0),
    }
}

fn host_matmul_plus_row<T: Real>(
    a: Tensor<2>,
    ta: bool,
    b: Tensor<2>,
    tb: bool,
    c: Tensor<1>,
) -> Tensor<2> {
    let device = a.device();
    let (mut out, [m, n]) = host_product::<T>(a, ta, b, tb);
    let cv = values::<T, 1>(c);
    for row in out.chunks_exact_mut(n.max(1)) {
        for (y, &x) in row.iter_mut().zip(cv.iter()) {
            *y += x;
        }
    }
    tensor(out, [m, n], &device)
}

/// `t.narrow(dim, start, len)`. On host memory a view that shares `t`'s buffer: burn-ndarray's
/// slice copies its result, and slicing θ into layers and layers into weight and bias copied
/// θ twice per pass (the W1 matrix of the 784–2048–10 model is 6.4 MB). The values are the
/// same either way.
///
/// # Shapes
/// `t` [.., d_dim, ..] → [.., len, ..].
#[allow(deprecated)] // burn marks its ndarray backend deprecated; it is our CPU engine.
pub fn narrow<const D: usize>(t: Tensor<D>, dim: usize, start: usize, len: usize) -> Tensor<D> {
    use burn::backend::NdArray;
    use burn::backend::ndarray::NdArrayTensor;
    use ndarray::{Axis, Slice};
    if Engine::of(&t).host().is_some()
        && start + len <= t.dims()[dim]
        && let Ok(p) = t.clone().try_into_primitive::<NdArray>()
    {
        fn view<E>(
            mut a: ndarray::ArcArray<E, ndarray::IxDyn>,
            dim: usize,
            range: std::ops::Range<usize>,
        ) -> ndarray::ArcArray<E, ndarray::IxDyn> {
            a.slice_axis_inplace(Axis(dim), Slice::from(range));
            a
        }
        let range = start..start + len;
        let sliced = match p {
            NdArrayTensor::F32(s) => Some(NdArrayTensor::from(view(s.into_shared(), dim, range))),
            NdArrayTensor::F64(s) => Some(NdArrayTensor::from(view(s.into_shared(), dim, range))),
            _ => None,
        };
        if let Some(sliced) = sliced {
            return Tensor::from_primitive::<NdArray>(sliced);
        }
    }
    t.narrow(dim, start, len)
}

/// `t.sum_dim(dim)`, [.., 1, ..], with burn-ndarray's values bit for bit but without its slow
/// path.
///
/// ndarray sums over an axis other than the array's smallest-stride one by adding one
/// sub-view at a time into a freshly allocated array. A single row's column chunk ([1, 65536],
/// as the chunked reductions take it) went that way: 8.5 ms instead of 0.2, and half of an
/// online alignment probe's time went to the norms of a warm start (perf, 2026-12-06). There
/// each sum is formed here in the same order (0 + x_0 + x_1 + … in the tensor's float), so
/// the values do not change; on ndarray's fast path, and on other devices, burn sums.
///
/// # Shapes
/// `t` [.., n, ..] → [.., 1, ..] (`n` at `dim`).
#[allow(deprecated)] // burn marks its ndarray backend deprecated; it is our CPU engine.
pub fn sum_dim<const D: usize>(t: Tensor<D>, dim: usize) -> Tensor<D> {
    use burn::backend::NdArray;
    use burn::backend::ndarray::NdArrayTensor;
    use ndarray::{Axis, Dimension, IxDyn};
    /// The per-lane sums in ndarray's slow-path order, `None` where ndarray takes its fast
    /// path (the axis has the smallest stride) and its own sums are kept.
    fn slow_path_sums<E: Copy + std::ops::Add<Output = E>>(
        a: &ndarray::ArcArray<E, IxDyn>,
        dim: usize,
        zero: E,
    ) -> Option<Vec<E>> {
        let strides = IxDyn(&a.strides().iter().map(|&s| s as usize).collect::<Vec<_>>());
        if a.raw_dim().min_stride_axis(&strides) == Axis(dim) {
            return None;
        }
        Some(
            a.lanes(Axis(dim))
                .into_iter()
                .map(|lane| lane.iter().fold(zero, |acc, &x| acc + x))
                .collect(),
        )
    }
    let mut shape = t.dims();
    if dim < D && Engine::of(&t).host().is_some() {
        shape[dim] = 1;
        let device = t.device();
        match t.clone().try_into_primitive::<NdArray>() {
            Ok(NdArrayTensor::F32(a)) => {
                if let Some(v) = slow_path_sums(&a.into_shared(), dim, 0f32) {
                    return crate::host_conv::tensor(v, shape, &device);
                }
            }
            Ok(NdArrayTensor::F64(a)) => {
                if let Some(v) = slow_path_sums(&a.into_shared(), dim, 0f64) {
                    return crate::host_conv::tensor(v, shape, &device);
                }
            }
            _ => {}
        }
    }
    t.sum_dim(dim)
}

/// `t.reshape(shape)`; on the host a view that reshape would copy (burn-ndarray walks it
/// element by element) is copied row by row instead ([`crate::host_conv::values`]), with the
/// same values.
///
/// # Shapes
/// Any shape of the same number of elements.
pub fn reshape<const D: usize, const D2: usize>(t: Tensor<D>, shape: [usize; D2]) -> Tensor<D2> {
    // A view read in place reshapes for free in burn; only one that would be copied is ours.
    let copied = Engine::of(&t).host().and_then(|dt| {
        with_real!(dt, T => {
            if crate::host_conv::values_in_place::<T, D>(&t).is_some() {
                return None;
            }
            crate::host_conv::rows_copied::<T, D>(&t).map(|v| tensor(v.into_vec(), shape, &t.device()))
        })
    });
    copied.unwrap_or_else(|| t.reshape(shape))
}

/// Blocks of at least this many entries are read in place from their rows by
/// [`batched_matmul_rows`]; smaller ones are copied into [k, r, c] first (cheap, and their
/// products keep the bits they always had).
pub const ROWS_IN_PLACE: usize = 1 << 18;

/// op(A_j) op(B_j) for the blocks B_j [r, c] held one per row of `rows` [k, r·c]: the batched
/// product of [`batched_matmul`] with `rows` reshaped to [k, r, c].
///
/// On the host a large block (a dense layer's slice V_W of k directions, a strided view of
/// V) is read in place row by row, where the reshape would copy every direction first (the
/// copy was about a fifth of a block of 20 HVPs on the 784–2048–10 net). The products are the
/// same per block.
///
/// # Shapes
/// `a` [1 or k, ·, ·], `rows` [k, r·c], `block` [r, c] → [k, m, n].
pub fn batched_matmul_rows(
    a: Tensor<3>,
    ta: bool,
    rows: Tensor<2>,
    block: [usize; 2],
    tb: bool,
) -> Tensor<3> {
    let [k, len] = rows.dims();
    assert_eq!(
        len,
        block[0] * block[1],
        "rows of {len} are not blocks {block:?}"
    );
    if len >= ROWS_IN_PLACE
        && a.dims()[0] == 1
        && let Some(dt) = Engine::of(&a).and(&rows).host()
        && let Some(c) = with_real!(dt, T => host_batched_rows::<T>(&a, ta, &rows, block, tb))
    {
        return c;
    }
    batched_matmul(a, ta, reshape(rows, [k, block[0], block[1]]), tb)
}

/// [`batched_matmul_rows`] on the host for a shared `a`, if `rows` can be read in place.
#[allow(deprecated)] // burn marks its ndarray backend deprecated; it is our CPU engine.
fn host_batched_rows<T: Real>(
    a: &Tensor<3>,
    ta: bool,
    rows: &Tensor<2>,
    block: [usize; 2],
    tb: bool,
) -> Option<Tensor<3>> {
    let device = a.device();
    let [_, ra, ca] = a.dims();
    let [m, _, n] = product_shape([ra, ca], ta, block, tb);
    let k = rows.dims()[0];
    let p = rows
        .clone()
        .try_into_primitive::<burn::backend::NdArray>()
        .ok()?;
    let av = values::<T, 3>(a.clone());
    let c = T::with_rows(&p, |bs| {
        let mut c = vec![T::ZERO; k * m * n];
        for (cj, bj) in c.chunks_mut(m * n).zip(bs) {
            product(
                Mat::stored(&av, [ra, ca], ta),
                Mat::stored(bj, block, tb),
                cj,
            );
        }
        c
    })?;
    Some(tensor(c, [k, m, n], &device))
}

/// A B_jᵀ for every block B_j of `b`, laid out by block: `matmul(a, B_j, transposed)` for
/// j = 1 … k.
///
/// On host memory this is one product A [B_1; …; B_k]ᵀ, [n, k·o], read by block through a
/// strided view (one large product beats k thin ones). Elsewhere it is a batched product
/// that writes [k, n, o] directly: burn's kernel fusion (the `gpu-fusion` build) computed the
/// view wrongly when o = 1, the R-forward of a linear model (on lavapipe, 2026-12-06).
///
/// # Shapes
/// `a`: [n, i]; `b`: [k, o, i] → [k, n, o].
pub fn matmul_each(a: Tensor<2>, b: Tensor<3>) -> Tensor<3> {
    let ([n, _], [k, o, i]) = (a.dims(), b.dims());
    match Engine::of(&a).and(&b).host() {
        Some(_) => matmul(a, false, b.reshape([k * o, i]), true)
            .reshape([n, k, o])
            .swap_dims(0, 1),
        None => batched_matmul(a.unsqueeze_dim::<3>(0), false, b, true),
    }
}

fn host_matmul<T: Real>(a: Tensor<2>, ta: bool, b: Tensor<2>, tb: bool) -> Tensor<2> {
    let device = a.device();
    let (c, shape) = host_product::<T>(a, ta, b, tb);
    tensor(c, shape, &device)
}

/// op(A) op(B) as row-major values and their shape [m, n].
fn host_product<T: Real>(a: Tensor<2>, ta: bool, b: Tensor<2>, tb: bool) -> (Vec<T>, [usize; 2]) {
    let (da, db) = (a.dims(), b.dims());
    let [m, _, n] = product_shape(da, ta, db, tb);
    let (av, bv) = (values::<T, 2>(a), values::<T, 2>(b));
    let mut c = vec![T::ZERO; m * n];
    product(Mat::stored(&av, da, ta), Mat::stored(&bv, db, tb), &mut c);
    (c, [m, n])
}

fn host_batched_matmul<T: Real>(a: Tensor<3>, ta: bool, b: Tensor<3>, tb: bool) -> Tensor<3> {
    let device = a.device();
    let ([ka, ra, ca], [kb, rb, cb]) = (a.dims(), b.dims());
    assert!(
        ka == kb || ka == 1 || kb == 1,
        "batches differ: {ka} against {kb}"
    );
    let [m, _, n] = product_shape([ra, ca], ta, [rb, cb], tb);
    let batches = ka.max(kb);
    let (av, bv) = (values::<T, 3>(a), values::<T, 3>(b));
    let mut c = vec![T::ZERO; batches * m * n];
    let (la, lb) = (ra * ca, rb * cb);
    for (j, cj) in c.chunks_mut(m * n).enumerate() {
        let aj = &av[if ka == 1 { 0 } else { j * la }..][..la];
        let bj = &bv[if kb == 1 { 0 } else { j * lb }..][..lb];
        product(
            Mat::stored(aj, [ra, ca], ta),
            Mat::stored(bj, [rb, cb], tb),
            cj,
        );
    }
    tensor(c, [batches, m, n], &device)
}

/// [m, k, n] of op(A) op(B) for stored shapes `a`, `b`.
fn product_shape(a: [usize; 2], ta: bool, b: [usize; 2], tb: bool) -> [usize; 3] {
    let (m, k) = if ta { (a[1], a[0]) } else { (a[0], a[1]) };
    let (kb, n) = if tb { (b[1], b[0]) } else { (b[0], b[1]) };
    assert_eq!(
        k, kb,
        "inner dimensions differ: [{m}, {k}] times [{kb}, {n}]"
    );
    [m, k, n]
}

/// C ← op(A) op(B), C row-major: in the system CBLAS when one is loaded
/// ([`crate::blas`]), else in `matrixmultiply`.
fn product<T: Real>(a: Mat<T>, b: Mat<T>, c: &mut [T]) {
    if !crate::blas::gemm(
        (a.0, a.stored_shape(), a.3),
        (b.0, b.stored_shape(), b.3),
        c,
    ) {
        packed_product(a, b, c);
    }
}

/// C ← op(A) op(B) in `matrixmultiply`, with burn-ndarray's bits.
fn packed_product<T: Real>(a: Mat<T>, b: Mat<T>, c: &mut [T]) {
    let [m, k, n] = product_shape(a.stored_shape(), a.3, b.stored_shape(), b.3);
    assert!(a.0.len() >= m * k && b.0.len() >= k * n && c.len() >= m * n);
    let (sa, sb) = (a.strides(), b.strides());
    let one = T::from_elem(1.0);
    // SAFETY: the lengths were checked against the shapes that the strides address.
    unsafe {
        T::PACKED(
            m,
            k,
            n,
            one,
            a.0.as_ptr(),
            sa.0,
            sa.1,
            b.0.as_ptr(),
            sb.0,
            sb.1,
            T::ZERO,
            c.as_mut_ptr(),
            n as isize,
            1,
        )
    }
}

/// `Tensor::cat(parts, dim)`.
///
/// # Shapes
/// Parts that agree on every dimension but `dim` → the sum of their `dim` sizes there.
pub fn cat<const D: usize>(parts: Vec<Tensor<D>>, dim: usize) -> Tensor<D> {
    let first = parts.first().expect("cat of no tensors");
    let engine = parts.iter().fold(Engine::of(first), |e, p| e.and(p));
    let host = engine
        .host()
        .filter(|_| parts.iter().all(|p| same_except(p, first, dim)));
    match host {
        Some(dt) => with_real!(dt, T => host_cat::<T, D>(parts, dim)),
        None => Tensor::cat(parts, dim),
    }
}

fn same_except<const D: usize>(a: &Tensor<D>, b: &Tensor<D>, dim: usize) -> bool {
    let (da, db) = (a.dims(), b.dims());
    (0..D).all(|d| d == dim || da[d] == db[d])
}

fn host_cat<T: Real, const D: usize>(parts: Vec<Tensor<D>>, dim: usize) -> Tensor<D> {
    let device = parts[0].device();
    let mut shape = parts[0].dims();
    shape[dim] = parts.iter().map(|p| p.dims()[dim]).sum();
    // Row-major: every index before `dim` picks a block; each part contributes one contiguous
    // chunk (its `dim` size times the trailing sizes) to each block, in order.
    let blocks: usize = shape[..dim].iter().product();
    let inner: usize = shape[dim + 1..].iter().product();
    let chunks: Vec<(usize, Values<T>)> = parts
        .into_iter()
        .map(|p| (p.dims()[dim] * inner, values::<T, D>(p)))
        .collect();
    let mut out = Vec::with_capacity(shape.iter().product());
    for block in 0..blocks {
        for (len, v) in &chunks {
            out.extend_from_slice(&v[block * len..(block + 1) * len]);
        }
    }
    tensor(out, shape, &device)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::cpu;
    use burn::tensor::DType;

    fn filled<const D: usize>(shape: [usize; D], seed: usize, dtype: DType) -> Tensor<D> {
        let len: usize = shape.iter().product();
        // Values with full mantissas, so a different summation order would show in the bits.
        let v: Vec<f64> = (0..len)
            .map(|j| (((j + seed) * 7919 % 1009) as f64 / 1009.0 - 0.5).sin() * 1.37)
            .collect();
        Tensor::<1>::from_data(TensorData::new(v, [len]), (&cpu(), DType::F64))
            .cast(dtype)
            .reshape(shape)
    }

    fn bits<const D: usize>(t: Tensor<D>) -> Vec<u64> {
        let d = t.into_data().convert::<f64>();
        d.as_slice::<f64>()
            .unwrap()
            .iter()
            .map(|x| x.to_bits())
            .collect()
    }

    fn close<const D: usize>(ours: Tensor<D>, theirs: Tensor<D>, dtype: DType, what: &str) {
        let (a, b) = (
            ours.into_data().convert::<f64>(),
            theirs.into_data().convert::<f64>(),
        );
        let (a, b) = (a.as_slice::<f64>().unwrap(), b.as_slice::<f64>().unwrap());
        let scale = b.iter().fold(0.0f64, |m, x| m.max(x.abs()));
        let worst = a
            .iter()
            .zip(b)
            .fold(0.0f64, |m, (x, y)| m.max((x - y).abs()));
        let tol = if dtype == DType::F32 { 1e-5 } else { 1e-13 };
        assert!(worst <= tol * scale, "{what}: {worst:e} of {scale:e}");
    }

    /// Sums over either axis of rows, column chunks of one row and of several, transposed
    /// views and 3-D blocks have burn-ndarray's bits in f32 and f64, on its slow path (which
    /// [`sum_dim`] replaces) and its fast one (which it keeps).
    #[test]
    fn sums_over_an_axis_have_burns_bits_on_every_layout() {
        for dtype in [DType::F32, DType::F64] {
            let one_row = filled([1, 5000], 1, dtype);
            let rows = filled([3, 5000], 2, dtype);
            let cube = filled([4, 3, 70], 3, dtype);
            let cases: Vec<(&str, Tensor<2>)> = vec![
                ("one row", one_row.clone()),
                ("a chunk of one row", one_row.clone().narrow(1, 1000, 3000)),
                ("a chunk of rows", rows.clone().narrow(1, 999, 2001)),
                ("rows", rows.clone()),
                ("transposed rows", rows.clone().transpose()),
                ("one column", rows.clone().narrow(1, 7, 1)),
            ];
            for (what, t) in cases {
                for dim in 0..2 {
                    assert_eq!(
                        bits(sum_dim(t.clone(), dim)),
                        bits(t.clone().sum_dim(dim)),
                        "{what}, dim {dim}, {dtype:?}"
                    );
                }
            }
            for dim in 0..3 {
                let view = cube.clone().narrow(2, 5, 60);
                assert_eq!(
                    bits(sum_dim(view.clone(), dim)),
                    bits(view.sum_dim(dim)),
                    "3-D, dim {dim}"
                );
            }
            assert_eq!(sum_dim(one_row.clone(), 1).dims(), [1, 1]);
        }
    }

    /// Blocks read in place from the rows of a strided view (a slice of V's columns) give the
    /// bits of the copied [k, r, c] operand, read plain and transposed, and a host reshape of
    /// the view has burn's values.
    #[test]
    fn blocks_read_from_rows_have_the_bits_of_the_reshaped_copy() {
        for dtype in [DType::F32, DType::F64] {
            let (k, r, c, n) = (3, 512, 512, 17);
            assert!(r * c >= ROWS_IN_PLACE);
            let v = filled([k, r * c + 40], 3, dtype);
            let rows = narrow(v, 1, 20, r * c);
            let copied = rows.clone().reshape([k, r, c]);
            assert_eq!(bits(reshape(rows.clone(), [k, r, c])), bits(copied.clone()));
            for (ta, tb, a) in [
                (false, true, filled([1, n, c], 4, dtype)),
                (false, false, filled([1, n, r], 5, dtype)),
            ] {
                let ours = batched_matmul_rows(a.clone(), ta, rows.clone(), [r, c], tb);
                let theirs = batched_matmul(a, ta, copied.clone(), tb);
                assert_eq!(ours.dims(), theirs.dims());
                assert_eq!(bits(ours), bits(theirs), "{dtype:?} tb = {tb}");
            }
        }
    }

    #[test]
    fn the_packed_product_has_burns_bits_for_transposed_operands() {
        for dtype in [DType::F32, DType::F64] {
            let (m, k, n) = (37, 300, 129);
            for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
                let (sa, sb) = (
                    if ta { [k, m] } else { [m, k] },
                    if tb { [n, k] } else { [k, n] },
                );
                let (a, b) = (filled(sa, 1, dtype), filled(sb, 2, dtype));
                let theirs = {
                    let a = if ta { a.clone().transpose() } else { a.clone() };
                    let b = if tb { b.clone().transpose() } else { b.clone() };
                    a.matmul(b)
                };
                let ours = with_real!(dtype, T => {
                    let (av, bv) = (values::<T, 2>(a), values::<T, 2>(b));
                    let mut c = vec![T::ZERO; m * n];
                    packed_product(Mat::stored(&av, sa, ta), Mat::stored(&bv, sb, tb), &mut c);
                    tensor(c, [m, n], &cpu())
                });
                assert_eq!(bits(ours), bits(theirs), "{dtype:?} ta={ta} tb={tb}");
            }
        }
    }

    #[test]
    fn products_with_transposed_operands_equal_burns() {
        for dtype in [DType::F32, DType::F64] {
            let (m, k, n) = (37, 300, 129);
            for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
                let a = filled(if ta { [k, m] } else { [m, k] }, 1, dtype);
                let b = filled(if tb { [n, k] } else { [k, n] }, 2, dtype);
                let ours = matmul(a.clone(), ta, b.clone(), tb);
                let a = if ta { a.transpose() } else { a };
                let b = if tb { b.transpose() } else { b };
                assert_eq!(ours.dims(), [m, n]);
                let what = format!("{dtype:?} ta={ta} tb={tb} on {}", crate::matmul_engine());
                close(ours, a.matmul(b), dtype, &what);
            }
        }
    }

    /// The bias added in the product's buffer has the bits of the product plus burn's
    /// broadcast sum.
    #[test]
    fn a_product_plus_a_row_has_the_bits_of_the_product_and_burns_sum() {
        for dtype in [DType::F32, DType::F64] {
            let (a, w) = (filled([37, 300], 1, dtype), filled([129, 300], 2, dtype));
            let c = filled([1, 129], 3, dtype).reshape([129]);
            let ours = matmul_plus_row(a.clone(), false, w.clone(), true, c.clone());
            let theirs = matmul(a, false, w, true) + c.unsqueeze_dim::<2>(0);
            assert_eq!(bits(ours), bits(theirs), "{dtype:?}");
        }
    }

    /// A narrowed host tensor is a view with the values of burn's copy, along any axis, and
    /// products and reshapes read it like any other tensor.
    #[test]
    fn host_narrowing_views_equal_burns_copies() {
        for dtype in [DType::F32, DType::F64] {
            let t = filled([4, 6, 5], 1, dtype);
            for (dim, start, len) in [(0, 1, 2), (1, 2, 3), (2, 0, 5), (2, 4, 1)] {
                let ours = narrow(t.clone(), dim, start, len);
                assert_eq!(bits(ours.clone()), bits(t.clone().narrow(dim, start, len)));
                assert_eq!(
                    bits(ours.reshape([-1])),
                    bits(t.clone().narrow(dim, start, len).reshape([-1]))
                );
            }
            // θ's layer slices feed products: the same bits as from burn's copy.
            let theta = filled([1, 40 * 7 + 7], 2, dtype).reshape([40 * 7 + 7]);
            let w = narrow(theta.clone(), 0, 7, 40 * 7).reshape([7, 40]);
            let a = filled([3, 40], 3, dtype);
            let want = matmul(
                a.clone(),
                false,
                theta.narrow(0, 7, 40 * 7).reshape([7, 40]),
                true,
            );
            assert_eq!(bits(matmul(a, false, w, true)), bits(want));
        }
    }

    /// Both layouts of A B_jᵀ agree: the host's one product read by block, and the batched
    /// product taken elsewhere (here: autodiff-tracked tensors, which the host path declines),
    /// for one output (the case burn's fusion got wrong) and several.
    #[test]
    fn products_by_block_agree_on_and_off_host_memory() {
        for dtype in [DType::F32, DType::F64] {
            for (k, n, o, i) in [(3, 8, 1, 5), (4, 6, 7, 9)] {
                let (a, b) = (filled([n, i], 1, dtype), filled([k, o, i], 2, dtype));
                let host = matmul_each(a.clone(), b.clone());
                let off = matmul_each(a.autodiff(), b.autodiff());
                assert_eq!(host.dims(), [k, n, o]);
                close(host, off.inner(), dtype, &format!("{dtype:?} k={k} o={o}"));
            }
        }
    }

    #[test]
    fn batched_products_with_shared_and_transposed_operands_equal_burns() {
        for dtype in [DType::F32, DType::F64] {
            let (j, m, k, n) = (3, 5, 66, 9);
            for (ka, kb) in [(j, j), (1, j), (j, 1)] {
                for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
                    let a = filled(if ta { [ka, k, m] } else { [ka, m, k] }, 3, dtype);
                    let b = filled(if tb { [kb, n, k] } else { [kb, k, n] }, 4, dtype);
                    let ours = batched_matmul(a.clone(), ta, b.clone(), tb);
                    let a = if ta { a.swap_dims(1, 2) } else { a };
                    let b = if tb { b.swap_dims(1, 2) } else { b };
                    assert_eq!(ours.dims(), [j, m, n]);
                    close(
                        ours,
                        a.matmul(b),
                        dtype,
                        &format!("{dtype:?} {ka} {kb} {ta} {tb}"),
                    );
                }
            }
        }
    }

    #[test]
    fn concatenation_along_any_axis_equals_burns() {
        for dtype in [DType::F32, DType::F64] {
            let parts = |dim: usize| -> Vec<Tensor<3>> {
                (0..3)
                    .map(|p| {
                        let mut s = [2, 3, 4];
                        s[dim] = p + 1;
                        filled(s, p, dtype)
                    })
                    .collect()
            };
            for dim in 0..3 {
                let ours = cat(parts(dim), dim);
                let theirs = Tensor::cat(parts(dim), dim);
                assert_eq!(ours.dims(), theirs.dims());
                assert_eq!(bits(ours), bits(theirs), "{dtype:?} dim {dim}");
            }
        }
    }
}
