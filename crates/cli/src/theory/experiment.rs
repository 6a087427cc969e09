//! The names and built-in settings of `noisescope theory`'s experiments (the enum itself is a
//! command-line value, defined with the other arguments).

pub use crate::args::TheoryExperiment;

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
