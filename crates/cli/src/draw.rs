//! Drawing primitives: figures as SVG (plotters' SVG backend needs no system fonts), each with
//! a PNG copy at print resolution beside it (raster.rs): curves per dynamic, panels of curves
//! and measured points, bar charts, and the 2-D toy's trajectories over its loss landscape.
//! Each experiment's figure recipe sits with its command; `plot_cmd.rs` redraws them.

use std::path::Path;

use anyhow::{Result, anyhow};
use noisescope_runs::rundir::{RunDir, write_atomic};
use plotters::coord::Shift;
use plotters::prelude::*;

/// One curve.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct Series {
    pub name: String,
    /// A curve breaks at non-finite values (stored as null in JSON).
    #[serde(with = "nullable")]
    pub points: Vec<(f64, f64)>,
    /// Colour index (default: the series' position).
    pub color: Option<usize>,
    /// Dashed instead of solid.
    pub dashed: bool,
}

impl Series {
    /// A solid curve in the colour of its position.
    pub fn new(name: impl Into<String>, points: Vec<(f64, f64)>) -> Self {
        Series {
            name: name.into(),
            points,
            color: None,
            dashed: false,
        }
    }
}

/// Figure data as JSON: JSON has no NaN, and a closed form that diverges is NaN on a curve,
/// so non-finite numbers are written as null and read back as NaN.
mod nullable {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    fn opt(x: f64) -> Option<f64> {
        x.is_finite().then_some(x)
    }

    pub fn serialize<S: Serializer>(v: &[(f64, f64)], s: S) -> Result<S::Ok, S::Error> {
        v.iter()
            .map(|&(a, b)| (opt(a), opt(b)))
            .collect::<Vec<_>>()
            .serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<(f64, f64)>, D::Error> {
        let v: Vec<(Option<f64>, Option<f64>)> = Vec::deserialize(d)?;
        Ok(v.into_iter()
            .map(|(a, b)| (a.unwrap_or(f64::NAN), b.unwrap_or(f64::NAN)))
            .collect())
    }
}

fn color(i: usize) -> RGBColor {
    const C: [RGBColor; 10] = [
        RGBColor(31, 119, 180),
        RGBColor(255, 127, 14),
        RGBColor(44, 160, 44),
        RGBColor(214, 39, 40),
        RGBColor(148, 103, 189),
        RGBColor(140, 86, 75),
        RGBColor(227, 119, 194),
        RGBColor(127, 127, 127),
        RGBColor(188, 189, 34),
        RGBColor(23, 190, 207),
    ];
    C[i % C.len()]
}

fn err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow!("drawing a figure: {e:?}")
}

fn bounds(series: &[Series], log_y: bool) -> Option<((f64, f64), (f64, f64))> {
    let pts = series
        .iter()
        .flat_map(|s| s.points.iter())
        .filter(|(x, y)| x.is_finite() && y.is_finite() && (!log_y || *y > 0.0));
    let (mut x0, mut x1, mut y0, mut y1) = (
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::INFINITY,
        f64::NEG_INFINITY,
    );
    for &(x, y) in pts {
        x0 = x0.min(x);
        x1 = x1.max(x);
        y0 = y0.min(y);
        y1 = y1.max(y);
    }
    if !x0.is_finite() {
        return None;
    }
    if x1 <= x0 {
        x1 = x0 + 1.0;
    }
    if y1 <= y0 {
        y1 = y0 + y0.abs().max(1e-12);
    }
    if !log_y {
        let pad = 0.05 * (y1 - y0);
        y0 -= pad;
        y1 += pad;
    }
    Some(((x0, x1), (y0, y1)))
}

/// Draws a figure of `size` pixels with `draw` (on a white background) and writes it as the
/// SVG `path` and its PNG copy beside it, both atomically, from the one drawing in memory.
fn figure(
    path: &Path,
    size: (u32, u32),
    draw: impl FnOnce(&DrawingArea<SVGBackend<'_>, Shift>) -> Result<()>,
) -> Result<()> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        draw(&root)?;
        root.present().map_err(err)?;
    }
    write_atomic(path, svg.as_bytes())?;
    crate::raster::write_png(path, svg.as_bytes())?;
    Ok(())
}

/// Several panels side by side, one line per series in each: `(title, y label, log y, series)`.
pub fn line_panels(
    path: &Path,
    x_label: &str,
    panels: &[(&str, &str, bool, Vec<Series>)],
) -> Result<()> {
    let w = 560 * panels.len() as u32;
    figure(path, (w, 440), |root| {
        let areas = root.split_evenly((1, panels.len()));
        for (area, (title, y_label, log_y, series)) in areas.iter().zip(panels) {
            let Some(((x0, x1), (y0, y1))) = bounds(series, *log_y) else {
                continue;
            };
            let mut b = ChartBuilder::on(area);
            b.caption(*title, ("sans-serif", 18))
                .margin(12)
                .x_label_area_size(36)
                .y_label_area_size(70);
            macro_rules! draw {
                ($chart:expr) => {{
                    let mut chart = $chart;
                    chart
                        .configure_mesh()
                        .x_desc(x_label)
                        .y_desc(*y_label)
                        .x_label_formatter(&tick)
                        .y_label_formatter(&tick)
                        .draw()
                        .map_err(err)?;
                    for (i, s) in series.iter().enumerate() {
                        let c = color(s.color.unwrap_or(i));
                        let pts: Vec<(f64, f64)> = s
                            .points
                            .iter()
                            .copied()
                            .filter(|(x, y)| {
                                x.is_finite() && y.is_finite() && (!*log_y || *y > 0.0)
                            })
                            .collect();
                        let drawn = if s.dashed {
                            chart.draw_series(DashedLineSeries::new(pts, 6, 4, c.stroke_width(2)))
                        } else {
                            chart.draw_series(LineSeries::new(pts, c.stroke_width(2)))
                        };
                        let dashed = s.dashed;
                        drawn
                            .map_err(err)?
                            .label(s.name.clone())
                            .legend(move |(x, y)| {
                                let end = if dashed { x + 8 } else { x + 18 };
                                PathElement::new(vec![(x, y), (end, y)], c.stroke_width(2))
                            });
                    }
                    chart
                        .configure_series_labels()
                        .background_style(WHITE.mix(0.85))
                        .border_style(BLACK)
                        .position(SeriesLabelPosition::UpperRight)
                        .draw()
                        .map_err(err)?;
                }};
            }
            if *log_y {
                let (yb, yl) = log_ticks(y0, y1);
                draw!(
                    b.build_cartesian_2d(
                        x0..x1,
                        (y0..y1)
                            .log_scale()
                            .with_key_points(yb)
                            .with_light_points(yl)
                    )
                    .map_err(err)?
                );
            } else {
                draw!(b.build_cartesian_2d(x0..x1, y0..y1).map_err(err)?);
            }
        }
        Ok(())
    })
}

/// A bar chart of one value per label.
pub fn bars(path: &Path, title: &str, y_label: &str, items: &[(String, f64)]) -> Result<()> {
    figure(path, (640, 420), |root| {
        let top = items
            .iter()
            .map(|(_, v)| *v)
            .fold(0f64, f64::max)
            .max(1e-12)
            * 1.1;
        let n = items.len();
        let mut chart = ChartBuilder::on(root)
            .caption(title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d((0..n).into_segmented(), 0.0..top)
            .map_err(err)?;
        let labels: Vec<String> = items.iter().map(|(l, _)| l.clone()).collect();
        chart
            .configure_mesh()
            .y_desc(y_label)
            .x_labels(n)
            .x_label_formatter(&|x| match x {
                SegmentValue::CenterOf(i) => labels.get(*i).cloned().unwrap_or_default(),
                _ => String::new(),
            })
            .draw()
            .map_err(err)?;
        chart
            .draw_series(items.iter().enumerate().map(|(i, (_, v))| {
                let mut r = Rectangle::new(
                    [
                        (SegmentValue::Exact(i), 0.0),
                        (SegmentValue::Exact(i + 1), *v),
                    ],
                    color(i).filled(),
                );
                r.set_margin(0, 0, 12, 12);
                r
            }))
            .map_err(err)?;
        Ok(())
    })
}

/// Zhu et al.'s toy potential at data point x = 0 (the landscape the trajectories cross).
fn toy_loss(w0: f64, w1: f64) -> f64 {
    let (k1, k2) = (
        std::f64::consts::FRAC_PI_4.cos(),
        std::f64::consts::FRAC_PI_4.sin(),
    );
    let (a, b, c, d) = (w0 - 1.0, w1 - 1.0, w0 + 1.0, w1 + 1.0);
    (10.0 * (k1 * a - k2 * b).powi(2) + 100.0 * (k1 * a + k2 * b).powi(2)).min(c * c + d * d)
}

/// One trajectory per dynamic over the toy's loss landscape (shaded by log(1 + ℓ)), in two
/// panels: the whole path (a frame holding [-2, 2]² and every trajectory) and a zoom on the
/// sharp minimum at (1, 1), where the dynamics that do not escape overlap. The widest
/// trajectories are drawn first, so that the ones that stay near the minimum lie on top, and
/// each ends in a dot.
pub fn toy_trajectories(path: &Path, trajectories: &[Series]) -> Result<()> {
    let finite = |&&(x, y): &&(f64, f64)| x.is_finite() && y.is_finite();
    let (mut lo, mut hi) = (-2.0f64, 2.0f64);
    for &(x, y) in trajectories
        .iter()
        .flat_map(|s| s.points.iter().filter(finite))
    {
        lo = lo.min(x.min(y));
        hi = hi.max(x.max(y));
    }
    // A square frame with a margin, so that the landscape is not stretched (the toy's own
    // square if a path ran off to where the frame's width overflows).
    let pad = 0.03 * (hi - lo);
    let whole = if (hi - lo + 2.0 * pad).is_finite() {
        (lo - pad, hi + pad)
    } else {
        (-2.0, 2.0)
    };
    let extent = |s: &Series| {
        let (mut a, mut b) = (
            (f64::INFINITY, f64::INFINITY),
            (f64::NEG_INFINITY, f64::NEG_INFINITY),
        );
        for &(x, y) in s.points.iter().filter(finite) {
            a = (a.0.min(x), a.1.min(y));
            b = (b.0.max(x), b.1.max(y));
        }
        // The longer side: a path along one axis is wide too.
        (b.0 - a.0).max(b.1 - a.1).max(0.0)
    };
    let mut order: Vec<usize> = (0..trajectories.len()).collect();
    order.sort_by(|&i, &j| extent(&trajectories[j]).total_cmp(&extent(&trajectories[i])));
    let top = (1.0 + toy_loss(2.0, -2.0)).ln();
    figure(path, (1180, 560), |root| {
        let areas = root.split_evenly((1, 2));
        let panels = [
            ("2-D toy: one trajectory per dynamic", whole, 2, true),
            ("near the sharp minimum (1, 1)", (0.6, 1.4), 1, false),
        ];
        for (area, &(title, (lo, hi), width, legend)) in areas.iter().zip(&panels) {
            let mut chart = ChartBuilder::on(area)
                .caption(title, ("sans-serif", 18))
                .margin(12)
                .x_label_area_size(36)
                .y_label_area_size(46)
                .build_cartesian_2d(lo..hi, lo..hi)
                .map_err(err)?;
            chart
                .configure_mesh()
                .x_desc("w0")
                .y_desc("w1")
                .x_label_formatter(&tick)
                .y_label_formatter(&tick)
                .disable_mesh()
                .draw()
                .map_err(err)?;
            let cells = 48;
            let step = (hi - lo) / cells as f64;
            chart
                .draw_series(
                    (0..cells)
                        .flat_map(|i| (0..cells).map(move |j| (i, j)))
                        .map(|(i, j)| {
                            let (x, y) = (lo + i as f64 * step, lo + j as f64 * step);
                            let v = ((1.0 + toy_loss(x + step / 2.0, y + step / 2.0)).ln() / top)
                                .min(1.0);
                            let g = (255.0 * (1.0 - 0.75 * v)) as u8;
                            Rectangle::new(
                                [(x, y), (x + step, y + step)],
                                RGBColor(g, g, 255).filled(),
                            )
                        }),
                )
                .map_err(err)?;
            let inside = |&(x, y): &(f64, f64)| x >= lo && x <= hi && y >= lo && y <= hi;
            let mut placed = Vec::new();
            for &i in &order {
                let s = &trajectories[i];
                let c = color(i + 1);
                let pts: Vec<(f64, f64)> = s.points.iter().filter(finite).copied().collect();
                placed.extend(
                    pts.iter()
                        .filter(|p| inside(p))
                        .map(|&(x, y)| ((x - lo) / (hi - lo), (y - lo) / (hi - lo))),
                );
                // plotters moves points outside the frame onto its border, which would draw
                // lines along the edges: draw the runs of points inside the frame instead.
                let mut pieces: Vec<Vec<(f64, f64)>> = vec![vec![]];
                for p in &pts {
                    if inside(p) {
                        pieces.last_mut().expect("non-empty").push(*p);
                    } else if !pieces.last().expect("non-empty").is_empty() {
                        pieces.push(vec![]);
                    }
                }
                for (j, piece) in pieces.into_iter().filter(|q| !q.is_empty()).enumerate() {
                    let drawn = chart
                        .draw_series(LineSeries::new(piece, c.stroke_width(width)))
                        .map_err(err)?;
                    if legend && j == 0 {
                        drawn.label(s.name.clone()).legend(move |(x, y)| {
                            PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(2))
                        });
                    }
                }
                if let Some(&end) = pts.last().filter(|p| inside(p)) {
                    chart
                        .draw_series(std::iter::once(Circle::new(end, 4, c.filled())))
                        .map_err(err)?;
                }
            }
            if legend {
                let at = emptiest_corner(
                    &placed,
                    &[
                        SeriesLabelPosition::LowerRight,
                        SeriesLabelPosition::UpperLeft,
                        SeriesLabelPosition::LowerLeft,
                        SeriesLabelPosition::UpperRight,
                    ],
                );
                chart
                    .configure_series_labels()
                    .background_style(WHITE.mix(0.85))
                    .border_style(BLACK)
                    .position(at)
                    .draw()
                    .map_err(err)?;
            }
        }
        Ok(())
    })
}

/// (step, value) of `key` (a top-level metric, or `probes.<name>`) from a run's metrics.
pub fn metric_series(dir: &Path, key: &str) -> Result<Vec<(f64, f64)>> {
    let rd = RunDir::at(dir);
    Ok(rd
        .metrics()?
        .iter()
        .filter_map(|m| {
            let v = match key.strip_prefix("probes.") {
                Some(p) => &m["probes"][p],
                None => &m[key],
            };
            Some((m["step"].as_f64()?, v.as_f64()?))
        })
        .collect())
}

/// Measured points with standard errors (drawn as markers with ±1 s.e. bars).
#[derive(serde::Serialize, serde::Deserialize)]
pub struct Points {
    pub name: String,
    /// (x, y, standard error of y).
    pub points: Vec<(f64, f64, f64)>,
    pub color: Option<usize>,
}

/// One panel of a theory-against-measurement figure: closed-form curves, measured points
/// with error bars, and vertical marks (divergence boundaries, transitions).
#[derive(serde::Serialize, serde::Deserialize)]
pub struct Panel {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub log_x: bool,
    pub log_y: bool,
    pub curves: Vec<Series>,
    pub points: Vec<Points>,
    pub vlines: Vec<f64>,
    /// Shift the i-th set of points by i·jitter along x, so that sets at the same x stay
    /// apart.
    pub jitter: f64,
    /// Prefer the lower right corner for the legend to the upper left (the corner holding
    /// the fewest curve points and markers is taken; this breaks ties).
    pub legend_low: bool,
    /// A categorical x axis: its positions, consecutive integers (1, 2, …), and their names
    /// (ticks only there, a half step of room at either end). Empty: a numeric axis.
    #[serde(default)]
    pub x_ticks: Vec<(f64, String)>,
}

/// The corner of a panel whose legend box (the outer 45% of the width by 35% of the height)
/// covers the fewest of `points`, given as fractions of the plot area (0 at the left and
/// bottom); ties go to the first of `order`.
fn emptiest_corner(points: &[(f64, f64)], order: &[SeriesLabelPosition]) -> SeriesLabelPosition {
    let covered = |c: &SeriesLabelPosition| {
        let (left, upper) = match c {
            SeriesLabelPosition::UpperLeft => (true, true),
            SeriesLabelPosition::UpperRight => (false, true),
            SeriesLabelPosition::LowerLeft => (true, false),
            _ => (false, false),
        };
        points
            .iter()
            .filter(|&&(u, v)| {
                (if left { u <= 0.45 } else { u >= 0.55 })
                    && (if upper { v >= 0.65 } else { v <= 0.35 })
            })
            .count()
    };
    order
        .iter()
        .min_by_key(|c| covered(c))
        .cloned()
        .unwrap_or(SeriesLabelPosition::UpperLeft)
}

/// A tick label: plain for moderate magnitudes, scientific otherwise.
fn tick(v: &f64) -> String {
    let a = v.abs();
    // Grid values that should be 0 come out as ±1e-17 from the axis arithmetic.
    if a < 1e-12 {
        "0".into()
    } else if !(1e-3..1e4).contains(&a) {
        // Three significant digits at most, so that close ticks (1e-4, 1.2e-4) stay apart.
        let t = format!("{v:.2e}");
        match t.split_once('e') {
            Some((m, e)) if m.contains('.') => {
                format!("{}e{e}", m.trim_end_matches('0').trim_end_matches('.'))
            }
            _ => t,
        }
    } else {
        let s = format!("{v:.4}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// A log axis's labelled ticks and its unlabelled grid lines within [lo, hi]: labels at 1, 2
/// and 5 × 10^k and grid lines at the other digits (over more than four decades labels at 10^k
/// only, every few decades past twelve); where that labels fewer than two, every
/// digit is labelled; where even that is fewer than two (a range inside one step, such as
/// 0.85–0.95), evenly spaced round values. plotters' own choice labels every grid line, which
/// runs labels together at the top of a decade ("700800900"), or can label a single value.
fn log_ticks(lo: f64, hi: f64) -> (Vec<f64>, Vec<f64>) {
    if !(lo > 0.0 && hi > lo && hi.is_finite()) {
        return (vec![], vec![]);
    }
    // d × 10^k, divided rather than multiplied for k < 0 so that 3 × 10⁻¹ is 0.3 exactly.
    let at = |d: i32, k: i32| {
        if k >= 0 {
            d as f64 * 10f64.powi(k)
        } else {
            d as f64 / 10f64.powi(-k)
        }
    };
    let (k0, k1) = (lo.log10().floor() as i32, hi.log10().ceil() as i32);
    // Over many decades three labels a decade crowd: 10^k only, then every few decades.
    let decades = k1 - k0;
    let every = (decades / 8).max(1);
    let (mut bold, mut light) = (Vec::new(), Vec::new());
    for k in k0..=k1 {
        for d in 1..=9 {
            let v = at(d, k);
            if v < lo || v > hi {
                continue;
            }
            let labelled = if decades > 4 {
                d == 1 && (k - k0) % every == 0
            } else {
                [1, 2, 5].contains(&d)
            };
            if labelled {
                bold.push(v);
            } else if decades <= 12 {
                light.push(v);
            }
        }
    }
    if bold.len() >= 2 {
        return (bold, light);
    }
    bold.append(&mut light);
    bold.sort_by(f64::total_cmp);
    if bold.len() >= 2 {
        return (bold, light);
    }
    // About four round steps across the range.
    let rough = (hi - lo) / 4.0;
    let e = 10f64.powf(rough.log10().floor());
    let step = e * [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .find(|m| m * e >= rough)
        .unwrap_or(10.0);
    let first = (lo / step).ceil() as i64;
    let last = (hi / step).floor() as i64;
    ((first..=last).map(|i| i as f64 * step).collect(), vec![])
}

/// Theory curves against measured points, up to three panels a row.
pub fn comparison(path: &Path, panels: &[Panel]) -> Result<()> {
    let cols = panels.len().clamp(1, 3);
    let rows = panels.len().div_ceil(cols).max(1);
    figure(path, (600 * cols as u32, 460 * rows as u32), |root| {
        let areas = root.split_evenly((rows, cols));
        for (area, p) in areas.iter().zip(panels) {
            // Bounds from curves and points (with their error bars), on the plotted scales.
            let mut all: Vec<Series> = p
                .curves
                .iter()
                .map(|s| Series::new("", s.points.clone()))
                .collect();
            for (i, pts) in p.points.iter().enumerate() {
                let shift = p.jitter * i as f64;
                let v = pts
                    .points
                    .iter()
                    .flat_map(|&(x, y, se)| {
                        let x = x + shift;
                        [(x, y - se), (x, y + se), (x, y)]
                    })
                    .collect();
                all.push(Series::new("", v));
            }
            if p.log_x {
                for s in &mut all {
                    s.points.retain(|(x, _)| *x > 0.0);
                }
            }
            let Some(((x0, x1), (y0, y1))) = bounds(&all, p.log_y) else {
                continue;
            };
            let categorical = !p.x_ticks.is_empty() && !p.log_x;
            let (x0, x1) = if p.log_x {
                (x0 / 1.15, x1 * 1.15)
            } else if categorical {
                let (lo, hi) = p
                    .x_ticks
                    .iter()
                    .fold((x0, x1), |(lo, hi), (x, _)| (lo.min(*x), hi.max(*x)));
                (lo - 0.5, hi + 0.5)
            } else {
                let pad = 0.04 * (x1 - x0);
                (x0 - pad, x1 + pad)
            };
            let (y0, y1) = if p.log_y {
                (y0 / 1.3, y1 * 1.3)
            } else {
                (y0, y1)
            };
            let (xb, xl) = log_ticks(x0, x1);
            let (yb, yl) = log_ticks(y0, y1);
            // A categorical axis: plotters' linear ticks, as many as the names and two more
            // (so that its step is 1 between them), named at the names' positions and blank
            // elsewhere. (plotters' key-point coordinates cannot format f64 labels.)
            let x_name = |v: &f64| {
                if !categorical {
                    return tick(v);
                }
                p.x_ticks
                    .iter()
                    .find(|(x, _)| (x - v).abs() < 1e-9)
                    .map(|(_, name)| name.clone())
                    .unwrap_or_default()
            };
            let x_labels = if categorical { p.x_ticks.len() + 2 } else { 10 };
            let mut b = ChartBuilder::on(area);
            b.caption(&p.title, ("sans-serif", 17))
                .margin(12)
                .x_label_area_size(36)
                .y_label_area_size(70);
            let keep = |x: f64, y: f64| {
                x.is_finite() && y.is_finite() && (!p.log_x || x > 0.0) && (!p.log_y || y > 0.0)
            };
            // Where the data sits, as fractions of the plot area on its scales.
            let frac = |v: f64, lo: f64, hi: f64, log: bool| {
                if log {
                    (v.ln() - lo.ln()) / (hi.ln() - lo.ln())
                } else {
                    (v - lo) / (hi - lo)
                }
            };
            let placed: Vec<(f64, f64)> = p
                .curves
                .iter()
                .flat_map(|c| c.points.iter().copied())
                .chain(p.points.iter().enumerate().flat_map(|(i, pts)| {
                    let shift = p.jitter * i as f64;
                    pts.points.iter().map(move |&(x, y, _)| (x + shift, y))
                }))
                .filter(|&(x, y)| keep(x, y))
                .map(|(x, y)| (frac(x, x0, x1, p.log_x), frac(y, y0, y1, p.log_y)))
                .collect();
            let legend_at = emptiest_corner(
                &placed,
                &if p.legend_low {
                    [
                        SeriesLabelPosition::LowerRight,
                        SeriesLabelPosition::UpperLeft,
                        SeriesLabelPosition::UpperRight,
                        SeriesLabelPosition::LowerLeft,
                    ]
                } else {
                    [
                        SeriesLabelPosition::UpperLeft,
                        SeriesLabelPosition::UpperRight,
                        SeriesLabelPosition::LowerRight,
                        SeriesLabelPosition::LowerLeft,
                    ]
                },
            );
            macro_rules! draw {
                ($chart:expr) => {{
                    let mut chart = $chart;
                    chart
                        .configure_mesh()
                        .x_desc(p.x_label.as_str())
                        .y_desc(p.y_label.as_str())
                        .x_labels(x_labels)
                        .x_label_formatter(&x_name)
                        .y_label_formatter(&tick)
                        .draw()
                        .map_err(err)?;
                    for &v in &p.vlines {
                        if v > x0 && v < x1 {
                            chart
                                .draw_series(DashedLineSeries::new(
                                    vec![(v, y0), (v, y1)],
                                    5,
                                    4,
                                    BLACK.mix(0.5).stroke_width(1),
                                ))
                                .map_err(err)?;
                        }
                    }
                    for (i, s) in p.curves.iter().enumerate() {
                        let c = color(s.color.unwrap_or(i));
                        // A curve breaks where the closed form has no value (divergence).
                        let mut pieces: Vec<Vec<(f64, f64)>> = vec![vec![]];
                        for &(x, y) in &s.points {
                            if keep(x, y) {
                                pieces.last_mut().expect("non-empty").push((x, y));
                            } else if !pieces.last().expect("non-empty").is_empty() {
                                pieces.push(vec![]);
                            }
                        }
                        let dashed = s.dashed;
                        for (j, piece) in pieces.into_iter().filter(|q| !q.is_empty()).enumerate() {
                            let drawn = if dashed {
                                chart.draw_series(DashedLineSeries::new(
                                    piece,
                                    6,
                                    4,
                                    c.stroke_width(2),
                                ))
                            } else {
                                chart.draw_series(LineSeries::new(piece, c.stroke_width(2)))
                            }
                            .map_err(err)?;
                            if j == 0 {
                                drawn.label(s.name.clone()).legend(move |(x, y)| {
                                    let end = if dashed { x + 8 } else { x + 18 };
                                    PathElement::new(vec![(x, y), (end, y)], c.stroke_width(2))
                                });
                            }
                        }
                    }
                    for (i, pts) in p.points.iter().enumerate() {
                        let c = color(pts.color.unwrap_or(p.curves.len() + i));
                        let shift = p.jitter * i as f64;
                        let v: Vec<(f64, f64, f64)> = pts
                            .points
                            .iter()
                            .map(|&(x, y, se)| (x + shift, y, se))
                            .filter(|&(x, y, _)| keep(x, y))
                            .collect();
                        chart
                            .draw_series(v.iter().map(|&(x, y, se)| {
                                let lo = if p.log_y && y - se <= 0.0 {
                                    y / 10.0
                                } else {
                                    y - se
                                };
                                ErrorBar::new_vertical(x, lo, y, y + se, c.stroke_width(1), 6)
                            }))
                            .map_err(err)?;
                        let drawn = chart
                            .draw_series(
                                v.iter()
                                    .map(|&(x, y, _)| Circle::new((x, y), 4, c.filled())),
                            )
                            .map_err(err)?;
                        // Unnamed points belong to a curve of the same colour, which has the
                        // legend entry.
                        if !pts.name.is_empty() {
                            drawn
                                .label(pts.name.clone())
                                .legend(move |(x, y)| Circle::new((x + 8, y), 4, c.filled()));
                        }
                    }
                    chart
                        .configure_series_labels()
                        .background_style(WHITE.mix(0.85))
                        .border_style(BLACK)
                        .position(legend_at.clone())
                        .draw()
                        .map_err(err)?;
                }};
            }
            // Log axes get their ticks from `log_ticks`.
            let log_y = || {
                (y0..y1)
                    .log_scale()
                    .with_key_points(yb.clone())
                    .with_light_points(yl.clone())
            };
            let log_x = || {
                (x0..x1)
                    .log_scale()
                    .with_key_points(xb.clone())
                    .with_light_points(xl.clone())
            };
            match (p.log_x, p.log_y) {
                (false, false) => draw!(b.build_cartesian_2d(x0..x1, y0..y1).map_err(err)?),
                (false, true) => draw!(b.build_cartesian_2d(x0..x1, log_y()).map_err(err)?),
                (true, false) => draw!(b.build_cartesian_2d(log_x(), y0..y1).map_err(err)?),
                (true, true) => draw!(b.build_cartesian_2d(log_x(), log_y()).map_err(err)?),
            }
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_near_zero_read_zero() {
        assert_eq!(tick(&-6e-17), "0");
        assert_eq!(tick(&0.25), "0.25");
        assert_eq!(tick(&2e-5), "2e-5");
        // Close ticks outside [1e-3, 1e4) keep the digits that tell them apart.
        assert_eq!(tick(&1.2e-4), "1.2e-4");
        assert_eq!(tick(&1.25e5), "1.25e5");
    }

    #[test]
    fn the_legend_goes_where_the_data_is_not() {
        // Points rising from the lower left to the upper right, with the first ones upper left
        // (a falling start): the lower right is empty.
        let pts = [
            (0.05, 0.9),
            (0.1, 0.8),
            (0.3, 0.5),
            (0.7, 0.7),
            (0.95, 0.95),
        ];
        let order = [
            SeriesLabelPosition::UpperLeft,
            SeriesLabelPosition::UpperRight,
            SeriesLabelPosition::LowerRight,
            SeriesLabelPosition::LowerLeft,
        ];
        assert!(matches!(
            emptiest_corner(&pts, &order),
            SeriesLabelPosition::LowerRight
        ));
        // No points: the first preference.
        assert!(matches!(
            emptiest_corner(&[], &order),
            SeriesLabelPosition::UpperLeft
        ));
    }

    #[test]
    fn log_axes_label_one_two_five_and_grid_the_rest() {
        let (bold, light) = log_ticks(21.7, 920.0);
        assert_eq!(bold, [50.0, 100.0, 200.0, 500.0]);
        assert_eq!(light.first(), Some(&30.0));
        assert_eq!(light.last(), Some(&900.0));
        assert_eq!(light.len(), 6 + 6);
        // Inside one decade with one round label: every digit.
        assert_eq!(log_ticks(0.25, 0.95).0, [0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]);
        // Inside one step: round values about a quarter of the range apart.
        let (bold, light) = log_ticks(0.86, 0.93);
        assert!(light.is_empty());
        assert_eq!(bold.len(), 4, "{bold:?}");
        assert!((bold[0] - 0.86).abs() < 1e-9 && (bold[3] - 0.92).abs() < 1e-9);
        // Many decades: labels at powers of ten only, thinned past twelve decades.
        let (bold, light) = log_ticks(1e-9, 1e0);
        assert_eq!(bold.len(), 10);
        assert_eq!(light.len(), 9 * 8);
        let (bold, _) = log_ticks(1e-300, 1e300);
        assert!(bold.len() <= 10, "{}", bold.len());
        // Degenerate ranges draw no ticks rather than looping or panicking.
        assert_eq!(log_ticks(0.0, 10.0), (vec![], vec![]));
        assert_eq!(log_ticks(5.0, f64::INFINITY), (vec![], vec![]));
    }
}
