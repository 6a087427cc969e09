//! Orthonormal rows of length D kept in host memory, for Krylov bases on backends that compute
//! in host memory (ndarray). The rows are stored in the run's element type (f32 rows halve the
//! memory traffic, and hold each vector exactly as the device saw it) and every sum is taken
//! in f64. The sweeps over D are split across the machine's cores.

use burn::prelude::*;
use burn::tensor::DType;

use crate::linalg::to_device;

/// An element type the rows may be stored in.
pub trait Element: burn::tensor::Element + Send + Sync + 'static {
    /// The value rounded to this type.
    fn store(x: f64) -> Self;
    /// The value as f64.
    fn load(self) -> f64;
}

impl Element for f32 {
    fn store(x: f64) -> Self {
        x as f32
    }
    fn load(self) -> f64 {
        self as f64
    }
}

impl Element for f64 {
    fn store(x: f64) -> Self {
        x
    }
    fn load(self) -> f64 {
        self
    }
}

/// Rows q_0 … q_{m−1} of length d, row-major.
#[derive(Debug, Clone)]
pub struct HostRows<T> {
    values: Vec<T>,
    d: usize,
}

/// Entries per cache block in the fused sweep (rows × block must stay in L2).
const BLOCK: usize = 2048;
/// Fewest entries worth a thread of their own.
const PER_THREAD: usize = 1 << 16;

impl<T: Element> HostRows<T> {
    /// No rows yet, room for `capacity` of length `d`.
    pub fn new(d: usize, capacity: usize) -> Self {
        HostRows {
            values: Vec::with_capacity(capacity * d),
            d,
        }
    }

    /// Rows held.
    pub fn len(&self) -> usize {
        self.values.len() / self.d.max(1)
    }

    /// Whether no row is held.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Appends q rounded to T.
    pub fn push(&mut self, q: &[f64]) {
        assert_eq!(q.len(), self.d, "HostRows::push: wrong length");
        self.values.extend(q.iter().map(|&x| T::store(x)));
    }

    /// Row r as stored, in f64.
    pub fn row(&self, r: usize) -> Vec<f64> {
        self.values[r * self.d..(r + 1) * self.d]
            .iter()
            .map(|x| x.load())
            .collect()
    }

    /// The newest row as a device tensor [1, D], uploaded from the stored values (no f64
    /// copy on the way).
    ///
    /// # Shapes
    /// Returns [1, D] in `dtype` on `device`.
    pub fn last_to_device(&self, device: &Device, dtype: DType) -> Tensor<2> {
        let last = self.values[self.values.len() - self.d..].to_vec();
        Tensor::from_data(TensorData::new(last, [1, self.d]), (device, dtype))
    }

    /// Classical Gram–Schmidt twice against every row: w ← (I − QᵀQ)² w. Returns the first
    /// pass's coefficients c = Q w (for the newest row, c is its Rayleigh coefficient) and
    /// ‖w‖² afterwards. Three sweeps over D: the dots, the first subtraction fused with the
    /// second pass's dots, the second subtraction with the norm; each sweep goes block by
    /// block, so that every row is read once and the block of w stays in cache.
    pub fn orthogonalize_twice(&self, w: &mut [f64]) -> (Vec<f64>, f64) {
        let r = self.len();
        let c1 = self.sweep(w, r, |rows, wb, lo, c| {
            for (row, ci) in rows.iter().zip(c.iter_mut()) {
                *ci += dot(&row[lo..lo + wb.len()], wb);
            }
        });
        let c2 = self.sweep(w, r, |rows, wb, lo, c| {
            let hi = lo + wb.len();
            for (row, ci) in rows.iter().zip(&c1) {
                axpy(-ci, &row[lo..hi], wb);
            }
            for (row, ci) in rows.iter().zip(c.iter_mut()) {
                *ci += dot(&row[lo..hi], wb);
            }
        });
        let norm_sq = self.sweep(w, 1, |rows, wb, lo, c| {
            let hi = lo + wb.len();
            for (row, ci) in rows.iter().zip(&c2) {
                axpy(-ci, &row[lo..hi], wb);
            }
            c[0] += dot::<f64>(wb, wb);
        })[0];
        (c1, norm_sq)
    }

    /// S Q for S [k, m] (row-major, m = rows held) as a device tensor [k, D].
    ///
    /// # Shapes
    /// `s`: k·m values, [k, m] row-major (m = rows held); returns [k, D] in `dtype` on `device`.
    pub fn combine(&self, s: &[f64], k: usize, device: &Device, dtype: DType) -> Tensor<2> {
        let (m, d) = (self.len(), self.d);
        assert_eq!(s.len(), k * m, "HostRows::combine: S is not [k, m]");
        let rows: Vec<&[T]> = self.values.chunks_exact(d).collect();
        let len = part_length(d);
        // Each thread fills its columns of the k outputs block by block (every row read once).
        let parts = on_threads((0..d).step_by(len), |start| {
            let end = (start + len).min(d);
            let mut out = vec![0.0; k * (end - start)];
            for lo in (start..end).step_by(BLOCK) {
                let hi = (lo + BLOCK).min(end);
                for (r, row) in rows.iter().enumerate() {
                    for (i, y) in out.chunks_exact_mut(end - start).enumerate() {
                        axpy(s[i * m + r], &row[lo..hi], &mut y[lo - start..hi - start]);
                    }
                }
            }
            out
        });
        let mut y = vec![0.0; k * d];
        for (p, out) in parts.iter().enumerate() {
            let start = p * len;
            let width = out.len() / k.max(1);
            for (i, part) in out.chunks_exact(width.max(1)).enumerate() {
                y[i * d + start..i * d + start + width].copy_from_slice(part);
            }
        }
        to_device(y, k, d, device, dtype)
    }

    /// Q as a device tensor [m, D].
    ///
    /// # Shapes
    /// Returns [m, D] (m = rows held) in `dtype` on `device`.
    pub fn to_tensor(&self, device: &Device, dtype: DType) -> Tensor<2> {
        let values = self.values.iter().map(|x| x.load()).collect();
        to_device(values, self.len(), self.d, device, dtype)
    }

    /// One sweep over D in cache blocks, the parts of D on separate threads:
    /// `f(rows, w_block, first_index, acc)` may update its block of w and adds into `acc`
    /// ([acc_len]); the threads' accumulators are summed.
    fn sweep(
        &self,
        w: &mut [f64],
        acc_len: usize,
        f: impl Fn(&[&[T]], &mut [f64], usize, &mut [f64]) + Sync,
    ) -> Vec<f64> {
        let rows: Vec<&[T]> = self.values.chunks_exact(self.d).collect();
        let len = part_length(self.d);
        let run = |part: &mut [f64], start: usize| {
            let mut acc = vec![0.0; acc_len];
            for (b, block) in part.chunks_mut(BLOCK).enumerate() {
                f(&rows, block, start + b * BLOCK, &mut acc);
            }
            acc
        };
        let parts = on_threads(w.chunks_mut(len).enumerate(), |(p, part)| {
            run(part, p * len)
        });
        add_up(parts)
    }
}

/// The length of each thread's part of 0..d.
fn part_length(d: usize) -> usize {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(8));
    let threads = threads.min(d.div_ceil(PER_THREAD)).max(1);
    d.div_ceil(threads).max(1)
}

/// `f` on each item, each on a scoped thread of its own; the results in order.
fn on_threads<I: Send, R: Send>(
    items: impl Iterator<Item = I>,
    f: impl Fn(I) -> R + Sync,
) -> Vec<R> {
    std::thread::scope(|scope| {
        let handles: Vec<_> = items
            .map(|item| {
                let f = &f;
                scope.spawn(move || f(item))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a host sweep panicked"))
            .collect()
    })
}

fn add_up(parts: Vec<Vec<f64>>) -> Vec<f64> {
    let mut total = vec![0.0; parts.first().map_or(0, Vec::len)];
    for p in parts {
        total.iter_mut().zip(p).for_each(|(t, x)| *t += x);
    }
    total
}

/// Σ a_i b_i in f64.
///
/// With a CBLAS engine loaded, in eight partial sums, which the compiler vectorizes: one
/// running sum waits on every addition's latency, and the dot products of the Gram–Schmidt
/// sweeps took most of W4's Lanczos that way (docs/performance.md, attempt 10). With the
/// built-in engine (`--blas none`) in one running sum, the order of earlier versions, so that
/// a run continued with it keeps its bits.
fn dot<T: Element>(a: &[T], b: &[f64]) -> f64 {
    if noisescope_models::builtin_matmul_engine() {
        a.iter().zip(b).map(|(x, y)| x.load() * y).sum()
    } else {
        dot_in_lanes(a, b)
    }
}

/// Σ a_i b_i in eight interleaved partial sums, added pairwise, then the tail.
fn dot_in_lanes<T: Element>(a: &[T], b: &[f64]) -> f64 {
    const LANES: usize = 8;
    let n = a.len().min(b.len());
    let body = n - n % LANES;
    let mut acc = [0.0f64; LANES];
    for (x, y) in a[..body]
        .chunks_exact(LANES)
        .zip(b[..body].chunks_exact(LANES))
    {
        for i in 0..LANES {
            acc[i] += x[i].load() * y[i];
        }
    }
    let mut sum = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (x, y) in a[body..n].iter().zip(&b[body..n]) {
        sum += x.load() * y;
    }
    sum
}

fn axpy<T: Element>(alpha: f64, x: &[T], y: &mut [f64]) {
    y.iter_mut()
        .zip(x)
        .for_each(|(y, x)| *y += alpha * x.load());
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Orthogonalizing against orthonormal rows leaves a vector orthogonal to all of them,
    /// across thread and block boundaries; the coefficients are the plain dot products.
    #[test]
    fn gram_schmidt_and_combination_match_plain_loops() {
        let d = 3 * PER_THREAD + 4099;
        let mut rows = HostRows::<f64>::new(d, 3);
        let mut basis = Vec::new();
        for r in 0..3 {
            let mut q: Vec<f64> = (0..d)
                .map(|i| ((i * (r + 3) + 7 * r) % 101) as f64 - 50.0)
                .collect();
            if !rows.is_empty() {
                rows.orthogonalize_twice(&mut q);
            }
            let norm = q.iter().map(|x| x * x).sum::<f64>().sqrt();
            q.iter_mut().for_each(|x| *x /= norm);
            rows.push(&q);
            basis.push(rows.row(r));
        }
        assert_eq!(rows.len(), 3);
        let w0: Vec<f64> = (0..d).map(|i| ((i * 13) % 17) as f64 - 8.0).collect();
        let mut w = w0.clone();
        let (c, norm_sq) = rows.orthogonalize_twice(&mut w);
        for (q, ci) in basis.iter().zip(&c) {
            let want: f64 = q.iter().zip(&w0).map(|(a, b)| a * b).sum();
            assert!(
                (ci - want).abs() < 1e-9 * want.abs().max(1.0),
                "{ci} vs {want}"
            );
            let left: f64 = q.iter().zip(&w).map(|(a, b)| a * b).sum();
            assert!(left.abs() < 1e-9, "left {left} along a row");
        }
        let direct: f64 = w.iter().map(|x| x * x).sum();
        assert!((norm_sq - direct).abs() < 1e-9 * direct);
        let s = [0.5, -1.0, 2.0, 1.0, 0.0, -0.25];
        let device = crate::testing::cpu();
        let y = crate::linalg::to_host(rows.combine(&s, 2, &device, DType::F64));
        for i in 0..2 {
            for j in [0, PER_THREAD - 1, PER_THREAD, d - 1] {
                let want: f64 = (0..3).map(|r| s[i * 3 + r] * basis[r][j]).sum();
                assert!((y[i * d + j] - want).abs() < 1e-12);
            }
        }
    }

    /// The dot product in lanes is the plain one up to rounding, for every tail length.
    #[test]
    fn dot_in_lanes_agrees_with_the_running_sum() {
        for n in [0, 1, 7, 8, 9, 63, 1000] {
            let a: Vec<f32> = (0..n)
                .map(|j| ((j * 37 % 101) as f32 - 50.0) / 7.0)
                .collect();
            let b: Vec<f64> = (0..n)
                .map(|j| ((j * 53 % 97) as f64 - 48.0) / 3.0)
                .collect();
            let plain: f64 = a.iter().zip(&b).map(|(x, y)| *x as f64 * y).sum();
            let scale: f64 = a.iter().zip(&b).map(|(x, y)| (*x as f64 * y).abs()).sum();
            let lanes = dot_in_lanes(&a, &b);
            assert!(
                (lanes - plain).abs() <= 1e-14 * scale.max(1.0),
                "n = {n}: {lanes} against {plain}"
            );
        }
    }
}
