//! A small dense f64 matrix (row-major) with the few operations the closed forms need;
//! solves and inverses go through faer's LU.

use faer::Mat;
use faer::linalg::solvers::{DenseSolveCore, Solve};

/// A dense n×m matrix of f64, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Matrix {
    /// Rows.
    pub rows: usize,
    /// Columns.
    pub cols: usize,
    /// Entries, row-major.
    pub data: Vec<f64>,
}

impl Matrix {
    /// From row-major entries.
    pub fn new(rows: usize, cols: usize, data: Vec<f64>) -> Self {
        assert_eq!(data.len(), rows * cols, "Matrix::new: {rows}×{cols}");
        Matrix { rows, cols, data }
    }

    /// The 1×1 matrix [v] (1-d problems).
    pub fn scalar(v: f64) -> Self {
        Matrix::new(1, 1, vec![v])
    }

    /// The n×n identity.
    pub fn identity(n: usize) -> Self {
        Self::diagonal(&vec![1.0; n])
    }

    /// diag(d).
    pub fn diagonal(d: &[f64]) -> Self {
        let n = d.len();
        let mut m = Self::zeros(n, n);
        for (i, v) in d.iter().enumerate() {
            m.data[i * n + i] = *v;
        }
        m
    }

    /// The zero matrix.
    pub fn zeros(rows: usize, cols: usize) -> Self {
        Matrix::new(rows, cols, vec![0.0; rows * cols])
    }

    /// Entry (i, j).
    pub fn at(&self, i: usize, j: usize) -> f64 {
        self.data[i * self.cols + j]
    }

    /// A B.
    pub fn mul(&self, b: &Matrix) -> Matrix {
        assert_eq!(self.cols, b.rows, "matrix product");
        let mut out = Matrix::zeros(self.rows, b.cols);
        for i in 0..self.rows {
            for k in 0..self.cols {
                let a = self.at(i, k);
                if a == 0.0 {
                    continue;
                }
                for j in 0..b.cols {
                    out.data[i * b.cols + j] += a * b.at(k, j);
                }
            }
        }
        out
    }

    /// A + B.
    pub fn add(&self, b: &Matrix) -> Matrix {
        assert_eq!((self.rows, self.cols), (b.rows, b.cols), "matrix sum");
        Matrix::new(
            self.rows,
            self.cols,
            self.data.iter().zip(&b.data).map(|(x, y)| x + y).collect(),
        )
    }

    /// s A.
    pub fn scale(&self, s: f64) -> Matrix {
        Matrix::new(
            self.rows,
            self.cols,
            self.data.iter().map(|x| x * s).collect(),
        )
    }

    /// Tr A.
    pub fn trace(&self) -> f64 {
        (0..self.rows.min(self.cols)).map(|i| self.at(i, i)).sum()
    }

    /// Aᵀ.
    pub fn transpose(&self) -> Matrix {
        let mut out = Matrix::zeros(self.cols, self.rows);
        for i in 0..self.rows {
            for j in 0..self.cols {
                out.data[j * self.rows + i] = self.at(i, j);
            }
        }
        out
    }

    fn to_faer(&self) -> Mat<f64> {
        Mat::from_fn(self.rows, self.cols, |i, j| self.at(i, j))
    }

    fn from_faer(m: &Mat<f64>) -> Matrix {
        let (r, c) = (m.nrows(), m.ncols());
        Matrix::new(r, c, (0..r * c).map(|k| m[(k / c, k % c)]).collect())
    }

    /// A⁻¹ (LU with partial pivoting); `None` when A is singular to working precision.
    pub fn inverse(&self) -> Option<Matrix> {
        assert_eq!(self.rows, self.cols, "inverse of a square matrix");
        let inv = Self::from_faer(&self.to_faer().partial_piv_lu().inverse());
        inv.data.iter().all(|v| v.is_finite()).then_some(inv)
    }

    /// x with A x = b for a column b (as a Vec).
    pub fn solve(&self, b: &[f64]) -> Option<Vec<f64>> {
        assert_eq!((self.rows, self.cols), (b.len(), b.len()), "square solve");
        let rhs = Mat::from_fn(b.len(), 1, |i, _| b[i]);
        let x = self.to_faer().partial_piv_lu().solve(&rhs);
        let x: Vec<f64> = (0..b.len()).map(|i| x[(i, 0)]).collect();
        x.iter().all(|v| v.is_finite()).then_some(x)
    }

    /// max |a − b| over entries.
    pub fn max_abs_diff(&self, b: &Matrix) -> f64 {
        self.data
            .iter()
            .zip(&b.data)
            .fold(0f64, |m, (x, y)| m.max((x - y).abs()))
    }
}
