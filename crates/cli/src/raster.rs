//! PNG copies of the SVG figures, at print resolution, for papers and slides.
//!
//! The SVG is drawn once (plotters) and rasterised here with resvg rather than drawn a second
//! time through plotters' bitmap backend: one drawing code path, so the PNG is the SVG
//! pixel for pixel, at any scale, and its text is set in a bundled font (DejaVu Sans,
//! `assets/fonts/`, with its license) so no machine's fonts change it.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use anyhow::{Context, Result, anyhow};
use noisescope_runs::rundir::write_atomic;
use resvg::{tiny_skia, usvg};

/// Pixels per SVG pixel: SVG user units are 1/96 inch, so 300 dpi.
pub const SCALE: f32 = 300.0 / 96.0;

/// The bundled font, as every generic family.
fn fonts() -> Arc<usvg::fontdb::Database> {
    static DB: OnceLock<Arc<usvg::fontdb::Database>> = OnceLock::new();
    DB.get_or_init(|| {
        let mut db = usvg::fontdb::Database::new();
        db.load_font_data(include_bytes!("../assets/fonts/DejaVuSans.ttf").to_vec());
        let family = "DejaVu Sans";
        db.set_sans_serif_family(family);
        db.set_serif_family(family);
        db.set_monospace_family(family);
        db.set_cursive_family(family);
        db.set_fantasy_family(family);
        Arc::new(db)
    })
    .clone()
}

/// Renders `svg` to PNG bytes at `scale` pixels per SVG pixel, on white.
pub fn render(svg: &[u8], scale: f32) -> Result<Vec<u8>> {
    let opt = usvg::Options {
        font_family: "DejaVu Sans".into(),
        fontdb: fonts(),
        ..usvg::Options::default()
    };
    let tree = usvg::Tree::from_data(svg, &opt).context("reading the SVG")?;
    let size = tree.size();
    let (w, h) = (
        (size.width() * scale).ceil() as u32,
        (size.height() * scale).ceil() as u32,
    );
    let mut pixmap =
        tiny_skia::Pixmap::new(w, h).ok_or_else(|| anyhow!("a {w}×{h} image is too large"))?;
    pixmap.fill(tiny_skia::Color::WHITE);
    resvg::render(
        &tree,
        tiny_skia::Transform::from_scale(scale, scale),
        &mut pixmap.as_mut(),
    );
    pixmap.encode_png().context("encoding the PNG")
}

/// Writes the PNG of `svg` (the contents of the figure `path`) beside it, as `path` with the
/// extension `png`; returns its path.
pub fn write_png(path: &Path, svg: &[u8]) -> Result<PathBuf> {
    let png = render(svg, SCALE).with_context(|| format!("rendering {}", path.display()))?;
    let out = path.with_extension("png");
    write_atomic(&out, &png)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The pixel at (x, y) of a decoded PNG, as RGBA.
    fn pixel(png: &[u8], x: u32, y: u32) -> [u8; 4] {
        let p = tiny_skia::Pixmap::decode_png(png).unwrap();
        let c = p.pixel(x, y).unwrap().demultiply();
        [c.red(), c.green(), c.blue(), c.alpha()]
    }

    #[test]
    fn shapes_land_where_the_svg_puts_them_at_the_chosen_scale() {
        let svg = br##"<svg width="40" height="20" xmlns="http://www.w3.org/2000/svg">
            <rect x="20" y="0" width="20" height="20" fill="#FF0000"/></svg>"##;
        let png = render(svg, 2.0).unwrap();
        let p = tiny_skia::Pixmap::decode_png(&png).unwrap();
        assert_eq!((p.width(), p.height()), (80, 40));
        assert_eq!(pixel(&png, 10, 10), [255, 255, 255, 255], "background");
        assert_eq!(pixel(&png, 60, 30), [255, 0, 0, 255], "the rectangle");
    }

    #[test]
    fn text_is_set_in_the_bundled_font() {
        // Greek and math signs as the figures use them; a missing font draws nothing.
        let svg = r##"<svg width="200" height="40" xmlns="http://www.w3.org/2000/svg">
            <text x="5" y="30" font-family="sans-serif" font-size="28">λ Σ θ ± ≤</text></svg>"##;
        let png = render(svg.as_bytes(), 1.0).unwrap();
        let p = tiny_skia::Pixmap::decode_png(&png).unwrap();
        let dark = p.pixels().iter().filter(|c| c.red() < 128).count();
        assert!(
            dark > 200,
            "only {dark} dark pixels: the text was not drawn"
        );
    }

    #[test]
    fn a_file_that_is_not_svg_is_an_error_naming_it() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("bad.svg");
        let e = write_png(&p, b"not svg").unwrap_err();
        assert!(format!("{e:#}").contains("bad.svg"), "{e:#}");
    }
}
