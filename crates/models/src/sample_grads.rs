//! The per-sample gradients G = [g_1 … g_N]ᵀ of a whole net, held as per-layer factors so that
//! the products the noise needs never form the N×D matrix.
//!
//! For a dense layer g_n = vec(δ_n ã_nᵀ), so ⟨g_n, v⟩ = δ_nᵀ V ã_n and Σ_n w_n g_n = Δᵀ diag(w) Ã:
//! each is a pair of matmuls on [n, o] and [n, i+1] factors.

use burn::prelude::*;
use burn::tensor::DType;

use crate::host_conv::{Real, Values, split_rows, tensor, values, with_real};
use crate::host_ops::{self, matmul};
use crate::kernels::Engine;
use crate::layer::Factors;

/// G, the per-sample gradients ∇ℓ_n (without the 1/N), [N, D], in factored form.
#[derive(Debug, Clone)]
pub struct SampleGradients {
    factors: Vec<Factors>,
    sizes: Vec<usize>,
    n: usize,
}

impl SampleGradients {
    /// From the factors of every layer with parameters, in θ order.
    pub fn new(factors: Vec<Factors>) -> Self {
        let sizes: Vec<usize> = factors.iter().map(Factors::dim).collect();
        let n = factors.first().map_or(0, Factors::samples);
        SampleGradients { factors, sizes, n }
    }

    /// Samples N.
    pub fn samples(&self) -> usize {
        self.n
    }

    /// Parameters D.
    pub fn dim(&self) -> usize {
        self.sizes.iter().sum()
    }

    /// The device the factors live on.
    pub fn device(&self) -> Device {
        match &self.factors[0] {
            Factors::Outer { inputs, .. } => inputs.device(),
            Factors::Materialized(g) => g.device(),
        }
    }

    /// The element type of the factors.
    pub fn dtype(&self) -> DType {
        match &self.factors[0] {
            Factors::Outer { inputs, .. } => inputs.dtype(),
            Factors::Materialized(g) => g.dtype(),
        }
    }

    /// The per-layer factors.
    pub fn factors(&self) -> &[Factors] {
        &self.factors
    }

    /// G Vᵀ: ⟨g_n, v_j⟩ for k directions V [k, D], as [k, N].
    ///
    /// # Shapes
    /// `v`: [k, D]; returns [k, N].
    pub fn project(&self, v: &Tensor<2>) -> Tensor<2> {
        let mut at = 0;
        let mut total: Option<Tensor<2>> = None;
        for (f, &d) in self.factors.iter().zip(&self.sizes) {
            let part = f.project(&v.clone().narrow(1, at, d));
            at += d;
            total = Some(match total {
                Some(t) => t + part,
                None => part,
            });
        }
        total.expect("a net has parameters")
    }

    /// G Vᵀ as [k, N], like [`project`](Self::project), for rows that form `sets` consecutive
    /// blocks of n = N / sets samples sharing their layer inputs (the o output blocks of
    /// [`Net::ggn_factors`](crate::Net::ggn_factors), or those stacked after the per-sample
    /// gradients of the same data): each dense layer takes the product Ã_l V_lᵀ [n, k·o_l]
    /// once, not once per block, then contracts it with every block's cotangents.
    ///
    /// # Shapes
    /// `v`: [k, D]; returns [k, N], column s·n + i for block s, sample i; `sets` must divide N.
    pub fn project_sets(&self, sets: usize, v: &Tensor<2>) -> Tensor<2> {
        assert!(
            sets > 0 && self.n.is_multiple_of(sets),
            "project_sets: {} rows do not form {sets} blocks",
            self.n
        );
        let mut at = 0;
        let mut total: Option<Tensor<2>> = None;
        for (f, &d) in self.factors.iter().zip(&self.sizes) {
            let part = f.project_sets(sets, &v.clone().narrow(1, at, d));
            at += d;
            total = Some(match total {
                Some(t) => t + part,
                None => part,
            });
        }
        total.expect("a net has parameters")
    }

    /// W G: Σ_n w_{jn} g_n for k weight vectors W [k, N], as [k, D].
    ///
    /// # Shapes
    /// `w`: [k, N]; returns [k, D].
    pub fn combine(&self, w: &Tensor<2>) -> Tensor<2> {
        host_ops::cat(self.factors.iter().map(|f| f.combine(w)).collect(), 1)
    }

    /// Σ_n g_n ⊙ g_n, [D].
    ///
    /// # Shapes
    /// Returns [D].
    pub fn square_sum(&self) -> Tensor<1> {
        host_ops::cat(self.factors.iter().map(Factors::square_sum).collect(), 0)
    }

    /// The Gram matrix K = G Gᵀ, [N, N].
    ///
    /// # Shapes
    /// Returns [N, N].
    pub fn gram(&self) -> Tensor<2> {
        self.factors
            .iter()
            .map(Factors::gram)
            .reduce(|a, b| a + b)
            .expect("a net has parameters")
    }

    /// K = G Gᵀ for rows in `sets` blocks sharing their inputs (see
    /// [`project_sets`](Self::project_sets)): each dense layer's input Gram is formed once per
    /// block instead of for every pair of rows.
    ///
    /// # Shapes
    /// Returns [N, N]; `sets` must divide N.
    pub fn gram_sets(&self, sets: usize) -> Tensor<2> {
        assert!(
            sets > 0 && self.n.is_multiple_of(sets),
            "gram_sets: {} rows do not form {sets} blocks",
            self.n
        );
        self.factors
            .iter()
            .map(|f| f.gram_sets(sets))
            .reduce(|a, b| a + b)
            .expect("a net has parameters")
    }

    /// The cross Gram matrix G Hᵀ, [n, m]: ⟨g_i, h_j⟩ for the rows of `self` (n) and `other`
    /// (m), layer by layer from the factors (both from the same net).
    ///
    /// # Shapes
    /// `self`: n rows, `other`: m rows, both over the same D; returns [n, m].
    pub fn cross_gram(&self, other: &SampleGradients) -> Tensor<2> {
        assert_eq!(
            self.factors.len(),
            other.factors.len(),
            "cross_gram: per-sample gradients of different nets"
        );
        self.factors
            .iter()
            .zip(&other.factors)
            .map(|(a, b)| a.cross_gram(b))
            .reduce(|a, b| a + b)
            .expect("a net has parameters")
    }

    /// The rows of several sets of per-sample gradients of one net, stacked in order.
    pub fn stack(parts: Vec<SampleGradients>) -> SampleGradients {
        let layers = parts.first().map_or(0, |p| p.factors.len());
        let mut per_layer: Vec<Vec<Factors>> = vec![Vec::new(); layers];
        for p in parts {
            for (l, f) in p.factors.into_iter().enumerate() {
                per_layer[l].push(f);
            }
        }
        SampleGradients::new(per_layer.into_iter().map(Factors::stack).collect())
    }

    /// G itself, [N, D] (materializes every outer product: for small nets and tests).
    ///
    /// # Shapes
    /// Returns [N, D].
    pub fn materialize(&self) -> Tensor<2> {
        let engine = (self.factors.iter().flat_map(Factors::tensors))
            .fold(None, |e: Option<Engine>, t| {
                Some(e.map_or(Engine::of(t), |e| e.and(t)))
            });
        match engine.and_then(Engine::host) {
            Some(dt) => with_real!(dt, T => self.host_materialize::<T>()),
            None => host_ops::cat(self.factors.iter().map(Factors::materialize).collect(), 1),
        }
    }

    /// [`Self::materialize`] in host memory: every row written once, in place, split over the
    /// cores. The general path forms each layer's block and concatenates twice, which moved G
    /// (833 MB for 128 samples of a 784–2048–10 net) three times over. The same values: each
    /// entry is the one product δ_{n,o} a_{n,i} (where it is zero, its sign may differ from
    /// the general path's +0).
    fn host_materialize<T: Real>(&self) -> Tensor<2> {
        enum Block<T: Real> {
            Outer {
                a: Values<T>,
                i: usize,
                d: Values<T>,
                o: usize,
            },
            Rows {
                g: Values<T>,
                len: usize,
            },
        }
        let blocks: Vec<Block<T>> = self
            .factors
            .iter()
            .map(|f| match f {
                Factors::Outer { inputs, cotangents } => Block::Outer {
                    i: inputs.dims()[1],
                    a: values::<T, 2>(inputs.clone()),
                    o: cotangents.dims()[1],
                    d: values::<T, 2>(cotangents.clone()),
                },
                Factors::Materialized(g) => Block::Rows {
                    len: g.dims()[1],
                    g: values::<T, 2>(g.clone()),
                },
            })
            .collect();
        let (n, dim) = (self.n, self.dim());
        let mut out = vec![T::ZERO; n * dim];
        split_rows(&mut out, dim, |range, part| {
            for (s, row) in range.zip(part.chunks_mut(dim)) {
                let mut at = 0;
                for b in &blocks {
                    match b {
                        Block::Outer { a, i, d, o } => {
                            // Ã's last column is the bias's 1: its gradient is δ itself.
                            let (a, d) = (&a[s * i..s * i + i - 1], &d[s * o..(s + 1) * o]);
                            let w = i - 1;
                            for (dst, &dv) in row[at..at + o * w].chunks_mut(w).zip(d) {
                                for (x, &av) in dst.iter_mut().zip(a) {
                                    *x = dv * av;
                                }
                            }
                            row[at + o * w..at + o * w + o].copy_from_slice(d);
                            at += o * w + o;
                        }
                        Block::Rows { g, len } => {
                            row[at..at + len].copy_from_slice(&g[s * len..(s + 1) * len]);
                            at += len;
                        }
                    }
                }
            }
        });
        tensor(out, [n, dim], &self.device())
    }
}

impl Factors {
    /// ⟨g_i, h_j⟩ over this layer's parameters, [n, m]; for dense layers
    /// (Δ_g Δ_hᵀ) ⊙ (Ã_g Ã_hᵀ) without forming a gradient.
    ///
    /// # Shapes
    /// `self`: n rows, `other`: m rows of the same layer (D_l); returns [n, m].
    pub fn cross_gram(&self, other: &Factors) -> Tensor<2> {
        match (self, other) {
            (
                Factors::Outer { inputs, cotangents },
                Factors::Outer {
                    inputs: i2,
                    cotangents: c2,
                },
            ) => {
                matmul(cotangents.clone(), false, c2.clone(), true)
                    * matmul(inputs.clone(), false, i2.clone(), true)
            }
            _ => matmul(self.materialize(), false, other.materialize(), true),
        }
    }

    /// One layer's factors of several row sets, stacked.
    fn stack(parts: Vec<Factors>) -> Factors {
        if parts.iter().all(|f| matches!(f, Factors::Outer { .. })) {
            let (mut ins, mut cots) = (Vec::new(), Vec::new());
            for f in parts {
                if let Factors::Outer { inputs, cotangents } = f {
                    ins.push(inputs);
                    cots.push(cotangents);
                }
            }
            Factors::Outer {
                inputs: host_ops::cat(ins, 0),
                cotangents: host_ops::cat(cots, 0),
            }
        } else {
            Factors::Materialized(host_ops::cat(
                parts.iter().map(Factors::materialize).collect(),
                0,
            ))
        }
    }

    /// Samples n.
    pub fn samples(&self) -> usize {
        match self {
            Factors::Outer { inputs, .. } => inputs.dims()[0],
            Factors::Materialized(g) => g.dims()[0],
        }
    }

    /// Parameters D_l of the layer.
    pub fn dim(&self) -> usize {
        match self {
            Factors::Outer { inputs, cotangents } => inputs.dims()[1] * cotangents.dims()[1],
            Factors::Materialized(g) => g.dims()[1],
        }
    }

    /// G_l V_lᵀ for the layer's slice of k directions V_l [k, D_l], as [k, n].
    ///
    /// # Shapes
    /// `v`: [k, D_l]; returns [k, n].
    pub fn project(&self, v: &Tensor<2>) -> Tensor<2> {
        self.project_sets(1, v)
    }

    /// G_l V_lᵀ as [k, sets·n] for rows in `sets` blocks of n sharing their inputs (the
    /// inputs of the first block are used for all): δ_{s,i}ᵀ (V_j ã_i) with V_j ã_i formed
    /// once per sample, then one batched [sets, o] × [o, k] product per sample.
    ///
    /// # Shapes
    /// For rows = sets·n: `v`: [k, D_l]; returns [k, sets·n], column s·n + i for block s,
    /// sample i; `sets` must divide the rows.
    pub fn project_sets(&self, sets: usize, v: &Tensor<2>) -> Tensor<2> {
        match self {
            Factors::Outer { inputs, cotangents } => {
                let [rows, i1] = inputs.dims();
                assert!(
                    sets > 0 && rows.is_multiple_of(sets),
                    "{rows} rows, {sets} blocks"
                );
                let n = rows / sets;
                let (i, o, k) = (i1 - 1, cotangents.dims()[1], v.dims()[0]);
                // V_j ã_i = W_j a_i + b_j ã_{i,bias} for all j and i, as [n, o, k]. The weights
                // and the bias are taken apart rather than concatenated into [k, o, i+1] (a
                // concatenation along the last axis costs ndarray an element-by-element copy).
                let first = inputs.clone().narrow(0, 0, n);
                let (a, bias) = (first.clone().narrow(1, 0, i), first.narrow(1, i, 1));
                let w = v.clone().narrow(1, 0, o * i).reshape([k * o, i]);
                let b = v.clone().narrow(1, o * i, o);
                let va = if Engine::of(v).host().is_some() {
                    // matrixmultiply runs [k·o, i] × [i, n] about 2× faster than the transpose
                    // (0.23 against 0.44 s at n = 128, i = 784, k·o = 20 480).
                    (matmul(w, false, a, true) + b.reshape([k * o, 1]) * bias.transpose())
                        .reshape([k, o, n])
                        .permute([2, 1, 0])
                } else {
                    // Kept elsewhere: on lavapipe a probe took 28–35 s with the permuted form
                    // and 22–28 s with this one (noisy; not yet measured on a GPU).
                    (a.matmul(w.transpose()) + bias * b.reshape([1, k * o]))
                        .reshape([n, k, o])
                        .swap_dims(1, 2)
                };
                // [n, sets, o] × [n, o, k] → [n, sets, k] → [k, sets·n], row s·n + i.
                let cots = cotangents.clone().reshape([sets, n, o]).swap_dims(0, 1);
                cots.matmul(va).permute([2, 1, 0]).reshape([k, sets * n])
            }
            Factors::Materialized(g) => matmul(v.clone(), false, g.clone(), true),
        }
    }

    /// W G_l = Σ_n w_{jn} g_n for W [k, n], as [k, D_l].
    ///
    /// # Shapes
    /// `w`: [k, n]; returns [k, D_l] (θ order: weights row-major, then the bias, for dense).
    pub fn combine(&self, w: &Tensor<2>) -> Tensor<2> {
        match self {
            Factors::Outer { inputs, cotangents } => {
                let [n, i1] = inputs.dims();
                let o = cotangents.dims()[1];
                let k = w.dims()[0];
                // Δᵀ diag(w_j) Ã for every j in one matmul: [k·o, n] × [n, i+1].
                let wd = (w.clone().unsqueeze_dim::<3>(2) * cotangents.clone().unsqueeze_dim(0))
                    .swap_dims(1, 2)
                    .reshape([k * o, n]);
                Self::flatten(matmul(wd, false, inputs.clone(), false).reshape([k, o, i1]))
            }
            Factors::Materialized(g) => matmul(w.clone(), false, g.clone(), false),
        }
    }

    /// Σ_n g_n ⊙ g_n, [D_l].
    ///
    /// # Shapes
    /// Returns [D_l].
    pub fn square_sum(&self) -> Tensor<1> {
        match self {
            Factors::Outer { inputs, cotangents } => {
                let i1 = inputs.dims()[1];
                let o = cotangents.dims()[1];
                let sq = matmul(
                    cotangents.clone().square(),
                    true,
                    inputs.clone().square(),
                    false,
                );
                let d = o * i1;
                Self::flatten(sq.reshape([1, o, i1])).reshape([d])
            }
            Factors::Materialized(g) => g.clone().square().sum_dim(0).reshape([g.dims()[1]]),
        }
    }

    /// [k, o, i+1] (weights then the bias column) → θ order [k, o·i + o].
    fn flatten(t: Tensor<3>) -> Tensor<2> {
        let [k, o, i1] = t.dims();
        let w = t.clone().narrow(2, 0, i1 - 1).reshape([k, o * (i1 - 1)]);
        let b = t.narrow(2, i1 - 1, 1).reshape([k, o]);
        host_ops::cat(vec![w, b], 1)
    }
}

#[cfg(test)]
mod tests {
    use noisescope_data::Precision;

    use super::SampleGradients;
    use crate::testing::{cpu, host, host2, random_matrix, rel_err, zoo_cases};

    /// Every factored product equals the same product with the materialized G, for every
    /// model of the zoo (dense factors and materialized convolutions alike).
    #[test]
    fn factored_products_match_the_materialized_matrix() {
        let device = cpu();
        for case in zoo_cases().into_iter().filter(|c| !c.heavy) {
            let (net, theta, data) = case.build(&device, Precision::F64);
            let sg = net.sample_gradients(&theta, &data);
            let g = sg.materialize();
            let [n, d] = g.dims();
            assert_eq!((n, d), (sg.samples(), sg.dim()), "{}", case.name);
            let v = random_matrix(3, d, 11, &device);
            let w = random_matrix(3, n, 12, &device);
            let cases = [
                (
                    "project",
                    host2(sg.project(&v)),
                    host2(v.clone().matmul(g.clone().transpose())),
                ),
                ("combine", host2(sg.combine(&w)), host2(w.matmul(g.clone()))),
                (
                    "square_sum",
                    host(sg.square_sum()),
                    host(g.clone().square().sum_dim(0).reshape([d])),
                ),
                (
                    "gram",
                    host2(sg.gram()),
                    host2(g.clone().matmul(g.transpose())),
                ),
            ];
            for (what, got, want) in cases {
                let e = rel_err(&got, &want);
                assert!(e < 1e-12, "{} {what}: relative error {e:e}", case.name);
            }
        }
    }

    /// The host kernel writes G with the same values as the general path (each layer's block
    /// formed, then concatenated), in f32 and f64, for every model of the zoo.
    #[test]
    fn host_materialize_has_the_values_of_the_general_path() {
        let device = cpu();
        for precision in [Precision::F32, Precision::F64] {
            for case in zoo_cases().into_iter().filter(|c| !c.heavy) {
                let (net, theta, data) = case.build(&device, precision);
                let sg = net.sample_gradients(&theta, &data);
                let general = crate::host_ops::cat(
                    sg.factors
                        .iter()
                        .map(crate::layer::Factors::materialize)
                        .collect(),
                    1,
                );
                let got = sg.materialize();
                assert_eq!(got.dims(), general.dims(), "{}", case.name);
                // Equal values; a zero's sign may differ (the product's 0 + δ·0 is +0).
                let a = got
                    .into_data()
                    .convert::<f64>()
                    .try_into_vec::<f64>()
                    .unwrap();
                let b = general
                    .into_data()
                    .convert::<f64>()
                    .try_into_vec::<f64>()
                    .unwrap();
                let same = a.iter().zip(&b).all(|(x, y)| x == y);
                assert!(same, "{} {precision:?}", case.name);
            }
        }
    }

    /// The per-sample gradients followed by the o blocks of Gauss-Newton rows share their
    /// inputs: projecting them, and their Gram matrix, block-wise give the plain results.
    #[test]
    fn products_of_blocks_sharing_inputs_match_the_plain_ones() {
        let device = cpu();
        for case in zoo_cases().into_iter().filter(|c| !c.heavy) {
            let (net, theta, data) = case.build(&device, Precision::F64);
            let rows = SampleGradients::stack(vec![
                net.sample_gradients(&theta, &data),
                net.ggn_factors(&theta, &data),
            ]);
            let sets = net.out_dim() + 1;
            let v = random_matrix(4, net.dim(), 13, &device);
            let got = host2(rows.project_sets(sets, &v));
            let want = host2(rows.project(&v));
            let e = rel_err(&got, &want);
            assert!(e < 1e-12, "{} projection: relative error {e:e}", case.name);
            let e = rel_err(&host2(rows.gram_sets(sets)), &host2(rows.gram()));
            assert!(e < 1e-12, "{} Gram: relative error {e:e}", case.name);
        }
    }
}
