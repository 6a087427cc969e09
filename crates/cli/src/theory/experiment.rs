//! The experiments of `noisescope theory`, with their names and built-in settings: a leaf
//! module, so that the command line's definitions can name them without importing the
//! experiments.

use clap::ValueEnum;

/// The experiments of `noisescope theory`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TheoryExperiment {
    /// Thms. 2–3: the stationary Σ and C of label-noise regression in 1-d and 2-d (SPEC §5.6).
    LabelNoise,
    /// Thm. 2 against the learning rate, with both Hessian approximations (SPEC §5.6).
    LrSweep,
    /// Thm. 4 / Cor. 1: test loss against weight decay γ, divergence boundaries, the negative
    /// optimum (SPEC §5.7).
    WeightDecay,
    /// Thm. 6: Tr[ÂΣ] against α = N/D across the over/under-parameterized transition (§5.8).
    HighDim,
    /// The 1-d tail index against λ and S (§5.9), with the exact Kesten–Goldie index.
    TailIndex,
}

impl TheoryExperiment {
    /// The command-line name.
    pub fn name(self) -> &'static str {
        match self {
            TheoryExperiment::LabelNoise => "label-noise",
            TheoryExperiment::LrSweep => "lr-sweep",
            TheoryExperiment::WeightDecay => "weight-decay",
            TheoryExperiment::HighDim => "high-dim",
            TheoryExperiment::TailIndex => "tail-index",
        }
    }

    /// The built-in settings: `configs/ziyin2022/<name>.toml`.
    pub fn defaults(self) -> &'static str {
        match self {
            TheoryExperiment::LabelNoise => {
                include_str!("../../../../configs/ziyin2022/label-noise.toml")
            }
            TheoryExperiment::LrSweep => {
                include_str!("../../../../configs/ziyin2022/lr-sweep.toml")
            }
            TheoryExperiment::WeightDecay => {
                include_str!("../../../../configs/ziyin2022/weight-decay.toml")
            }
            TheoryExperiment::HighDim => {
                include_str!("../../../../configs/ziyin2022/high-dim.toml")
            }
            TheoryExperiment::TailIndex => {
                include_str!("../../../../configs/ziyin2022/tail-index.toml")
            }
        }
    }
}
