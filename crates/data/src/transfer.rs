//! Moving values between a device and the host: every crate's one way of reading a tensor
//! back in f64 and of uploading a host matrix.

use burn::prelude::*;
use burn::tensor::DType;

/// A tensor's values on the host in f64, row-major.
///
/// # Returns
/// The R-dimensional tensor's entries, last axis fastest; f32 values are widened exactly.
pub fn to_host<const R: usize>(t: Tensor<R>) -> Vec<f64> {
    t.into_data()
        .convert::<f64>()
        .try_into_vec::<f64>()
        .expect("float tensor")
}

/// A host row-major matrix as a device tensor of `dtype`.
///
/// # Shapes
/// `values` holds rows × cols entries, row by row; returns [rows, cols].
pub fn to_device(
    values: Vec<f64>,
    rows: usize,
    cols: usize,
    device: &Device,
    dtype: DType,
) -> Tensor<2> {
    Tensor::from_data(TensorData::new(values, [rows, cols]), (device, dtype))
}

/// A host vector as a device tensor of `dtype`.
///
/// # Shapes
/// Returns [`values.len()`].
pub fn vector(values: &[f64], device: &Device, dtype: DType) -> Tensor<1> {
    let n = values.len();
    to_device(values.to_vec(), 1, n, device, dtype).reshape([n])
}
