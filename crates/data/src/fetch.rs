//! `noisescope data fetch`: downloads a dataset's published files over HTTP(S).
//!
//! Each file streams into a hidden temporary file beside its destination while its sha256 is
//! computed; it is renamed into place only after both checksums (of the `.gz` and of its
//! contents) match the registry. A partial, truncated or corrupt download therefore never
//! passes as good, and a good file already present is kept without a download.

use std::io::{Read, Write};
use std::path::Path;
use std::time::Duration;

use crate::error::{DataError, Result};
use crate::registry::DatasetSpec;
use crate::verify::{VerifyReport, Wrapper, verify_file};

/// Largest file accepted from a server (MNIST's largest is 9.9 MB, Fashion-MNIST's 26 MB).
const MAX_BYTES: u64 = 200 * 1024 * 1024;

/// What `fetch` reports as it goes, for progress bars.
#[derive(Debug)]
pub enum FetchEvent<'a> {
    /// A file is already present and verifies.
    Present {
        /// File name.
        file: &'a str,
    },
    /// A download begins; `total` is the server's Content-Length, if any.
    Start {
        /// File name.
        file: &'a str,
        /// Full URL.
        url: &'a str,
        /// Expected bytes.
        total: Option<u64>,
    },
    /// `bytes` more bytes arrived.
    Progress {
        /// Bytes since the last event.
        bytes: u64,
    },
    /// A mirror failed; the next one is tried.
    MirrorFailed {
        /// Full URL.
        url: &'a str,
        /// Why.
        error: String,
    },
    /// A file was downloaded, verified and moved into place.
    Done {
        /// File name.
        file: &'a str,
    },
}

/// How to fetch.
#[derive(Debug, Clone)]
pub struct FetchOptions {
    /// Base URLs to try instead of the registry's (a local mirror, a test server).
    pub mirrors: Option<Vec<String>>,
    /// Limit for one whole file transfer.
    pub timeout: Duration,
    /// Limit for connecting, for a server that accepted to start answering, and for any
    /// silence while it sends (a stalled mirror fails after it, not after `timeout`).
    pub idle: Duration,
}

impl Default for FetchOptions {
    fn default() -> Self {
        FetchOptions {
            mirrors: None,
            timeout: Duration::from_secs(600),
            idle: Duration::from_secs(30),
        }
    }
}

/// Downloads every file of `spec` that `dest` lacks (or holds corrupt) and verifies the set.
///
/// # Errors
/// [`DataError::Download`] naming the file and what each mirror answered when no mirror
/// delivers a good copy; [`DataError::Invalid`] for a dataset with nothing to fetch.
pub fn fetch(
    spec: &DatasetSpec,
    dest: &Path,
    opts: &FetchOptions,
    on_event: &mut dyn FnMut(FetchEvent),
) -> Result<VerifyReport> {
    let mirrors: Vec<String> = match &opts.mirrors {
        Some(m) => m.clone(),
        None => spec.mirrors.iter().map(|s| s.to_string()).collect(),
    };
    if mirrors.is_empty() {
        return Err(DataError::invalid(
            "fetch",
            format!(
                "'{}' is bundled with noisescope and has no download mirror",
                spec.name
            ),
        ));
    }
    std::fs::create_dir_all(dest).map_err(|e| DataError::io(dest, e))?;
    remove_partial_downloads(dest)?;
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(opts.timeout))
        .timeout_connect(Some(opts.idle))
        .timeout_per_read(Some(opts.idle))
        .timeout_recv_response(Some(opts.idle))
        .build()
        .into();

    for f in &spec.files {
        let target = dest.join(f.file_name);
        if target.is_file() && verify_file(spec, f, &target, false).is_ok() {
            on_event(FetchEvent::Present { file: f.file_name });
            continue;
        }
        let mut failures = Vec::new();
        let mut fetched = false;
        for base in &mirrors {
            let url = join_url(base, f.file_name);
            // Removed on drop, so a failed attempt leaves nothing behind.
            let tmp = tempfile::Builder::new()
                .prefix(&format!(".{}.", f.file_name))
                .suffix(".part")
                .tempfile_in(dest)
                .map_err(|e| DataError::io(dest, e))?;
            let outcome =
                download(&agent, &url, tmp.path(), f.file_name, on_event).and_then(|()| {
                    let report = verify_file(spec, f, tmp.path(), false)?;
                    if report.wrapper == Wrapper::Uncompressed {
                        return Err(DataError::invalid(
                            "download",
                            "server sent an uncompressed file",
                        ));
                    }
                    Ok(())
                });
            match outcome {
                Ok(()) => {
                    tmp.persist(&target)
                        .map_err(|e| DataError::io(&target, e.error))?;
                    on_event(FetchEvent::Done { file: f.file_name });
                    fetched = true;
                    break;
                }
                Err(e) => {
                    let msg = e
                        .to_string()
                        .replace(&tmp.path().display().to_string(), "download");
                    on_event(FetchEvent::MirrorFailed {
                        url: &url,
                        error: msg.clone(),
                    });
                    failures.push(format!("{url}: {msg}"));
                }
            }
        }
        if !fetched {
            return Err(DataError::Download {
                file: f.file_name.to_string(),
                detail: format!(
                    "no mirror delivered a good copy:\n  {}",
                    failures.join("\n  ")
                ),
            });
        }
    }
    crate::verify::verify(spec, dest, false)
}

/// Removes the `.part` files that a killed download left in `dest`.
fn remove_partial_downloads(dest: &Path) -> Result<()> {
    let entries = std::fs::read_dir(dest).map_err(|e| DataError::io(dest, e))?;
    for e in entries.filter_map(|e| e.ok()) {
        let name = e.file_name().to_string_lossy().to_string();
        if name.starts_with('.') && name.ends_with(".part") && e.path().is_file() {
            std::fs::remove_file(e.path()).map_err(|err| DataError::io(e.path(), err))?;
        }
    }
    Ok(())
}

fn join_url(base: &str, file: &str) -> String {
    if base.ends_with('/') {
        format!("{base}{file}")
    } else {
        format!("{base}/{file}")
    }
}

/// Streams `url` into `tmp`.
fn download(
    agent: &ureq::Agent,
    url: &str,
    tmp: &Path,
    file: &str,
    on_event: &mut dyn FnMut(FetchEvent),
) -> Result<()> {
    let net = |e: ureq::Error| DataError::Download {
        file: file.to_string(),
        detail: e.to_string(),
    };
    let mut resp = agent.get(url).call().map_err(net)?;
    let total = resp.body().content_length();
    on_event(FetchEvent::Start { file, url, total });
    let mut reader = resp.body_mut().with_config().limit(MAX_BYTES).reader();
    let mut out = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(tmp)
        .map_err(|e| DataError::io(tmp, e))?;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = reader.read(&mut buf).map_err(|e| DataError::Download {
            file: file.to_string(),
            detail: format!("{url}: {e}"),
        })?;
        if n == 0 {
            break;
        }
        out.write_all(&buf[..n])
            .map_err(|e| DataError::io(tmp, e))?;
        on_event(FetchEvent::Progress { bytes: n as u64 });
    }
    out.sync_all().map_err(|e| DataError::io(tmp, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::FASHION_MNIST_SMALL;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    /// A loopback HTTP server with three trees: `/good/` serves the bundled files, `/trunc/`
    /// each cut to a third, `/corrupt/` each with one byte flipped; anything else is a 404.
    struct Server {
        base: String,
        stop: Arc<AtomicBool>,
        handle: Option<std::thread::JoinHandle<()>>,
    }

    impl Server {
        fn start() -> Server {
            let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
            let base = format!("http://{}", server.server_addr().to_ip().unwrap());
            let stop = Arc::new(AtomicBool::new(false));
            let stop2 = stop.clone();
            let root = crate::locate::checkout_datasets().join("fashion-mnist-small");
            let handle = std::thread::spawn(move || {
                while !stop2.load(Ordering::Relaxed) {
                    let Ok(Some(req)) = server.recv_timeout(Duration::from_millis(50)) else {
                        continue;
                    };
                    let url = req.url().to_string();
                    let mut parts = url.trim_start_matches('/').splitn(2, '/');
                    let (tree, name) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
                    let body = std::fs::read(root.join(name))
                        .ok()
                        .and_then(|mut b| match tree {
                            "good" => Some(b),
                            "trunc" => {
                                b.truncate(b.len() / 3);
                                Some(b)
                            }
                            "corrupt" => {
                                let mid = b.len() / 2;
                                b[mid] ^= 0xff;
                                Some(b)
                            }
                            _ => None,
                        });
                    let _ = match body {
                        Some(b) => req.respond(tiny_http::Response::from_data(b)),
                        None => req.respond(tiny_http::Response::empty(404)),
                    };
                }
            });
            Server {
                base,
                stop,
                handle: Some(handle),
            }
        }

        fn mirror(&self, tree: &str) -> String {
            format!("{}/{tree}/", self.base)
        }
    }

    impl Drop for Server {
        fn drop(&mut self) {
            self.stop.store(true, Ordering::Relaxed);
            if let Some(h) = self.handle.take() {
                let _ = h.join();
            }
        }
    }

    fn opts(mirrors: Vec<String>) -> FetchOptions {
        FetchOptions {
            mirrors: Some(mirrors),
            timeout: Duration::from_secs(30),
            idle: Duration::from_secs(2),
        }
    }

    fn leftovers(dir: &Path) -> Vec<String> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn good_mirror_fetches_and_verifies_then_skips() {
        let srv = Server::start();
        let dest = tempfile::tempdir().unwrap();
        let mut done = 0;
        let report = fetch(
            &FASHION_MNIST_SMALL,
            dest.path(),
            &opts(vec![srv.mirror("good")]),
            &mut |e| {
                if let FetchEvent::Done { .. } = e {
                    done += 1
                }
            },
        )
        .unwrap();
        assert_eq!(done, 4);
        assert_eq!(report.files.len(), 4);
        let mut present = 0;
        fetch(
            &FASHION_MNIST_SMALL,
            dest.path(),
            &opts(vec![srv.mirror("missing")]),
            &mut |e| {
                if let FetchEvent::Present { .. } = e {
                    present += 1
                }
            },
        )
        .unwrap();
        assert_eq!(present, 4);
        assert_eq!(leftovers(dest.path()).len(), 4);
    }

    #[test]
    fn truncated_download_never_lands() {
        let srv = Server::start();
        let dest = tempfile::tempdir().unwrap();
        let err = fetch(
            &FASHION_MNIST_SMALL,
            dest.path(),
            &opts(vec![srv.mirror("trunc")]),
            &mut |_| {},
        )
        .unwrap_err();
        assert!(matches!(err, DataError::Download { .. }), "{err}");
        assert!(
            err.to_string().contains("train-images-idx3-ubyte.gz"),
            "{err}"
        );
        assert!(
            leftovers(dest.path()).is_empty(),
            "{:?}",
            leftovers(dest.path())
        );
    }

    #[test]
    fn corrupt_mirror_falls_through_to_good_one() {
        let srv = Server::start();
        let dest = tempfile::tempdir().unwrap();
        let mut failed = 0;
        fetch(
            &FASHION_MNIST_SMALL,
            dest.path(),
            &opts(vec![srv.mirror("corrupt"), srv.mirror("good")]),
            &mut |e| {
                if let FetchEvent::MirrorFailed { .. } = e {
                    failed += 1
                }
            },
        )
        .unwrap();
        assert_eq!(failed, 4);
        assert_eq!(leftovers(dest.path()).len(), 4);
    }

    #[test]
    fn corrupt_existing_file_is_replaced() {
        let srv = Server::start();
        let dest = tempfile::tempdir().unwrap();
        let target = dest.path().join(FASHION_MNIST_SMALL.files[2].file_name);
        std::fs::write(&target, b"garbage").unwrap();
        fetch(
            &FASHION_MNIST_SMALL,
            dest.path(),
            &opts(vec![srv.mirror("good")]),
            &mut |_| {},
        )
        .unwrap();
        assert!(std::fs::metadata(&target).unwrap().len() > 1000);
    }

    #[test]
    fn a_stalled_mirror_fails_after_the_idle_limit_and_leaves_nothing() {
        // Accepts connections and never answers.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let held = std::thread::spawn(move || {
            let mut open = Vec::new();
            for c in listener.incoming().take(4) {
                open.push(c);
            }
            std::thread::sleep(Duration::from_secs(3));
        });
        let dest = tempfile::tempdir().unwrap();
        // A .part that a killed download left is removed too.
        std::fs::write(
            dest.path().join(".train-images-idx3-ubyte.gz.x.part"),
            b"xx",
        )
        .unwrap();
        let start = std::time::Instant::now();
        let err = fetch(
            &FASHION_MNIST_SMALL,
            dest.path(),
            &opts(vec![format!("http://{addr}/")]),
            &mut |_| {},
        )
        .unwrap_err();
        assert!(matches!(err, DataError::Download { .. }), "{err}");
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "waited {:?}",
            start.elapsed()
        );
        assert!(
            leftovers(dest.path()).is_empty(),
            "{:?}",
            leftovers(dest.path())
        );
        drop(held);
    }

    #[test]
    fn http_error_and_refused_connection_are_reported() {
        let srv = Server::start();
        let dest = tempfile::tempdir().unwrap();
        let err = fetch(
            &FASHION_MNIST_SMALL,
            dest.path(),
            &opts(vec![srv.mirror("nope")]),
            &mut |_| {},
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("404"), "{err}");
        // Port 9 (discard) on loopback: nothing listens, the connection is refused.
        let err = fetch(
            &FASHION_MNIST_SMALL,
            dest.path(),
            &opts(vec!["http://127.0.0.1:9/".into()]),
            &mut |_| {},
        )
        .unwrap_err();
        assert!(matches!(err, DataError::Download { .. }), "{err}");
    }

    #[test]
    fn bundled_registry_entry_has_nothing_to_fetch() {
        let dest = tempfile::tempdir().unwrap();
        let err = fetch(
            &FASHION_MNIST_SMALL,
            dest.path(),
            &FetchOptions::default(),
            &mut |_| {},
        )
        .unwrap_err();
        assert!(err.to_string().contains("bundled"), "{err}");
    }
}
