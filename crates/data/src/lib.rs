//! noisescope's data layer: IDX files, the dataset registry and its search path, downloads and
//! verification, seeded tweaks, synthetic problems, device-resident datasets and minibatch
//! samplers.
#![warn(missing_docs)]

mod dataset;
mod device;
mod error;
mod features;
mod fetch;
pub mod idx;
mod locate;
pub mod registry;
mod sampler;
pub mod synthetic;
pub mod transfer;
mod tweaks;
mod verify;

pub use dataset::ImageDataset;
pub use device::{DeviceDataset, GPU_FUSION, Precision, in_host_memory, mean_std_on_device};
pub use error::{DataError, Result};
pub use features::{Features, Normalization, Targets};
pub use fetch::{FetchEvent, FetchOptions, fetch};
pub use locate::{DATA_ENV, SearchPath, file_in};
pub use registry::{DatasetSpec, FileKind, FileSpec, Split, lookup};
pub use sampler::{MinibatchSampler, SamplerState, Sampling};
pub use verify::{FileReport, VerifyReport, Wrapper, sha256_hex, verify, verify_file};
