//! Pictures for people: training curves (`train --plot`) and the confusion
//! matrix (`eval --plot`), as SVG or PNG by the file's extension, drawn with
//! plotters. Text needs a TrueType font (for glyphs in PNG, for metrics in
//! SVG): `$EDGETUNE_FONT` or a common system font (DejaVu, Liberation, FreeSans).

use std::path::Path;
use std::sync::OnceLock;

use anyhow::{Context, Result, anyhow, bail};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::head::EpochMetrics;
use crate::metrics::Evaluation;

const FONT_CANDIDATES: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/truetype/freefont/FreeSans.ttf",
];

/// Registers a TrueType font with plotters once.
fn ensure_font() -> Result<()> {
    static FONT: OnceLock<std::result::Result<(), String>> = OnceLock::new();
    FONT.get_or_init(|| {
        let env = std::env::var("EDGETUNE_FONT").ok();
        let candidates = env
            .iter()
            .map(String::as_str)
            .chain(FONT_CANDIDATES.iter().copied());
        for path in candidates {
            if let Ok(bytes) = std::fs::read(path) {
                let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                if plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok() {
                    return Ok(());
                }
            }
        }
        Err(
            "PNG plots need a TrueType font: set EDGETUNE_FONT to a .ttf file \
             (or install fonts-dejavu-core)"
                .to_string(),
        )
    })
    .clone()
    .map_err(|e| anyhow!(e))
}

fn err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow!("drawing failed: {e:?}")
}

/// Two panels: loss and accuracy per epoch, train and validation.
pub fn training_curves(history: &[EpochMetrics], path: &Path) -> Result<()> {
    if history.is_empty() {
        bail!("nothing to plot: no epochs");
    }
    struct Curves<'a>(&'a [EpochMetrics]);
    impl Curves<'_> {
        fn draw<DB: DrawingBackend>(&self, root: DrawingArea<DB, Shift>) -> Result<()> {
            let h = self.0;
            root.fill(&WHITE).map_err(err)?;
            let (left, right) = root.split_horizontally(root.dim_in_pixel().0 / 2);
            let n = h.len() as f32;
            let series = |f: &dyn Fn(&EpochMetrics) -> Option<f32>| -> Vec<(f32, f32)> {
                h.iter()
                    .filter_map(|m| f(m).map(|v| (m.epoch as f32, v)))
                    .collect()
            };
            type Panel<'a, DB> = (
                &'a DrawingArea<DB, Shift>,
                &'a str,
                Vec<(f32, f32)>,
                Vec<(f32, f32)>,
            );
            let panels: [Panel<DB>; 2] = [
                (
                    &left,
                    "loss",
                    series(&|m| Some(m.train_loss)),
                    series(&|m| m.val_loss),
                ),
                (
                    &right,
                    "accuracy",
                    series(&|m| Some(m.train_acc)),
                    series(&|m| m.val_acc),
                ),
            ];
            for (area, title, train, val) in panels {
                let ymax = train.iter().chain(&val).map(|p| p.1).fold(0.0f32, f32::max);
                let ymax = if title == "accuracy" {
                    1.0
                } else {
                    (ymax * 1.1).max(1e-3)
                };
                let mut chart = ChartBuilder::on(area)
                    .caption(title, ("sans-serif", 22))
                    .margin(12)
                    .x_label_area_size(36)
                    .y_label_area_size(48)
                    .build_cartesian_2d(1f32..n.max(2.0), 0f32..ymax)
                    .map_err(err)?;
                chart.configure_mesh().x_desc("epoch").draw().map_err(err)?;
                let blue = RGBColor(31, 119, 180);
                let orange = RGBColor(255, 127, 14);
                chart
                    .draw_series(LineSeries::new(train, blue.stroke_width(2)))
                    .map_err(err)?
                    .label("train")
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], blue));
                if !val.is_empty() {
                    chart
                        .draw_series(LineSeries::new(val, orange.stroke_width(2)))
                        .map_err(err)?
                        .label("validation")
                        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], orange));
                }
                chart
                    .configure_series_labels()
                    .background_style(WHITE.mix(0.8))
                    .border_style(BLACK)
                    .position(if title == "loss" {
                        SeriesLabelPosition::UpperRight
                    } else {
                        SeriesLabelPosition::LowerRight
                    })
                    .draw()
                    .map_err(err)?;
            }
            root.present().map_err(err)?;
            Ok(())
        }
    }
    let c = Curves(history);
    render_with(path, (960, 400), |a| c.draw(a), |a| c.draw(a))
        .with_context(|| format!("{}: cannot write plot", path.display()))
}

/// The confusion matrix as a heat map with counts (rows: true class).
pub fn confusion_matrix(ev: &Evaluation, path: &Path) -> Result<()> {
    struct Matrix<'a>(&'a Evaluation);
    impl Matrix<'_> {
        fn draw<DB: DrawingBackend>(&self, root: DrawingArea<DB, Shift>) -> Result<()> {
            let ev = self.0;
            let n = ev.labels.len();
            root.fill(&WHITE).map_err(err)?;
            let title = format!("confusion matrix (accuracy {:.3})", ev.accuracy);
            let mut chart = ChartBuilder::on(&root)
                .caption(title, ("sans-serif", 20))
                .margin(16)
                .x_label_area_size(40)
                .y_label_area_size(120)
                .build_cartesian_2d((0..n - 1).into_segmented(), (0..n - 1).into_segmented())
                .map_err(err)?;
            let short = |l: &str| -> String {
                if l.chars().count() > 16 {
                    l.chars().take(15).collect::<String>() + "…"
                } else {
                    l.to_string()
                }
            };
            let cols = ev.labels.clone();
            let col_label = move |v: &SegmentValue<usize>| match v {
                SegmentValue::CenterOf(i) => cols.get(*i).map(|l| short(l)).unwrap_or_default(),
                _ => String::new(),
            };
            // the y axis grows upwards: row 0 (the first label) at the top
            let rows = ev.labels.clone();
            let row_label = move |v: &SegmentValue<usize>| match v {
                SegmentValue::CenterOf(i) if *i < n => short(&rows[n - 1 - *i]),
                _ => String::new(),
            };
            chart
                .configure_mesh()
                .disable_mesh()
                .x_desc("predicted")
                .y_desc("true")
                .x_labels(n + 1)
                .y_labels(n + 1)
                .x_label_formatter(&col_label)
                .y_label_formatter(&row_label)
                .draw()
                .map_err(err)?;
            let max = ev
                .confusion
                .iter()
                .flatten()
                .copied()
                .max()
                .unwrap_or(1)
                .max(1) as f64;
            let centered = TextStyle::from(("sans-serif", 20).into_font())
                .pos(Pos::new(HPos::Center, VPos::Center));
            for (t, row) in ev.confusion.iter().enumerate() {
                for (p, &v) in row.iter().enumerate() {
                    let y = n - 1 - t;
                    let shade = v as f64 / max;
                    let color = RGBColor(
                        (255.0 - 200.0 * shade) as u8,
                        (255.0 - 140.0 * shade) as u8,
                        255,
                    );
                    let cell = [
                        (SegmentValue::Exact(p), SegmentValue::Exact(y)),
                        (SegmentValue::Exact(p + 1), SegmentValue::Exact(y + 1)),
                    ];
                    chart
                        .draw_series(std::iter::once(Rectangle::new(cell, color.filled())))
                        .map_err(err)?;
                    let text_color = if shade > 0.6 { WHITE } else { BLACK };
                    chart
                        .draw_series(std::iter::once(Text::new(
                            v.to_string(),
                            (SegmentValue::CenterOf(p), SegmentValue::CenterOf(y)),
                            centered.clone().color(&text_color),
                        )))
                        .map_err(err)?;
                }
            }
            root.present().map_err(err)?;
            Ok(())
        }
    }
    let m = Matrix(ev);
    let side = (220 + 80 * ev.labels.len()).clamp(360, 1400) as u32;
    render_with(path, (side + 100, side), |a| m.draw(a), |a| m.draw(a))
        .with_context(|| format!("{}: cannot write plot", path.display()))
}

fn render_with(
    path: &Path,
    size: (u32, u32),
    svg: impl FnOnce(DrawingArea<SVGBackend, Shift>) -> Result<()>,
    png: impl FnOnce(DrawingArea<BitMapBackend, Shift>) -> Result<()>,
) -> Result<()> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    match ext.as_str() {
        "svg" => {
            ensure_font()?;
            let mut s = String::new();
            svg(SVGBackend::with_string(&mut s, size).into_drawing_area())?;
            crate::atomic::write_atomic(path, s.as_bytes())
        }
        "png" => {
            ensure_font()?;
            let mut buf = vec![0u8; (size.0 * size.1 * 3) as usize];
            png(BitMapBackend::with_buffer(&mut buf, size).into_drawing_area())?;
            let img = image::RgbImage::from_raw(size.0, size.1, buf).expect("buffer size");
            let mut out = std::io::Cursor::new(Vec::new());
            img.write_to(&mut out, image::ImageFormat::Png)?;
            crate::atomic::write_atomic(path, out.get_ref())
        }
        _ => bail!("plot file must end in .png or .svg"),
    }
}
