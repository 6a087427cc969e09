//! The command line, parsed by clap's derive. Global options may stand before or after the
//! command.

use std::fmt;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// noisescope: a GPU-accelerated harness for studying the noise of stochastic gradient descent.
#[derive(Debug, Parser)]
#[command(name = "noisescope", version, about, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes.
#[derive(Debug, Args)]
pub struct Global {
    /// Compute backend: ndarray (CPU) or wgpu (GPU through Vulkan, Metal or DX12).
    #[arg(long, global = true, value_enum, default_value_t = BackendKind::Ndarray, env = "NOISESCOPE_BACKEND")]
    pub backend: BackendKind,
    /// Which device of the backend, for a machine with several GPUs (see `noisescope devices`).
    #[arg(long, global = true, value_name = "N")]
    pub device: Option<usize>,
    /// Folder holding datasets (`<DIR>/<name>/` or the files themselves); searched before
    /// $NOISESCOPE_DATA, ./datasets and /usr/share/datasets.
    #[arg(long, global = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// No progress bars.
    #[arg(long, short, global = true)]
    pub quiet: bool,
    /// Print results as JSON on stdout (for scripts).
    #[arg(long, global = true)]
    pub json: bool,
    /// How hard the wgpu backend tunes its kernels on first use: `minimal` starts fastest,
    /// `balanced` is burn's default; sets CUBECL_AUTOTUNE_LEVEL. Tuned choices are cached on
    /// disk, so later runs start fast at any level.
    #[arg(long, global = true, value_enum, env = "NOISESCOPE_AUTOTUNE")]
    pub autotune: Option<AutotuneLevel>,
    /// CPU threads for the host kernels and matrix products (default: $MATMUL_NUM_THREADS,
    /// else every core this process may run on). The convolution kernels split their sums by
    /// thread, so a convolution run continued elsewhere keeps its bits only with the same
    /// count.
    #[arg(long, global = true, value_name = "N", env = "NOISESCOPE_THREADS", value_parser = clap::value_parser!(u16).range(1..))]
    pub threads: Option<u16>,
    /// The CPU's matrix products: `auto` uses a system OpenBLAS where one is installed
    /// (Debian: libopenblas0), `none` keeps the built-in `matrixmultiply` (burn's engine, the
    /// bits of earlier versions), or the path of a CBLAS library.
    #[arg(
        long,
        global = true,
        value_name = "auto|none|PATH",
        env = "NOISESCOPE_BLAS"
    )]
    pub blas: Option<String>,
}

/// cubecl's autotune levels (its `CUBECL_AUTOTUNE_LEVEL`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AutotuneLevel {
    /// Fewest candidate kernels: quickest start.
    Minimal,
    /// burn's default.
    Balanced,
    /// More candidates.
    Extensive,
    /// Every candidate: slowest start, best kernels.
    Full,
}

impl AutotuneLevel {
    /// The value cubecl reads.
    pub fn as_env(self) -> &'static str {
        match self {
            AutotuneLevel::Minimal => "minimal",
            AutotuneLevel::Balanced => "balanced",
            AutotuneLevel::Extensive => "extensive",
            AutotuneLevel::Full => "full",
        }
    }
}

/// The compute backends this build may know.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BackendKind {
    /// burn's ndarray backend on the CPU.
    Ndarray,
    /// burn's wgpu backend on a GPU.
    Wgpu,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Datasets: list, fetch, verify and describe them.
    #[command(subcommand)]
    Data(DataCommand),
    /// Time a gradient against Hessian-vector and Gauss-Newton products on the chosen backend.
    Bench(BenchArgs),
    /// Train any zoo model with any dynamic, into a run directory.
    Train(TrainArgs),
    /// Zhu et al.'s escape protocol: GD to θ*, then every chosen dynamic from θ*.
    Escape(EscapeArgs),
    /// Measure a run's checkpoint: spectrum, Tr(HΣ), sharpness, alignment, density.
    Probe(ProbeArgs),
    /// One run per value of a config key (widths, learning rates, seeds), with one figure.
    Sweep(SweepArgs),
    /// Redraw the figures of a run, an escape experiment, a sweep or a theory experiment.
    Plot(PlotArgs),
    /// Ziyin et al.'s closed forms against SGD simulated on many chains at once.
    Theory(TheoryArgs),
    /// Write a run's (or a whole experiment's) metrics as CSV, or its TensorBoard files again.
    Export(ExportArgs),
    /// List the CPU backend and the wgpu devices with the numbers `--device` and `--devices`
    /// take.
    Devices,
    /// Combine the finished units of a sharded sweep or escape experiment (or a campaign)
    /// into its summary, table and figures, and list the units still missing or failed.
    Collect(CollectArgs),
    /// Write a Slurm job-array script that runs a sweep or an escape experiment, one shard per
    /// array task (or a theory experiment as one task), and print how to submit it.
    Slurm(SlurmArgs),
}

#[derive(Debug, Args)]
pub struct CollectArgs {
    /// The experiment's folder (the --out of its shards).
    pub dir: PathBuf,
}

#[derive(Debug, Args)]
pub struct SlurmArgs {
    /// The experiment: `sweep`, `escape` or `theory <experiment>`.
    #[arg(value_enum)]
    pub kind: SlurmKind,
    /// For `theory`: which experiment.
    #[arg(value_enum)]
    pub theory: Option<TheoryExperiment>,
    /// The experiment's config (for theory, optional: the built-in settings otherwise).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The experiment's folder (default: runs/<config>-<time>); the script goes to
    /// DIR/slurm/array.sbatch, the tasks' logs to DIR/slurm/.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Override a config key (repeatable); fixed into the experiment's resolved config.
    #[arg(long, value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Array tasks (default: one per unit); task i runs units i, i + n, ….
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub tasks: Option<u32>,
    /// At most this many tasks at once (`--array=0-N%M`).
    #[arg(long, value_name = "M", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_parallel: Option<u32>,
    /// Slurm partition.
    #[arg(long, value_name = "P")]
    pub partition: Option<String>,
    /// GPUs per task (runs noisescope with --backend wgpu).
    #[arg(long, value_name = "G")]
    pub gpus_per_task: Option<u32>,
    /// CPU cores per task (also noisescope's --threads).
    #[arg(long, value_name = "C", value_parser = clap::value_parser!(u32).range(1..))]
    pub cpus_per_task: Option<u32>,
    /// Time limit per task, in Slurm's format (`2:00:00`, `1-00:00:00`).
    #[arg(long, value_name = "T")]
    pub time: Option<String>,
    /// Memory per task, in Slurm's format (`8G`).
    #[arg(long, value_name = "MEM")]
    pub mem: Option<String>,
    /// Phase-2 steps of an escape experiment (as `escape --steps`).
    #[arg(long)]
    pub steps: Option<u64>,
    /// Stop every phase-2 run of an escape experiment at this step (as `escape --until`).
    #[arg(long, value_name = "STEP")]
    pub until: Option<u64>,
    /// An escape experiment once per seed (comma-separated), as a campaign: DIR/seed-N/ each,
    /// all in one array; `noisescope collect DIR` combines the seeds.
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    pub seeds: Option<Vec<u64>>,
}

/// The experiments `noisescope slurm` can spread over an array.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SlurmKind {
    /// One task per shard of the sweep's runs.
    Sweep,
    /// One task per shard of the dynamics (per seed with --seeds).
    Escape,
    /// One task: a theory experiment's parts are chains of one simulation, not units.
    Theory,
}

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("format").required(true).multiple(true))]
pub struct ExportArgs {
    /// A run directory, or an experiment's (escape, sweep, campaign): every run under it.
    pub dir: PathBuf,
    /// One tidy CSV of every run's metric lines: a row per (run, step), a column per metric
    /// (`probes.lambda_max`); written to DIR/metrics.csv unless --out says where.
    #[arg(long, group = "format")]
    pub csv: bool,
    /// Rebuild each run's TensorBoard event file from its metrics.jsonl (runs made before
    /// noisescope wrote them, or after editing the lines).
    #[arg(long, group = "format")]
    pub tensorboard: bool,
    /// Where the CSV goes (`-` for standard output).
    #[arg(long, value_name = "FILE", requires = "csv")]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct TheoryArgs {
    /// The experiment.
    #[arg(value_enum)]
    pub experiment: TheoryExperiment,
    /// Settings replacing the built-in ones (configs/ziyin2022/<experiment>.toml).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Output directory (default: runs/theory-<experiment>-<time>).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Override a setting, e.g. `--set simulation.chains=100` (repeatable).
    #[arg(long, value_name = "KEY=VALUE")]
    pub set: Vec<String>,
}

#[derive(Debug, Args)]
pub struct PlotArgs {
    /// The run, escape, sweep or theory directory.
    pub dir: PathBuf,
}

#[derive(Debug, Args)]
pub struct SweepArgs {
    /// The sweep's config (TOML: key, values, plot, and the base [run]).
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    /// Output directory (default: runs/<config>-<time>).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Override a key, e.g. `--set run.steps=20` or `--set values=[32]` (repeatable).
    #[arg(long, value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Start over in a folder that already holds this experiment (its finished and
    /// unfinished runs are deleted); without it, a re-run continues the experiment.
    #[arg(long)]
    pub restart: bool,
    #[command(flatten)]
    pub scale: ScaleArgs,
}

/// How an experiment's units (its sweep runs, its escape dynamics) are spread over
/// processes; without these, one process runs them all.
#[derive(Debug, Clone, Args)]
pub struct ScaleArgs {
    /// Run only shard i of n: the units i, i + n, i + 2n, … of the experiment's list, each in
    /// its own folder. Inside a Slurm array task it defaults to the task's shard
    /// (SLURM_ARRAY_TASK_ID of SLURM_ARRAY_TASK_COUNT). Combine with `noisescope collect`.
    #[arg(long, value_name = "i/n", conflicts_with_all = ["jobs", "devices"])]
    pub shard: Option<Shard>,
    /// Run the units in N processes on this machine at once, sharing its cores, with one
    /// progress display; then combine them.
    #[arg(long, value_name = "N", conflicts_with = "devices", value_parser = clap::value_parser!(u16).range(1..))]
    pub jobs: Option<u16>,
    /// Run the units in one process per listed wgpu device (comma-separated, as
    /// `noisescope devices` numbers them) at once, with one progress display; then combine
    /// them. Needs --backend wgpu.
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    pub devices: Option<Vec<usize>>,
}

#[derive(Debug, Args)]
pub struct TrainArgs {
    /// The run's config (TOML; see configs/).
    #[arg(long, value_name = "FILE", required_unless_present = "resume")]
    pub config: Option<PathBuf>,
    /// Run directory to create (default: runs/<config>-<dynamic>-s<seed>-<time>).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Override a config key, e.g. `--set optimizer.lr=0.05` (repeatable).
    #[arg(long, value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Continue the run in DIR from its latest checkpoint.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["config", "out"])]
    pub resume: Option<PathBuf>,
    /// Stop after this many steps (with a checkpoint); `--resume` continues.
    #[arg(long, value_name = "STEP")]
    pub until: Option<u64>,
}

#[derive(Debug, Args)]
pub struct EscapeArgs {
    /// The experiment's config (TOML; see configs/zhu2019/).
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    /// Output directory (default: runs/<config>-<time>).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Override a config key, e.g. `--set run.optimizer.lr=0.05` (repeatable).
    #[arg(long, value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Start over in a folder that already holds this experiment (its finished and
    /// unfinished runs are deleted); without it, a re-run continues the experiment.
    #[arg(long)]
    pub restart: bool,
    /// Phase-2 steps (a short smoke run).
    #[arg(long)]
    pub steps: Option<u64>,
    /// Phase-1 steps.
    #[arg(long)]
    pub phase1_steps: Option<u64>,
    /// Run only these of the experiment's dynamics (comma-separated); the others' folders
    /// are left as they are and still enter the summary.
    #[arg(long, value_delimiter = ',')]
    pub dynamics: Option<Vec<String>>,
    /// Repetitions.
    #[arg(long)]
    pub repeats: Option<usize>,
    /// Stop every phase-2 run at this step, with a checkpoint (phase 1 runs in full); a
    /// later run with a larger --until, or none, continues them. Grows a campaign breadth
    /// first.
    #[arg(long, value_name = "STEP")]
    pub until: Option<u64>,
    #[command(flatten)]
    pub scale: ScaleArgs,
}

#[derive(Debug, Args)]
pub struct ProbeArgs {
    /// The run directory.
    #[arg(long, value_name = "DIR")]
    pub run: PathBuf,
    /// The checkpoint's step (default: the latest).
    #[arg(long)]
    pub step: Option<u64>,
    /// Probes, comma-separated: spectrum, escape, sharpness, noise, alignment, density.
    #[arg(long, value_delimiter = ',', required = true)]
    pub probes: Vec<String>,
    /// Override a probe setting of the run's config, e.g. `--set probes.top_k=20`.
    #[arg(long, value_name = "KEY=VALUE")]
    pub set: Vec<String>,
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// The anchor's QUICK sizes (tanh 784-512/2048-10, N = 128…512, 40 Lanczos steps): a
    /// quick look on a CPU or a laptop GPU.
    #[arg(long)]
    pub quick: bool,
    /// Only these workloads (comma list of W1, W2, W3, W4, W5, W6, HW, CNN).
    #[arg(long, value_name = "LIST")]
    pub only: Option<String>,
    /// All but these workloads (comma list).
    #[arg(long, value_name = "LIST")]
    pub skip: Option<String>,
    /// Seed of the data pool, initializations and directions.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Skip the rows that would start after this many seconds (they are recorded as
    /// skipped), so a bench fits a time-limited GPU session.
    #[arg(long, value_name = "S")]
    pub budget_s: Option<f64>,
    /// With --json: the file the JSON document goes to (rewritten after every row, so an
    /// interrupted bench keeps its rows) instead of stdout.
    #[arg(value_name = "FILE")]
    pub file: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum DataCommand {
    /// List the datasets noisescope knows and where each is found.
    List,
    /// Download datasets from their canonical mirrors, verifying every file.
    Fetch {
        /// Dataset names (mnist, fashion-mnist).
        #[arg(required = true)]
        names: Vec<String>,
        /// Base URL to download from instead of the registry's mirrors (repeatable).
        #[arg(long, value_name = "URL")]
        mirror: Vec<String>,
    },
    /// Check every file of the named datasets (default: all that are present) against the
    /// registry's sha256 checksums, IDX structure and sample counts.
    Verify {
        /// Dataset names.
        names: Vec<String>,
        /// Accept a .gz that is not a known copy when its decompressed contents verify.
        #[arg(long)]
        any_gzip: bool,
    },
    /// Samples per class and pixel mean and standard deviation of a dataset.
    Info {
        /// Dataset name.
        name: String,
    },
}

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

/// Shard `index` of `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl std::str::FromStr for Shard {
    type Err = String;

    /// `i/n` with 0 ≤ i < n.
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("`{s}`: expected i/n with 0 ≤ i < n, e.g. 0/4");
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let index: usize = i.trim().parse().map_err(|_| bad())?;
        let count: usize = n.trim().parse().map_err(|_| bad())?;
        if count == 0 || index >= count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }
}
