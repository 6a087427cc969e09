//! noisescope's measurements: curvature and noise as linear operators with block apply,
//! Lanczos, Hutchinson, SLQ, Tr(HΣ), sharpness and alignment (see `docs/architecture.md`).
//! Empty until the Probes issue lands.
#![warn(missing_docs)]
