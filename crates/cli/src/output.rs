//! How commands talk to the user: progress bars on stderr (hidden by `--quiet` or when stderr
//! is not a terminal), results on stdout as text or JSON.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Every progress bar of the binary is made here: hidden under `--quiet`, one look.
fn styled(bar: ProgressBar, quiet: bool, template: &str, label: &str) -> ProgressBar {
    if quiet {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    bar.set_style(
        ProgressStyle::with_template(template)
            .expect("static template")
            .progress_chars("=> "),
    );
    bar.set_message(label.to_string());
    bar
}

/// A byte-count progress bar (a spinner when the total is unknown).
pub fn bytes_bar(quiet: bool, total: Option<u64>, label: &str) -> ProgressBar {
    let bar = match total {
        Some(t) => ProgressBar::new(t),
        None => ProgressBar::new_spinner(),
    };
    styled(
        bar,
        quiet,
        "{msg:32} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        label,
    )
}

/// A step-count progress bar at `done` of `total` steps, with the label in a column of
/// `width` characters.
pub fn steps_bar(quiet: bool, total: u64, done: u64, width: usize, label: &str) -> ProgressBar {
    let bar = styled(
        ProgressBar::new(total),
        quiet,
        &format!("{{msg:{width}}} [{{bar:30}}] {{pos}}/{{len}} steps {{per_sec}} eta {{eta}}"),
        label,
    );
    bar.set_position(done);
    bar
}

/// A counter of finished rows for work of unknown length (`bench`), labelled `what`.
pub fn rows_counter(quiet: bool, what: &str) -> ProgressBar {
    styled(
        ProgressBar::new(0),
        quiet,
        &format!("{what} {{pos}} rows {{elapsed}} {{msg}}"),
        "",
    )
}

/// A spinner for work of unknown length, ticking on its own.
pub fn spinner(quiet: bool, label: &str) -> ProgressBar {
    let bar = styled(ProgressBar::new_spinner(), quiet, "{spinner} {msg}", label);
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    bar
}

/// Prints a JSON value on stdout.
pub fn print_json(value: &serde_json::Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).expect("a Value always serializes")
    );
}

/// Prints the units not finished (for `collect` and a combining process), one line each.
pub fn print_unfinished(
    tally: &serde_json::Value,
    states: &[(String, noisescope_runs::units::UnitState)],
) {
    println!(
        "units finished: {} of {}",
        tally["finished"], tally["total"]
    );
    for (name, s) in states {
        match s {
            noisescope_runs::units::UnitState::Missing => println!("  missing: {name}"),
            noisescope_runs::units::UnitState::Failed(e) => {
                let first = e.lines().next().unwrap_or("");
                println!("  failed: {name}: {first}");
            }
            noisescope_runs::units::UnitState::Started => {
                println!("  unfinished: {name} (started)")
            }
            s if !s.finished() => println!("  unfinished: {name} ({})", s.status()),
            _ => {}
        }
    }
}
