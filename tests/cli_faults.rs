//! The fault corpus (docs/reliability.md): bad configs, flags, checkpoints, run folders and
//! datasets, each run through the binary as a user would. Every case must end with exit 1, a
//! message that names the file, field or step at fault, and no panic.

use std::path::{Path, PathBuf};

use safetensors::tensor::{Dtype, TensorView};

mod common;
use common::{failure, noisescope, ok};

/// A small run config: a 784–16–10 MLP on 200 bundled Fashion-MNIST images.
const BASE: &str = r#"
seed = 0
steps = 20
log_every = 5
checkpoint_every = 10

[data]
kind = "images"
name = "fashion-mnist-small"
train = 200
test = 100

[model]
model = "mlp"
widths = [784, 16, 10]
activation = "tanh"
loss = { kind = "cross-entropy" }

[optimizer]
lr = 0.1
momentum = 0.9

[noise]
dynamic = "sgd"
batch = 20

[probes]
every = 10
list = ["spectrum"]
samples = 50
top_k = 3
lanczos_steps = 10
"#;

/// `BASE` with `key = value` lines replacing or joining those of its `[section]` (the top
/// level for "").
fn config_with(section: &str, key: &str, value: &str) -> String {
    let mut out = String::new();
    let mut current = String::new();
    let mut placed = false;
    let mut lines: Vec<&str> = BASE.lines().collect();
    lines.push("[end]");
    for line in lines {
        let t = line.trim();
        if t.starts_with('[') {
            if current == section && !placed {
                out.push_str(&format!("{key} = {value}\n"));
                placed = true;
            }
            current = t.trim_matches(['[', ']']).to_string();
            if t == "[end]" {
                break;
            }
        } else if current == section && t.split('=').next().map(str::trim) == Some(key) {
            out.push_str(&format!("{key} = {value}\n"));
            placed = true;
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    if !placed {
        out.push_str(&format!("[{section}]\n{key} = {value}\n"));
    }
    out
}

/// Runs `args` and checks the failure names `needle`.
fn fails_naming(case: &str, args: &[&str], needle: &str) {
    let err = failure(&noisescope(args));
    assert!(
        err.contains(needle),
        "case {case}: the message does not name `{needle}`:\n{err}"
    );
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn bad_settings_are_named_errors() {
    let tmp = tempfile::tempdir().unwrap();
    // (section, key, value, what the message must name)
    let cases: &[(&str, &str, &str, &str)] = &[
        ("optimizer", "lr", "nan", "optimizer.lr"),
        ("optimizer", "lr", "inf", "optimizer.lr"),
        ("optimizer", "lr", "-0.1", "optimizer.lr"),
        ("optimizer", "lr", "0.0", "optimizer.lr"),
        ("optimizer", "momentum", "1.0", "optimizer.momentum"),
        ("optimizer", "momentum", "-0.5", "optimizer.momentum"),
        ("optimizer", "weight_decay", "inf", "optimizer.weight_decay"),
        ("optimizer", "weight_decay", "nan", "optimizer.weight_decay"),
        (
            "optimizer",
            "schedule",
            "{ kind = \"step\", every = 0, factor = 0.5 }",
            "optimizer.schedule.every",
        ),
        (
            "optimizer",
            "schedule",
            "{ kind = \"step\", every = 10, factor = -1.0 }",
            "optimizer.schedule.factor",
        ),
        (
            "optimizer",
            "algorithm",
            "{ name = \"adam\", beta1 = 1.0, beta2 = 0.999, eps = 1e-8 }",
            "optimizer.algorithm.beta1",
        ),
        (
            "optimizer",
            "algorithm",
            "{ name = \"adam\", beta1 = 0.9, beta2 = 0.999, eps = 0.0 }",
            "optimizer.algorithm.eps",
        ),
        ("optimizer", "width_scale", "-1.0", "optimizer.width_scale"),
        ("noise", "sigma", "-1.0", "noise.sigma"),
        ("noise", "sigma", "nan", "noise.sigma"),
        ("noise", "refresh", "0", "noise.refresh"),
        ("noise", "batch", "0", "noise.batch"),
        ("noise", "batch", "1000000", "noise.batch = 1000000"),
        ("noise", "dynamic", "\"hessian-100000\"", "noise.dynamic"),
        ("noise", "dynamic", "\"lowrank-5000\"", "noise.dynamic"),
        ("noise", "dynamic", "\"lowrank-x\"", "lowrank-x"),
        ("noise", "trace", "{ fixed = -1.0 }", "noise.trace"),
        (
            "noise",
            "eigensolver",
            "{ method = \"lanczos\", steps = 0 }",
            "noise.eigensolver.steps",
        ),
        (
            "noise",
            "eigensolver",
            "{ method = \"power\", iterations = 0 }",
            "noise.eigensolver.iterations",
        ),
        ("probes", "samples", "0", "probes.samples"),
        ("probes", "top_k", "100000", "probes.top_k"),
        ("probes", "top_k", "0", "probes.top_k"),
        ("probes", "lanczos_steps", "0", "probes.lanczos_steps"),
        ("probes", "chunk", "0", "probes.chunk"),
        (
            "probes",
            "trace_h",
            "{ method = \"hutchinson\", probes = 0 }",
            "probes.trace_h",
        ),
        (
            "probes",
            "sharpness",
            "{ delta = -0.01, samples = 10, batch = 5, seed = 0 }",
            "probes.sharpness.delta",
        ),
        (
            "probes",
            "sharpness",
            "{ delta = 0.01, samples = 0, batch = 5, seed = 0 }",
            "probes.sharpness",
        ),
        ("probes", "list", "[\"spectrum\", \"bogus\"]", "bogus"),
        ("init", "values", "[1.0, 2.0]", "init.values"),
        ("init", "from", "\"/nonexistent/run\"", "/nonexistent/run"),
        ("model", "widths", "[784, 0, 10]", "widths"),
        // 1.6 · 10⁹ parameters: refused with a memory estimate before any allocation.
        ("model", "widths", "[784, 2000000, 10]", "parameters"),
        ("data", "name", "\"no-such-set\"", "no-such-set"),
        ("data", "train", "100000", "train"),
        ("", "steps", "-5", "steps"),
        ("", "stepz", "5", "stepz"),
    ];
    for (i, (section, key, value, needle)) in cases.iter().enumerate() {
        let file = tmp.path().join(format!("case-{i}.toml"));
        std::fs::write(&file, config_with(section, key, value)).unwrap();
        let out = tmp.path().join(format!("out-{i}"));
        fails_naming(
            &format!("{section}.{key} = {value}"),
            &[
                "--quiet",
                "train",
                "--config",
                path(&file),
                "--out",
                path(&out),
            ],
            needle,
        );
    }
    // A file that is not TOML, and one that is missing, are named.
    let bad = tmp.path().join("bad.toml");
    std::fs::write(&bad, "steps = = 3\n").unwrap();
    fails_naming("not TOML", &["train", "--config", path(&bad)], "bad.toml");
    fails_naming(
        "missing config",
        &["train", "--config", "/nonexistent/x.toml"],
        "/nonexistent/x.toml",
    );
    fails_naming(
        "--set without =",
        &[
            "train",
            "--config",
            "configs/quickstart.toml",
            "--set",
            "noequals",
        ],
        "noequals",
    );
}

#[test]
fn bad_experiments_are_named_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let toy = "configs/zhu2019/toy2d.toml";
    let out = tmp.path().join("e");
    fails_naming(
        "escape --repeats 0",
        &[
            "escape",
            "--config",
            toy,
            "--repeats",
            "0",
            "--out",
            path(&out),
        ],
        "repeats",
    );
    for (set, needle) in [
        ("perturb=-1.0", "perturb"),
        ("lr_over_sharpness=-2.0", "lr_over_sharpness"),
        ("dynamics=[\"hessian-100000\"]", "hessian-100000"),
        ("run.optimizer.lr=nan", "optimizer.lr"),
    ] {
        fails_naming(
            set,
            &[
                "escape",
                "--config",
                toy,
                "--repeats",
                "1",
                "--set",
                set,
                "--out",
                path(&out),
            ],
            needle,
        );
    }
    // Sweep names that would leave --out.
    let sweep = "configs/zhu2019/alignment-width.toml";
    for (set, needle) in [
        ("series=[{name = \"../../x\"}]", "series name"),
        ("series=[{name = \"/elsewhere/x\"}]", "series name"),
        ("values=[\"../../y\"]", "sweep value"),
    ] {
        let o = tmp.path().join("s");
        fails_naming(
            set,
            &["sweep", "--config", sweep, "--set", set, "--out", path(&o)],
            needle,
        );
        assert!(!tmp.path().join("x").exists() && !Path::new("/elsewhere").exists());
    }
    // Theory settings whose zero counts would panic, hang or read as divergence.
    for (experiment, set, needle) in [
        ("label-noise", "simulation.steps=0", "simulation.steps"),
        ("lr-sweep", "simulation.chains=1", "simulation.chains"),
        ("weight-decay", "simulation.block=0", "simulation.block"),
        ("lr-sweep", "batch=0", "`batch`"),
        ("tail-index", "thin=0", "`thin`"),
    ] {
        let o = tmp.path().join("t");
        fails_naming(
            set,
            &[
                "--quiet",
                "theory",
                experiment,
                "--set",
                set,
                "--out",
                path(&o),
            ],
            needle,
        );
        assert!(!o.exists(), "{set}: the folder was created");
    }
}

/// A stored tensor, as the fault cases rewrite them.
struct Stored {
    name: String,
    dtype: Dtype,
    shape: Vec<usize>,
    bytes: Vec<u8>,
}

fn read_tensors(file: &Path) -> Vec<Stored> {
    let bytes = std::fs::read(file).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    st.tensors()
        .into_iter()
        .map(|(name, v)| Stored {
            name,
            dtype: v.dtype(),
            shape: v.shape().to_vec(),
            bytes: v.data().to_vec(),
        })
        .collect()
}

fn write_tensors(file: &Path, tensors: &[Stored]) {
    let views: Vec<(String, TensorView<'_>)> = tensors
        .iter()
        .map(|t| {
            (
                t.name.clone(),
                TensorView::new(t.dtype, t.shape.clone(), &t.bytes).unwrap(),
            )
        })
        .collect();
    std::fs::write(file, safetensors::serialize(views, None).unwrap()).unwrap();
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Copies a run folder.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.path().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}

/// A run stopped at step 10 (sgd with shuffling and momentum, or `lowrank-3`), to break.
fn stopped_run(root: &Path, name: &str, sets: &[&str]) -> PathBuf {
    let cfg = root.join(format!("{name}.toml"));
    std::fs::write(&cfg, BASE).unwrap();
    let out = root.join(name);
    let mut args = vec![
        "--quiet",
        "train",
        "--config",
        path(&cfg),
        "--out",
        path(&out),
        "--until",
        "10",
    ];
    for s in sets {
        args.extend(["--set", s]);
    }
    ok(&noisescope(&args));
    out
}

#[test]
fn broken_checkpoints_and_run_folders_are_named_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let sgd = stopped_run(root, "sgd", &[]);
    let lowrank = stopped_run(
        root,
        "lowrank",
        &["noise.dynamic=\"lowrank-3\"", "noise.refresh=7"],
    );
    let ck = "checkpoints/step-0000010";
    type Breaker = Box<dyn Fn(&Path)>;
    // Rewrites one safetensors file of the checkpoint.
    let edit = |file: &'static str, f: fn(&mut Vec<Stored>)| -> Breaker {
        Box::new(move |run: &Path| {
            let file = run.join(ck).join(file);
            let mut t = read_tensors(&file);
            f(&mut t);
            write_tensors(&file, &t);
        })
    };
    let edit_state = |f| edit("state.safetensors", f);
    let edit_model = |f| edit("model.safetensors", f);
    let edit_json = |f: fn(&mut serde_json::Value)| -> Breaker {
        Box::new(move |run: &Path| {
            let file = run.join(ck).join("state.json");
            let mut v: serde_json::Value =
                serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
            f(&mut v);
            std::fs::write(&file, v.to_string()).unwrap();
        })
    };
    let write = |rel: &'static str, text: &'static str| -> Breaker {
        Box::new(move |run: &Path| std::fs::write(run.join(rel), text).unwrap())
    };
    // (name, source run, breaker, what the message must name)
    let cases: Vec<(&str, &Path, Breaker, &str)> = vec![
        (
            "θ too short",
            &sgd,
            edit_model(|t| {
                let th = t.iter_mut().find(|s| s.name == "theta").unwrap();
                th.bytes.truncate(th.bytes.len() - 40);
                th.shape[0] -= 10;
            }),
            "theta",
        ),
        (
            "θ with NaN",
            &sgd,
            edit_model(|t| {
                let th = t.iter_mut().find(|s| s.name == "theta").unwrap();
                th.bytes[..4].copy_from_slice(&f32::NAN.to_le_bytes());
            }),
            "theta",
        ),
        (
            "θ as 2-D",
            &sgd,
            edit_model(|t| {
                let th = t.iter_mut().find(|s| s.name == "theta").unwrap();
                let n = th.shape[0];
                th.shape = vec![1, n];
            }),
            "theta",
        ),
        (
            "θ in f64 for an f32 run",
            &sgd,
            edit_model(|t| {
                let th = t.iter_mut().find(|s| s.name == "theta").unwrap();
                th.bytes = th
                    .bytes
                    .chunks_exact(4)
                    .flat_map(|c| (f32::from_le_bytes(c.try_into().unwrap()) as f64).to_le_bytes())
                    .collect();
                th.dtype = Dtype::F64;
            }),
            "precision",
        ),
        (
            "no θ",
            &sgd,
            edit_model(|t| t.retain(|s| s.name != "theta")),
            "theta",
        ),
        (
            "momentum buffer missing",
            &sgd,
            edit_state(|t| t.retain(|s| s.name != "optimizer.first")),
            "optimizer.first",
        ),
        (
            "momentum buffer short",
            &sgd,
            edit_state(|t| {
                let m = t.iter_mut().find(|s| s.name == "optimizer.first").unwrap();
                m.bytes.truncate(8);
                m.shape = vec![2];
            }),
            "optimizer.first",
        ),
        (
            "a second moment SGD has not",
            &sgd,
            edit_state(|t| {
                t.push(Stored {
                    name: "optimizer.second".into(),
                    dtype: Dtype::F32,
                    shape: vec![2],
                    bytes: f32_bytes(&[1.0, 2.0]),
                })
            }),
            "optimizer.second",
        ),
        (
            "an unknown tensor",
            &sgd,
            edit_state(|t| {
                t.push(Stored {
                    name: "mystery".into(),
                    dtype: Dtype::F32,
                    shape: vec![1],
                    bytes: f32_bytes(&[1.0]),
                })
            }),
            "mystery",
        ),
        (
            "sampler null",
            &sgd,
            edit_json(|v| v["sampler"] = serde_json::Value::Null),
            "sampler",
        ),
        (
            "sampler index out of range",
            &sgd,
            edit_json(|v| v["sampler"]["perm"][0] = 100000.into()),
            "sampler",
        ),
        (
            "sampler position past the data",
            &sgd,
            edit_json(|v| v["sampler"]["pos"] = 100000.into()),
            "sampler",
        ),
        (
            "optimizer count off",
            &sgd,
            edit_json(|v| v["optimizer_t"] = 3.into()),
            "optimizer.t",
        ),
        (
            "step unlike the folder",
            &sgd,
            edit_json(|v| v["step"] = 12.into()),
            "state.json",
        ),
        (
            "state.json not JSON",
            &sgd,
            write("checkpoints/step-0000010/state.json", "{"),
            "state.json",
        ),
        (
            "model.safetensors garbage",
            &sgd,
            write("checkpoints/step-0000010/model.safetensors", "garbage"),
            "model.safetensors",
        ),
        (
            "state.safetensors garbage",
            &sgd,
            write("checkpoints/step-0000010/state.safetensors", "\u{1}\u{0}"),
            "state.safetensors",
        ),
        (
            "latest escapes the run",
            &sgd,
            write("checkpoints/latest", "../../other"),
            "latest",
        ),
        (
            "latest absolute",
            &sgd,
            write("checkpoints/latest", "/tmp"),
            "latest",
        ),
        (
            "latest names nothing",
            &sgd,
            write("checkpoints/latest", "step-0999999"),
            "latest",
        ),
        (
            "config.toml corrupt",
            &sgd,
            write("config.toml", "steps = = 1"),
            "config.toml",
        ),
        (
            "low-rank vectors 1-D",
            &lowrank,
            edit_state(|t| {
                let v = t.iter_mut().find(|s| s.name == "noise.vectors").unwrap();
                v.shape = vec![v.shape[0] * v.shape[1]];
            }),
            "noise.vectors",
        ),
        (
            "low-rank vectors of another D",
            &lowrank,
            edit_state(|t| {
                let v = t.iter_mut().find(|s| s.name == "noise.vectors").unwrap();
                v.bytes.truncate(v.shape[0] * 4 * 5);
                v.shape[1] = 5;
            }),
            "noise.vectors",
        ),
        (
            "low-rank vectors missing",
            &lowrank,
            edit_state(|t| t.retain(|s| s.name != "noise.vectors")),
            "noise.vectors",
        ),
        (
            "a sampler for a dynamic without one",
            &lowrank,
            edit_json(|v| {
                v["sampler"] =
                    serde_json::json!({"seed": 1, "word_pos": 0, "perm": [], "pos": 0, "epoch": 0})
            }),
            "sampler",
        ),
    ];
    for (i, (name, source, breaker, needle)) in cases.into_iter().enumerate() {
        let run = root.join(format!("case-{i}"));
        copy_dir(source, &run);
        breaker(&run);
        fails_naming(name, &["--quiet", "train", "--resume", path(&run)], needle);
    }
    // --resume keeps the run's settings: only the length may change.
    for (set, needle) in [
        ("optimizer.lr=0.5", "optimizer.lr"),
        ("model.widths.1=32", "model.widths"),
        ("noise.dynamic=\"gd\"", "noise.dynamic"),
    ] {
        fails_naming(
            set,
            &["--quiet", "train", "--resume", path(&sgd), "--set", set],
            needle,
        );
    }
    // A length shorter than the last checkpoint is refused before config.toml changes.
    let short = root.join("short");
    copy_dir(&sgd, &short);
    fails_naming(
        "--set steps below the checkpoint",
        &[
            "--quiet",
            "train",
            "--resume",
            path(&short),
            "--set",
            "steps=5",
        ],
        "shorter than the run's last checkpoint (step 10)",
    );
    let saved = std::fs::read_to_string(short.join("config.toml")).unwrap();
    assert!(saved.contains("steps = 20"), "{saved}");
    // A run with a summary but no checkpoint is not started over: its metrics stay.
    let bare = root.join("bare");
    copy_dir(&sgd, &bare);
    std::fs::remove_dir_all(bare.join("checkpoints")).unwrap();
    let metrics = std::fs::read(bare.join("metrics.jsonl")).unwrap();
    assert!(!metrics.is_empty());
    fails_naming(
        "summary without checkpoints",
        &["--quiet", "train", "--resume", path(&bare)],
        "no checkpoint to continue from",
    );
    assert_eq!(std::fs::read(bare.join("metrics.jsonl")).unwrap(), metrics);
    fails_naming(
        "resume of a folder that is no run",
        &["train", "--resume", path(root)],
        "config.toml",
    );
    // probe: θ of another length, θ with NaN, a probe that does not exist.
    let long = root.join("probe-long");
    copy_dir(&sgd, &long);
    edit_model(|t| {
        let th = t.iter_mut().find(|s| s.name == "theta").unwrap();
        th.bytes.extend(f32_bytes(&[0.0; 7]));
        th.shape[0] += 7;
    })(&long);
    fails_naming(
        "probe θ too long",
        &[
            "--quiet",
            "probe",
            "--run",
            path(&long),
            "--probes",
            "spectrum",
        ],
        "θ has",
    );
    let nan = root.join("probe-nan");
    copy_dir(&sgd, &nan);
    edit_model(|t| {
        let th = t.iter_mut().find(|s| s.name == "theta").unwrap();
        th.bytes[..4].copy_from_slice(&f32::INFINITY.to_le_bytes());
    })(&nan);
    fails_naming(
        "probe θ with ∞",
        &[
            "--quiet",
            "probe",
            "--run",
            path(&nan),
            "--probes",
            "spectrum",
        ],
        "NaN or infinite",
    );
    fails_naming(
        "probe at a step without a checkpoint",
        &[
            "--quiet",
            "probe",
            "--run",
            path(&sgd),
            "--step",
            "999999",
            "--probes",
            "spectrum",
        ],
        "no checkpoint at step 999999 (kept:",
    );
    fails_naming(
        "probe direction without θ₀",
        &[
            "--quiet",
            "probe",
            "--run",
            path(&sgd),
            "--probes",
            "direction",
        ],
        "has no θ₀",
    );
    fails_naming(
        "probe unknown",
        &["--quiet", "probe", "--run", path(&sgd), "--probes", "bogus"],
        "direction",
    );
    fails_naming(
        "probe top_k > D",
        &[
            "--quiet",
            "probe",
            "--run",
            path(&sgd),
            "--probes",
            "spectrum",
            "--set",
            "probes.top_k=1000000",
        ],
        "probes.top_k",
    );
    fails_naming(
        "probe with another seed (other random labels)",
        &[
            "--quiet",
            "probe",
            "--run",
            path(&sgd),
            "--probes",
            "spectrum",
            "--set",
            "seed=1",
        ],
        "only probes.*",
    );
}

/// Copies the bundled Fashion-MNIST sample into `dir/fashion-mnist-small`, then lets `f`
/// replace one of its files.
fn broken_dataset(dir: &Path, file: &str, contents: &[u8]) {
    let src = common::repo().join("datasets/fashion-mnist-small");
    let dest = dir.join("fashion-mnist-small");
    copy_dir(&src, &dest);
    std::fs::write(dest.join(file), contents).unwrap();
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn idx_images(n: usize, rows: usize, cols: usize) -> Vec<u8> {
    let mut b = vec![0, 0, 8, 3];
    for d in [n, rows, cols] {
        b.extend((d as u32).to_be_bytes());
    }
    b.extend(vec![7u8; n * rows * cols]);
    b
}

#[test]
fn broken_datasets_are_named_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let train = |dir: &Path| {
        noisescope(&[
            "--quiet",
            "--data-dir",
            path(dir),
            "train",
            "--config",
            "configs/quickstart.toml",
            "--out",
            path(&dir.join("run")),
            "--set",
            "steps=1",
        ])
    };
    // Images of 16×49 have 784 pixels but are not Fashion-MNIST's 28×28.
    let odd = tmp.path().join("odd");
    broken_dataset(
        &odd,
        "train-images-idx3-ubyte.gz",
        &gzip(&idx_images(2000, 16, 49)),
    );
    let err = failure(&train(&odd));
    assert!(
        err.contains("28×28") && err.contains("train-images"),
        "{err}"
    );
    // A small gzip that inflates far past the registry's size stops at it.
    let bomb = tmp.path().join("bomb");
    broken_dataset(
        &bomb,
        "train-images-idx3-ubyte.gz",
        &gzip(&vec![0u8; 64 << 20]),
    );
    let err = failure(&train(&bomb));
    assert!(
        err.contains("exceed") && err.contains("train-images"),
        "{err}"
    );
    // Labels cut short, and labels out of range.
    let short = tmp.path().join("short");
    broken_dataset(
        &short,
        "train-labels-idx1-ubyte.gz",
        &gzip(&[0, 0, 8, 1, 0, 0, 7, 208, 1, 2]),
    );
    let err = failure(&train(&short));
    assert!(err.contains("train-labels"), "{err}");
    let mut labels = vec![0, 0, 8, 1, 0, 0, 7, 208];
    labels.extend(vec![11u8; 2000]);
    let range = tmp.path().join("range");
    broken_dataset(&range, "train-labels-idx1-ubyte.gz", &gzip(&labels));
    let err = failure(&train(&range));
    assert!(err.contains("train-labels"), "{err}");
}

/// `noisescope … | head`: a reader that closes the pipe ends the process quietly (SIGPIPE's
/// default action), not with a panic in println!.
#[cfg(unix)]
#[test]
fn a_closed_stdout_pipe_is_no_panic() {
    use std::process::{Command, Stdio};
    let mut child = Command::new(env!("CARGO_BIN_EXE_noisescope"))
        .args(["data", "list"])
        .current_dir(common::repo())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Closed before the binary has started up, so its first line meets a closed pipe.
    drop(child.stdout.take());
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!err.contains("panicked"), "{err}");
}
