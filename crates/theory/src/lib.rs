//! Closed-form predictions of Ziyin et al. for SGD on linear regression, in f64 dense linear
//! algebra (see `docs/architecture.md`). Empty until the Theory issue lands.
#![warn(missing_docs)]
