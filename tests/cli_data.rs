//! The `noisescope data` commands as a user runs them: exit codes, messages and outputs.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

// The binary runs in the repository root (as a user following the README would), so the
// bundled datasets are found as ./datasets, whatever checkout the data crate was compiled in.
mod common;
use common::{noisescope, repo};

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// Exit 1 with an error message, never a panic (exit 101).
fn assert_clean_failure(o: &Output) -> String {
    let (_, err) = text(o);
    assert_eq!(o.status.code(), Some(1), "stderr: {err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(
        err.starts_with("error: ") || err.contains("\nerror: "),
        "{err}"
    );
    err
}

/// The team's full verified copies, beside the repository (CI lays them there).
fn shared_datasets() -> Option<PathBuf> {
    let p = repo().join("../shared/datasets");
    p.join("mnist").is_dir().then_some(p)
}

#[test]
fn info_on_bundled_default() {
    let o = noisescope(&["data", "info", "fashion-mnist-small", "--json"]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let train = &v["splits"][0];
    assert_eq!(train["samples"], 2000);
    let counts: Vec<u64> = train["class_counts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_u64().unwrap())
        .collect();
    assert_eq!(counts.iter().sum::<u64>(), 2000);
    // The first 2000 Fashion-MNIST images: close to the full set's 0.2860 / 0.3530.
    let (m, s) = (
        train["pixel_mean"].as_f64().unwrap(),
        train["pixel_std"].as_f64().unwrap(),
    );
    assert!(
        (m - 0.286).abs() < 0.01 && (s - 0.353).abs() < 0.01,
        "{m} {s}"
    );
    let o = noisescope(&["data", "info", "fashion-mnist-small"]);
    let (out, _) = text(&o);
    assert!(
        out.contains("Ankle boot") && out.contains("pixel mean"),
        "{out}"
    );
}

#[test]
fn verify_bundled_and_listed() {
    let o = noisescope(&["data", "verify", "mnist-small", "fashion-mnist-small"]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    assert_eq!(out.matches(": ok").count(), 2, "{out}");
    let o = noisescope(&["data", "list"]);
    assert!(text(&o).0.contains("fashion-mnist-small"));
}

#[test]
fn verify_full_datasets_and_every_corruption() {
    let Some(shared) = shared_datasets() else {
        eprintln!("../shared/datasets is absent: full-dataset verification not exercised here");
        return;
    };
    let dir = shared.to_str().unwrap();
    let o = noisescope(&[
        "data",
        "verify",
        "mnist",
        "fashion-mnist",
        "--data-dir",
        dir,
    ]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}{err}");
    assert!(
        out.contains("known re-compression") && out.contains("original .gz"),
        "{out}"
    );

    // One flipped byte in a copy of any file fails verification and names that file. The
    // positions cover the gzip header (time stamp), the deflate stream and the trailer.
    let tmp = tempfile::tempdir().unwrap();
    for name in ["mnist", "fashion-mnist"] {
        let copy = tmp.path().join(name);
        std::fs::create_dir_all(&copy).unwrap();
        let files: Vec<PathBuf> = std::fs::read_dir(shared.join(name))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "gz"))
            .collect();
        assert_eq!(files.len(), 4);
        for f in &files {
            std::fs::copy(f, copy.join(f.file_name().unwrap())).unwrap();
        }
        for (k, f) in files.iter().enumerate() {
            let target = copy.join(f.file_name().unwrap());
            let good = std::fs::read(&target).unwrap();
            let pos = [5, good.len() / 2, good.len() - 3, 20][k % 4];
            let mut bad = good.clone();
            bad[pos] ^= 0x10;
            std::fs::write(&target, &bad).unwrap();
            let o = noisescope(&[
                "data",
                "verify",
                name,
                "--data-dir",
                tmp.path().to_str().unwrap(),
            ]);
            let err = assert_clean_failure(&o);
            assert!(
                err.contains(&target.file_name().unwrap().to_string_lossy().into_owned()),
                "byte {pos} of {}: {err}",
                target.display()
            );
            std::fs::write(&target, &good).unwrap();
        }
    }
}

#[test]
fn truncated_file_is_a_clean_error() {
    let tmp = tempfile::tempdir().unwrap();
    let src = repo().join("datasets/mnist-small");
    let dst = tmp.path().join("mnist-small");
    std::fs::create_dir_all(&dst).unwrap();
    for e in std::fs::read_dir(&src).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "gz") {
            std::fs::copy(&p, dst.join(p.file_name().unwrap())).unwrap();
        }
    }
    let t = dst.join("t10k-images-idx3-ubyte.gz");
    let bytes = std::fs::read(&t).unwrap();
    std::fs::write(&t, &bytes[..bytes.len() / 2]).unwrap();
    let d = tmp.path().to_str().unwrap();
    let err = assert_clean_failure(&noisescope(&[
        "data",
        "verify",
        "mnist-small",
        "--data-dir",
        d,
    ]));
    assert!(err.contains("t10k-images-idx3-ubyte.gz"), "{err}");
    let err = assert_clean_failure(&noisescope(&[
        "data",
        "info",
        "mnist-small",
        "--data-dir",
        d,
    ]));
    assert!(
        err.contains("t10k-images-idx3-ubyte.gz") && err.contains("gzip"),
        "{err}"
    );
}

#[test]
fn usage_errors_are_clean() {
    let err = assert_clean_failure(&noisescope(&["data", "info", "cifar10"]));
    assert!(
        err.contains("unknown dataset 'cifar10'") && err.contains("fashion-mnist"),
        "{err}"
    );
    let err = assert_clean_failure(&noisescope(&[
        "data",
        "info",
        "mnist-small",
        "--device",
        "3",
    ]));
    assert!(err.contains("ndarray backend has one device"), "{err}");
    let tmp = tempfile::tempdir().unwrap();
    // A named dataset that is nowhere: the error lists the folders tried and how to fetch.
    let o = Command::new(env!("CARGO_BIN_EXE_noisescope"))
        .args([
            "data",
            "verify",
            "mnist",
            "--data-dir",
            tmp.path().to_str().unwrap(),
        ])
        .current_dir(tmp.path())
        .env_remove("NOISESCOPE_DATA")
        .output()
        .unwrap();
    if !Path::new("/usr/share/datasets/mnist").exists() && !repo().join("datasets/mnist").exists() {
        let err = assert_clean_failure(&o);
        assert!(err.contains("noisescope data fetch mnist"), "{err}");
    }
}

/// `--backend wgpu`: on a machine with an adapter (lavapipe in CI) the statistics match
/// ndarray's; on one without, a clear error. Asking for a device index that is not there is
/// an error either way.
#[test]
fn wgpu_backend_info_or_clear_error() {
    let o = noisescope(&["data", "info", "mnist-small", "--json", "--backend", "wgpu"]);
    let (out, err) = text(&o);
    if o.status.success() {
        let cpu = noisescope(&["data", "info", "mnist-small", "--json"]);
        let a: serde_json::Value = serde_json::from_str(&out).unwrap();
        let b: serde_json::Value = serde_json::from_str(&text(&cpu).0).unwrap();
        for k in ["pixel_mean", "pixel_std"] {
            let (x, y) = (
                a["splits"][0][k].as_f64().unwrap(),
                b["splits"][0][k].as_f64().unwrap(),
            );
            assert!((x - y).abs() < 1e-5, "{k}: wgpu {x} ndarray {y}");
        }
        assert!(a["device"].as_str().unwrap().starts_with("wgpu 0"));
    } else {
        let err = assert_clean_failure(&o);
        assert!(err.contains("wgpu"), "{err}");
    }
    let _ = err;
    let err = assert_clean_failure(&noisescope(&[
        "data",
        "info",
        "mnist-small",
        "--backend",
        "wgpu",
        "--device",
        "99",
    ]));
    assert!(err.contains("wgpu"), "{err}");
}

/// `data fetch` against a loopback server serving the bundled files: downloads, verifies and
/// lands them; a second run finds them present.
#[test]
fn fetch_from_local_mirror() {
    let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
    let base = format!("http://{}/", server.server_addr().to_ip().unwrap());
    let root = repo().join("datasets/fashion-mnist-small");
    let handle = std::thread::spawn(move || {
        // Four files, then four more requests would be needed only if verification failed.
        for _ in 0..4 {
            let Ok(Some(req)) = server.recv_timeout(std::time::Duration::from_secs(60)) else {
                return;
            };
            let name = req.url().trim_start_matches('/').to_string();
            let _ = match std::fs::read(root.join(&name)) {
                Ok(b) => req.respond(tiny_http::Response::from_data(b)),
                Err(_) => req.respond(tiny_http::Response::empty(404)),
            };
        }
    });
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().to_str().unwrap();
    let o = noisescope(&[
        "data",
        "fetch",
        "fashion-mnist-small",
        "--mirror",
        &base,
        "--data-dir",
        d,
        "-q",
    ]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}{err}");
    assert!(out.contains("fashion-mnist-small: ok"), "{out}");
    handle.join().unwrap();
    assert!(
        tmp.path()
            .join("fashion-mnist-small/t10k-labels-idx1-ubyte.gz")
            .is_file()
    );
    // The mirror is gone now; everything is present, so nothing is downloaded.
    let o = noisescope(&[
        "data",
        "fetch",
        "fashion-mnist-small",
        "--mirror",
        &base,
        "--data-dir",
        d,
    ]);
    let (_, err) = text(&o);
    assert!(o.status.success(), "{err}");
    assert_eq!(err.matches("present and verified").count(), 4, "{err}");
}
