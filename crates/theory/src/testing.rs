//! Test helper: stationary averages of a simulated chain with batch-means standard errors.

/// Runs `step` (one update, returning the observable) `burn` times, then `steps` times in
/// `blocks` equal blocks: the mean of the block means and its standard error.
pub fn stationary_mean(
    burn: usize,
    steps: usize,
    blocks: usize,
    mut step: impl FnMut() -> f64,
) -> (f64, f64) {
    for _ in 0..burn {
        step();
    }
    let per = steps / blocks;
    let means: Vec<f64> = (0..blocks)
        .map(|_| (0..per).map(|_| step()).sum::<f64>() / per as f64)
        .collect();
    let m = means.iter().sum::<f64>() / blocks as f64;
    let se = (means.iter().map(|b| (b - m).powi(2)).sum::<f64>() / ((blocks - 1) * blocks) as f64)
        .sqrt();
    (m, se)
}
