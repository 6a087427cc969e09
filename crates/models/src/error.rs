//! The error of a model that cannot be built or cannot take its data.

/// A zoo spec that cannot be built, or a net that cannot take its data.
#[derive(Debug, thiserror::Error)]
#[error("model {model}: {detail}")]
pub struct ModelError {
    /// The model's name.
    pub model: String,
    /// What is wrong.
    pub detail: String,
}
