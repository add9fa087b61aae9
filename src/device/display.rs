//! Displays: `png:DIR` (headless, renders to PNG files), and with feature
//! `pi` an SSD1306 OLED over I²C and ST7789/ILI9341 panels over SPI.

use std::path::PathBuf;

use anyhow::{Result, bail};

use super::screen::{ColorFb, MonoFb, Screen, draw_color, draw_mono};
use super::{check_opts, split_opts};

pub trait Display {
    fn name(&self) -> String;
    fn show(&mut self, screen: &Screen) -> Result<()>;
    /// Blank the screen (on exit).
    fn clear(&mut self) -> Result<()>;
}

/// Opens a `--display` spec.
pub fn open(spec: &str) -> Result<Box<dyn Display>> {
    let (kind, rest) = spec.split_once(':').unwrap_or((spec, ""));
    match kind {
        "png" => Ok(Box::new(PngDisplay::parse(rest)?)),
        "oled" | "ssd1306" | "st7789" | "ili9341" => open_pi(kind, rest),
        _ => bail!(
            "--display {spec:?}: expected png:DIR[,oled|color][,size=WxH][,scale=N][,latest], \
             oled[:bus=1,addr=0x3c], st7789[:dc=25,rst=27,...] or ili9341[:...]"
        ),
    }
}

#[cfg(feature = "pi")]
fn open_pi(kind: &str, rest: &str) -> Result<Box<dyn Display>> {
    super::pi::open_display(kind, rest)
}

#[cfg(not(feature = "pi"))]
fn open_pi(kind: &str, _: &str) -> Result<Box<dyn Display>> {
    bail!(
        "{kind}: this edgetune was built without the `pi` feature (cargo build --features pi); try png:DIR"
    )
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PngLayout {
    /// 128×64 monochrome, as the SSD1306.
    Oled,
    /// RGB565 colour panel of this size.
    Color(u32, u32),
}

/// Renders each screen to `DIR/screen-000001.png` (or `DIR/screen.png`
/// with `latest`), written atomically so a viewer never sees half a file.
pub struct PngDisplay {
    pub dir: PathBuf,
    pub layout: PngLayout,
    /// Integer upscaling, so a 128×64 screen is readable in a README.
    pub scale: u32,
    pub latest_only: bool,
    seq: u64,
    pub last_path: Option<PathBuf>,
}

impl PngDisplay {
    pub fn new(dir: impl Into<PathBuf>, layout: PngLayout) -> Self {
        PngDisplay {
            dir: dir.into(),
            layout,
            scale: 1,
            latest_only: false,
            seq: 0,
            last_path: None,
        }
    }

    /// `DIR[,oled|color][,size=WxH][,scale=N][,latest]`.
    pub fn parse(s: &str) -> Result<PngDisplay> {
        let (pos, opts) = split_opts(s);
        check_opts(s, &opts, &["size", "scale"])?;
        let Some(dir) = pos.first().filter(|d| !d.is_empty()) else {
            bail!("png:{s}: expected png:DIR, e.g. png:out/");
        };
        let mut layout = PngLayout::Oled;
        let mut latest = false;
        for p in &pos[1..] {
            match p.as_str() {
                "oled" | "mono" => layout = PngLayout::Oled,
                "color" | "colour" => layout = PngLayout::Color(240, 240),
                "latest" => latest = true,
                o => bail!("png:{s}: unknown flag {o:?} (oled, color, latest)"),
            }
        }
        if let Some(sz) = opts.get("size") {
            let parsed = sz
                .split_once('x')
                .and_then(|(w, h)| Some((w.parse().ok()?, h.parse().ok()?)));
            match parsed {
                Some((w, h)) if (64..=1024).contains(&w) && (64..=1024).contains(&h) => {
                    layout = PngLayout::Color(w, h)
                }
                _ => bail!("png:{s}: size={sz}: expected WxH, e.g. 240x240 or 320x240"),
            }
        }
        let scale = match opts.get("scale").map(|v| v.parse::<u32>()) {
            None => 1,
            Some(Ok(n)) if (1..=8).contains(&n) => n,
            _ => bail!("png:{s}: scale is 1-8"),
        };
        let mut d = PngDisplay::new(dir.as_str(), layout);
        d.scale = scale;
        d.latest_only = latest;
        Ok(d)
    }

    /// Draws into a fresh framebuffer and encodes it as PNG.
    pub fn render(&self, screen: &Screen) -> Result<Vec<u8>> {
        let img = match self.layout {
            PngLayout::Oled => {
                let mut fb = MonoFb::new(128, 64);
                let Ok(()) = draw_mono(&mut fb, screen);
                image::DynamicImage::ImageLuma8(fb.to_image())
            }
            PngLayout::Color(w, h) => {
                let mut fb = ColorFb::new(w, h);
                let Ok(()) = draw_color(&mut fb, screen);
                image::DynamicImage::ImageRgb8(fb.to_image())
            }
        };
        let img = if self.scale > 1 {
            img.resize(
                img.width() * self.scale,
                img.height() * self.scale,
                image::imageops::FilterType::Nearest,
            )
        } else {
            img
        };
        let mut out = std::io::Cursor::new(Vec::new());
        img.write_to(&mut out, image::ImageFormat::Png)?;
        Ok(out.into_inner())
    }
}

impl Display for PngDisplay {
    fn name(&self) -> String {
        format!("png:{}", self.dir.display())
    }

    fn show(&mut self, screen: &Screen) -> Result<()> {
        let bytes = self.render(screen)?;
        self.seq += 1;
        let path = if self.latest_only {
            self.dir.join("screen.png")
        } else {
            self.dir.join(format!("screen-{:06}.png", self.seq))
        };
        crate::atomic::write_atomic(&path, &bytes)?;
        self.last_path = Some(path);
        Ok(())
    }

    /// The PNGs are the record of what was shown: nothing to blank.
    fn clear(&mut self) -> Result<()> {
        Ok(())
    }
}
