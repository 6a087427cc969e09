//! noisescope's networks over a flat parameter vector θ: layers with forward, backward,
//! R-forward and R-backward passes; losses; the model zoo; gradients, per-sample-gradient
//! factors, Hessian- and Gauss-Newton-vector products (see `docs/architecture.md`).
//! Empty until the Models issue lands.
#![warn(missing_docs)]
