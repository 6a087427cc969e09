//! noisescope's noise-injecting optimizer: GD, SGD and the surrogate dynamics of SPEC §2
//! (see `docs/architecture.md`). Empty until the Noise issue lands.
#![warn(missing_docs)]
