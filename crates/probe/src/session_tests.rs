//! Tests of the probe session: each probe's report equals the library function it wraps,
//! called on its own, and the report lists exactly the probes that ran.

use crate::config::{AlignmentMethod, Probe, ProbeConfig};
use crate::session::{Anchor, Session};
use crate::testing::*;

fn settings() -> ProbeConfig {
    ProbeConfig {
        top_k: 3,
        lanczos_steps: 30,
        chunk: 7,
        trace_h: TraceMethod::Exact,
        trace_h_sigma: TraceMethod::Exact,
        alignment_method: AlignmentMethod::Gram,
        ..ProbeConfig::default()
    }
}

#[test]
fn each_probe_reports_what_its_function_computes() {
    let p = tanh_mse();
    let cfg = settings();
    let (wd, seed) = (0.01, 5);
    let s = Session::new(&cfg, &p.net, &p.theta, &p.data, wd, seed);
    assert!(s.warm_vectors().is_none(), "no spectrum computed yet");
    let r = s.run(&[
        Probe::Spectrum,
        Probe::Noise,
        Probe::Escape,
        Probe::Sharpness,
    ]);

    let h = Blocked::new(p.hessian(wd).linearized(), cfg.chunk);
    let lc = LanczosConfig {
        k: 3,
        steps: 30,
        seed,
        tol: 0.0,
    };
    let eig = lanczos(&h, lc);
    assert_eq!(r.hessian_top.as_deref(), Some(&eig.values[..]));
    assert_eq!(r.lambda_max, Some(eig.values[0]));

    let noise = GradientNoise::of(&p.net, &p.theta, &p.data);
    assert_eq!(r.trace_sigma, Some(noise.trace()));
    assert_eq!(r.sigma_top, Some(noise.top_k(3, true).values));

    let e = escape_indicator(
        &p.net,
        &p.theta,
        &p.data,
        &noise,
        wd,
        IndicatorConfig {
            trace_h: cfg.trace_h,
            trace_h_sigma: cfg.trace_h_sigma,
            chunk: cfg.chunk,
            seed,
        },
    );
    assert_eq!(r.trace_h_sigma, Some(e.trace_h_sigma));
    assert_eq!(r.escape_ratio, Some(e.ratio));
    assert_eq!(r.trace_h, Some(e.trace_h.value));

    let sh = expected_sharpness(&p.net, &p.theta, &p.data, cfg.sharpness);
    assert_eq!(r.sharpness, Some(sh.expected));
    assert_eq!(r.sharpness_abs_se, Some(sh.absolute_se));

    // Probes that did not run leave their fields out of the serialized report.
    assert!(r.alignment_mu.is_none() && r.density.is_none());
    let keys: Vec<String> = serde_json::to_value(&r)
        .unwrap()
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    assert!(keys.contains(&"escape_ratio".to_string()), "{keys:?}");
    assert!(!keys.iter().any(|k| k.starts_with("alignment")), "{keys:?}");

    // The eigenvectors are kept for the next probe's warm start.
    let w = s.warm_vectors().expect("spectrum ran");
    assert_eq!(w.dims(), [3, p.net.dim()]);
}

#[test]
fn alignment_and_direction_use_the_spectrum_and_the_anchor() {
    let p = relu_ce();
    let cfg = settings();
    let s = Session::new(&cfg, &p.net, &p.theta, &p.data, 0.0, 9);
    let r = s.run(&[Probe::Alignment, Probe::Direction]);
    // The alignment's directional part needs the top eigenvectors: the spectrum comes along.
    assert_eq!(r.hessian_top.as_ref().map(Vec::len), Some(3));
    assert_eq!(r.alignment_top.as_ref().map(Vec::len), Some(3));
    assert_eq!(r.alignment_random.as_ref().map(Vec::len), Some(3));
    let noise = GradientNoise::of(&p.net, &p.theta, &p.data);
    let ggn = p.net.ggn_factors(&p.theta, &p.data);
    let space = SampleSpace::new(&noise, &ggn, p.net.loss(&p.theta, &p.data));
    assert_eq!(r.alignment_mu, Some(average_alignment_gram(&space).mu));
    // Without an anchor the direction probe has no θ₀ and reports nothing.
    assert!(r.direction_sharp_fraction.is_none());

    // Anchored at θ₀ = θ + δ: the decomposition of θ − θ₀ = −δ over θ₀'s eigenvectors.
    let theta0 = p.theta.clone() + 0.01;
    let at0 = Session::new(&cfg, &p.net, &theta0, &p.data, 0.0, 9);
    let anchor = Anchor::at(&at0);
    let r = Session::new(&cfg, &p.net, &p.theta, &p.data, 0.0, 9)
        .anchored(Some(&anchor))
        .run(&[Probe::Direction]);
    let d = escape_decomposition(&anchor.vectors, &(p.theta.clone() - theta0));
    assert_eq!(r.direction_sharp_fraction, Some(d.fraction));
    assert_eq!(r.direction_norm_sq, Some(d.norm_sq));
    assert_eq!(r.direction_anchor_top, Some(anchor.values.clone()));
    assert!(
        r.lambda_max.is_none(),
        "direction alone runs no Lanczos at θ"
    );
}

#[test]
fn a_warm_start_of_the_wrong_shape_is_ignored() {
    let p = tanh_mse();
    let cfg = ProbeConfig {
        warm_start: true,
        ..settings()
    };
    let cold = Session::new(&cfg, &p.net, &p.theta, &p.data, 0.0, 3)
        .top_hessian()
        .values
        .clone();
    let wrong = Tensor::<2>::ones([2, p.net.dim()], (&cpu(), DType::F64));
    let r = Session::new(&cfg, &p.net, &p.theta, &p.data, 0.0, 3)
        .warm_started(Some(&wrong))
        .run(&[Probe::Spectrum]);
    assert_eq!(r.hessian_top, Some(cold));
}
