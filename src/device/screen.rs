//! What the screens show, drawn with embedded-graphics into any
//! `DrawTarget`: the same code paints the OLED, the SPI colour panel and the
//! headless PNG framebuffers.

use std::convert::Infallible;

use embedded_graphics::mono_font::MonoTextStyle;
use embedded_graphics::mono_font::ascii::{FONT_6X10, FONT_10X20};
use embedded_graphics::pixelcolor::{BinaryColor, Rgb565, Rgb888};
use embedded_graphics::prelude::*;
use embedded_graphics::primitives::{PrimitiveStyle, Rectangle};
use embedded_graphics::text::{Alignment, Baseline, Text, TextStyleBuilder};
use image::RgbImage;

/// One screen's content.
#[derive(Debug, Clone)]
pub enum Screen<'a> {
    /// A classification.
    Result {
        label: &'a str,
        /// Probability of the winning class (also when it is below the
        /// threshold and `label` is "unknown").
        confidence: f32,
        latency_ms: f64,
        thumb: Option<&'a RgbImage>,
    },
    /// `capture` progress.
    Capture {
        label: &'a str,
        done: u32,
        total: Option<u32>,
        thumb: Option<&'a RgbImage>,
    },
    /// Status text (starting, camera error).
    Message(&'a str),
}

fn fit(s: &str, max_chars: usize) -> String {
    if s.chars().count() <= max_chars {
        s.to_string()
    } else {
        s.chars()
            .take(max_chars.saturating_sub(1))
            .chain(['~'])
            .collect()
    }
}

fn bar<D: DrawTarget>(
    d: &mut D,
    area: Rectangle,
    frac: f32,
    fg: D::Color,
    frame: D::Color,
) -> Result<(), D::Error> {
    area.into_styled(PrimitiveStyle::with_stroke(frame, 1))
        .draw(d)?;
    let inner = area.offset(-2);
    let w = (inner.size.width as f32 * frac.clamp(0.0, 1.0)).round() as u32;
    if w > 0 {
        Rectangle::new(inner.top_left, Size::new(w, inner.size.height))
            .into_styled(PrimitiveStyle::with_fill(fg))
            .draw(d)?;
    }
    Ok(())
}

/// The 128×64 monochrome layout (SSD1306): label in a large font, a
/// confidence bar, percent and latency.
pub fn draw_mono<D: DrawTarget<Color = BinaryColor>>(
    d: &mut D,
    s: &Screen,
) -> Result<(), D::Error> {
    d.clear(BinaryColor::Off)?;
    let big = MonoTextStyle::new(&FONT_10X20, BinaryColor::On);
    let small = MonoTextStyle::new(&FONT_6X10, BinaryColor::On);
    let right = TextStyleBuilder::new()
        .alignment(Alignment::Right)
        .baseline(Baseline::Top)
        .build();
    let w = d.bounding_box().size.width as i32;
    match s {
        Screen::Result {
            label,
            confidence,
            latency_ms,
            ..
        } => {
            Text::with_baseline(&fit(label, 12), Point::new(2, 0), big, Baseline::Top).draw(d)?;
            bar(
                d,
                Rectangle::new(Point::new(0, 24), Size::new(w as u32, 14)),
                *confidence,
                BinaryColor::On,
                BinaryColor::On,
            )?;
            Text::with_baseline(
                &format!("{:.0}%", confidence * 100.0),
                Point::new(2, 44),
                small,
                Baseline::Top,
            )
            .draw(d)?;
            Text::with_text_style(
                &format!("{latency_ms:.0} ms"),
                Point::new(w - 2, 44),
                small,
                right,
            )
            .draw(d)?;
            Text::with_baseline("edgetune", Point::new(2, 54), small, Baseline::Top).draw(d)?;
        }
        Screen::Capture {
            label, done, total, ..
        } => {
            Text::with_baseline(&fit(label, 12), Point::new(2, 0), big, Baseline::Top).draw(d)?;
            let frac = total.map_or(1.0, |t| *done as f32 / t.max(1) as f32);
            bar(
                d,
                Rectangle::new(Point::new(0, 24), Size::new(w as u32, 14)),
                frac,
                BinaryColor::On,
                BinaryColor::On,
            )?;
            let n = match total {
                Some(t) => format!("photo {done}/{t}"),
                None => format!("photo {done}"),
            };
            Text::with_baseline(&n, Point::new(2, 44), small, Baseline::Top).draw(d)?;
            Text::with_baseline("capture", Point::new(2, 54), small, Baseline::Top).draw(d)?;
        }
        Screen::Message(m) => {
            for (i, line) in m.lines().take(6).enumerate() {
                Text::with_baseline(
                    &fit(line, 21),
                    Point::new(0, i as i32 * 10),
                    small,
                    Baseline::Top,
                )
                .draw(d)?;
            }
        }
    }
    Ok(())
}

fn rgb(c: [u8; 3]) -> Rgb565 {
    Rgb565::from(Rgb888::new(c[0], c[1], c[2]))
}

/// Draws `img` scaled to fit `area` (nearest neighbour: a preview only).
fn thumb<D: DrawTarget<Color = Rgb565>>(
    d: &mut D,
    img: &RgbImage,
    area: Rectangle,
) -> Result<(), D::Error> {
    let (iw, ih) = img.dimensions();
    if iw == 0 || ih == 0 {
        return Ok(());
    }
    let scale = (area.size.width as f32 / iw as f32).min(area.size.height as f32 / ih as f32);
    let (w, h) = (
        ((iw as f32 * scale) as u32).max(1),
        ((ih as f32 * scale) as u32).max(1),
    );
    let small = image::imageops::resize(img, w, h, image::imageops::FilterType::Triangle);
    let x0 = area.top_left.x + (area.size.width - w) as i32 / 2;
    let target = Rectangle::new(Point::new(x0, area.top_left.y), Size::new(w, h));
    d.fill_contiguous(&target, small.pixels().map(|p| rgb(p.0)))
}

/// The colour layout (ST7789 240×240, ILI9341 320×240): label, a
/// thumbnail of the frame, a coloured confidence bar, latency.
pub fn draw_color<D: DrawTarget<Color = Rgb565>>(d: &mut D, s: &Screen) -> Result<(), D::Error> {
    d.clear(Rgb565::BLACK)?;
    let size = d.bounding_box().size;
    let (w, h) = (size.width as i32, size.height as i32);
    let small = MonoTextStyle::new(&FONT_6X10, Rgb565::WHITE);
    let right = TextStyleBuilder::new()
        .alignment(Alignment::Right)
        .baseline(Baseline::Top)
        .build();
    let chars = (w as usize - 8) / 10;
    let (title, frac, thumb_img, colour, line) = match s {
        Screen::Result {
            label,
            confidence,
            latency_ms,
            thumb,
        } => {
            let colour = if *label == "unknown" {
                Rgb565::new(20, 20, 10) // gray
            } else if *confidence >= 0.8 {
                Rgb565::GREEN
            } else {
                Rgb565::YELLOW
            };
            (
                label.to_string(),
                *confidence,
                *thumb,
                colour,
                (
                    format!("{:.1}%", confidence * 100.0),
                    format!("{latency_ms:.0} ms"),
                ),
            )
        }
        Screen::Capture {
            label,
            done,
            total,
            thumb,
        } => {
            let frac = total.map_or(1.0, |t| *done as f32 / t.max(1) as f32);
            let n = total.map_or(format!("photo {done}"), |t| format!("photo {done}/{t}"));
            (
                label.to_string(),
                frac,
                *thumb,
                Rgb565::CYAN,
                (n, "capture".to_string()),
            )
        }
        Screen::Message(m) => {
            for (i, l) in m.lines().take(h as usize / 12).enumerate() {
                Text::with_baseline(
                    &fit(l, w as usize / 6),
                    Point::new(4, 4 + i as i32 * 12),
                    small,
                    Baseline::Top,
                )
                .draw(d)?;
            }
            return Ok(());
        }
    };
    let big = MonoTextStyle::new(&FONT_10X20, colour);
    Text::with_baseline(&fit(&title, chars), Point::new(4, 4), big, Baseline::Top).draw(d)?;
    let bottom = 50; // bar and text
    let thumb_area = Rectangle::new(
        Point::new(4, 30),
        Size::new((w - 8) as u32, (h - 30 - bottom).max(0) as u32),
    );
    if let Some(t) = thumb_img {
        thumb(d, t, thumb_area)?;
    }
    bar(
        d,
        Rectangle::new(Point::new(4, h - 44), Size::new((w - 8) as u32, 18)),
        frac,
        colour,
        Rgb565::WHITE,
    )?;
    Text::with_baseline(&line.0, Point::new(4, h - 20), small, Baseline::Top).draw(d)?;
    Text::with_text_style(&line.1, Point::new(w - 4, h - 20), small, right).draw(d)?;
    Ok(())
}

/// A 1-bit framebuffer the size of the OLED.
pub struct MonoFb {
    pub width: u32,
    pub height: u32,
    pub px: Vec<bool>,
}

impl MonoFb {
    pub fn new(width: u32, height: u32) -> Self {
        MonoFb {
            width,
            height,
            px: vec![false; (width * height) as usize],
        }
    }
    pub fn to_image(&self) -> image::GrayImage {
        image::GrayImage::from_fn(self.width, self.height, |x, y| {
            image::Luma([if self.px[(y * self.width + x) as usize] {
                255
            } else {
                0
            }])
        })
    }
}

impl OriginDimensions for MonoFb {
    fn size(&self) -> Size {
        Size::new(self.width, self.height)
    }
}

impl DrawTarget for MonoFb {
    type Color = BinaryColor;
    type Error = Infallible;
    fn draw_iter<I: IntoIterator<Item = Pixel<BinaryColor>>>(
        &mut self,
        pixels: I,
    ) -> Result<(), Infallible> {
        for Pixel(p, c) in pixels {
            if p.x >= 0 && p.y >= 0 && (p.x as u32) < self.width && (p.y as u32) < self.height {
                self.px[(p.y as u32 * self.width + p.x as u32) as usize] = c.is_on();
            }
        }
        Ok(())
    }
}

/// An RGB565 framebuffer the size of the colour panel.
pub struct ColorFb {
    pub width: u32,
    pub height: u32,
    pub px: Vec<Rgb565>,
}

impl ColorFb {
    pub fn new(width: u32, height: u32) -> Self {
        ColorFb {
            width,
            height,
            px: vec![Rgb565::BLACK; (width * height) as usize],
        }
    }
    pub fn to_image(&self) -> RgbImage {
        RgbImage::from_fn(self.width, self.height, |x, y| {
            let c = Rgb888::from(self.px[(y * self.width + x) as usize]);
            image::Rgb([c.r(), c.g(), c.b()])
        })
    }
}

impl OriginDimensions for ColorFb {
    fn size(&self) -> Size {
        Size::new(self.width, self.height)
    }
}

impl DrawTarget for ColorFb {
    type Color = Rgb565;
    type Error = Infallible;
    fn draw_iter<I: IntoIterator<Item = Pixel<Rgb565>>>(
        &mut self,
        pixels: I,
    ) -> Result<(), Infallible> {
        for Pixel(p, c) in pixels {
            if p.x >= 0 && p.y >= 0 && (p.x as u32) < self.width && (p.y as u32) < self.height {
                self.px[(p.y as u32 * self.width + p.x as u32) as usize] = c;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mono_result_draws_label_and_bar() {
        let mut fb = MonoFb::new(128, 64);
        let s = Screen::Result {
            label: "bees",
            confidence: 0.5,
            latency_ms: 42.0,
            thumb: None,
        };
        draw_mono(&mut fb, &s).unwrap();
        let lit = |x0: u32, x1: u32, y0: u32, y1: u32| {
            (y0..y1)
                .flat_map(|y| (x0..x1).map(move |x| (x, y)))
                .filter(|&(x, y)| fb.px[(y * 128 + x) as usize])
                .count()
        };
        assert!(lit(0, 60, 0, 20) > 20, "label text");
        // the bar is half full: left inside lit, right inside dark
        assert!(lit(2, 60, 26, 36) > 500);
        assert_eq!(lit(70, 126, 26, 36), 0);
    }
}
