//! V4L2 webcams through `linuxvideo` (plain ioctls, no libclang needed):
//! MJPEG when the camera offers it, else YUYV converted to RGB.

use std::path::Path;

use anyhow::{Result, anyhow, bail};
use image::{DynamicImage, RgbImage};
use linuxvideo::format::{PixFormat, PixelFormat};
use linuxvideo::stream::ReadStream;
use linuxvideo::{BufType, Device};

use super::frame::{Frame, FrameSource};

pub struct V4l2Source {
    dev: String,
    width: Option<u32>,
    height: Option<u32>,
    /// Opened on first use, and again after a failure (unplugged camera).
    stream: Option<(ReadStream, Negotiated)>,
    count: u64,
}

impl V4l2Source {
    pub fn new(dev: &str, width: Option<u32>, height: Option<u32>) -> Self {
        V4l2Source {
            dev: dev.into(),
            width,
            height,
            stream: None,
            count: 0,
        }
    }

    fn open(&self) -> Result<(ReadStream, Negotiated)> {
        let d = &self.dev;
        let explain = |e: std::io::Error| match e.kind() {
            std::io::ErrorKind::NotFound => {
                anyhow!("{d}: no such camera (is it plugged in? `ls /dev/video*`)")
            }
            std::io::ErrorKind::PermissionDenied => {
                anyhow!("{d}: permission denied: add the user to the `video` group")
            }
            _ if e.raw_os_error() == Some(libc_ebusy()) => {
                anyhow!("{d}: camera busy: another program is using it")
            }
            _ => anyhow!("{d}: {e}"),
        };
        let device = Device::open(Path::new(d)).map_err(explain)?;
        let formats: Vec<PixelFormat> = device
            .formats(BufType::VIDEO_CAPTURE)
            .filter_map(|f| f.ok().map(|f| f.pixel_format()))
            .collect();
        let pf = if formats.contains(&PixelFormat::MJPG) {
            PixelFormat::MJPG
        } else if formats.contains(&PixelFormat::YUYV) {
            PixelFormat::YUYV
        } else {
            bail!("{d}: not a capture device with MJPEG or YUYV frames (formats: {formats:?})");
        };
        let (w, h) = (self.width.unwrap_or(640), self.height.unwrap_or(480));
        let capture = device
            .video_capture(PixFormat::new(w, h, pf))
            .map_err(explain)?;
        let f = capture.format();
        let fmt = Negotiated {
            pf: f.pixel_format(),
            width: f.width(),
            height: f.height(),
            stride: f.bytes_per_line(),
        };
        let stream = capture.into_stream().map_err(explain)?;
        Ok((stream, fmt))
    }
}

/// What the driver agreed to.
#[derive(Clone, Copy)]
struct Negotiated {
    pf: PixelFormat,
    width: u32,
    height: u32,
    stride: u32,
}

fn libc_ebusy() -> i32 {
    16
}

/// YUYV 4:2:2 → RGB (BT.601, limited range).
pub fn yuyv_to_rgb(data: &[u8], w: u32, h: u32, stride: u32) -> Option<RgbImage> {
    let mut img = RgbImage::new(w, h);
    for y in 0..h {
        let row = data.get((y * stride) as usize..(y * stride + w * 2) as usize)?;
        for x in (0..w).step_by(2) {
            let i = (x * 2) as usize;
            let (y0, u, y1, v) = (
                row[i] as f32,
                row[i + 1] as f32 - 128.0,
                row[i + 2] as f32,
                row[i + 3] as f32 - 128.0,
            );
            for (dx, yy) in [(0, y0), (1, y1)] {
                if x + dx >= w {
                    break;
                }
                let c = 1.164 * (yy - 16.0);
                let px = [c + 1.596 * v, c - 0.392 * u - 0.813 * v, c + 2.017 * u];
                img.put_pixel(x + dx, y, image::Rgb(px.map(|p| p.clamp(0.0, 255.0) as u8)));
            }
        }
    }
    Some(img)
}

impl FrameSource for V4l2Source {
    fn name(&self) -> String {
        self.dev.clone()
    }

    fn grab(&mut self) -> Result<Option<Frame>> {
        if self.stream.is_none() {
            self.stream = Some(self.open()?);
        }
        let (stream, fmt) = self.stream.as_mut().unwrap();
        let fmt = *fmt;
        let res = stream.dequeue(|buf| Ok(buf.to_vec()));
        let bytes = match res {
            Ok(b) => b,
            Err(e) => {
                self.stream = None; // reopen next time
                bail!("{}: capture failed: {e}", self.dev);
            }
        };
        let (image, encoded) = if fmt.pf == PixelFormat::YUYV {
            let img = yuyv_to_rgb(&bytes, fmt.width, fmt.height, fmt.stride)
                .ok_or_else(|| anyhow!("{}: short YUYV frame ({} bytes)", self.dev, bytes.len()))?;
            (DynamicImage::ImageRgb8(img), None)
        } else {
            let img = crate::preprocess::decode(&bytes)
                .map_err(|e| anyhow!("{}: bad MJPEG frame: {e}", self.dev))?;
            (img, Some(bytes))
        };
        self.count += 1;
        Ok(Some(Frame {
            image,
            name: format!("{}#{}", self.dev, self.count),
            encoded,
        }))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn yuyv_gray_and_missing_device() {
        // Y=128, U=V=128 is mid gray
        let img = super::yuyv_to_rgb(&[128u8; 4 * 2 * 2], 4, 2, 8).unwrap();
        assert!(
            img.pixels()
                .all(|p| p.0.iter().all(|&c| (125..=135).contains(&c)))
        );
        let mut s = super::V4l2Source::new("/dev/video-does-not-exist", None, None);
        let e = super::FrameSource::grab(&mut s).err().unwrap().to_string();
        assert!(e.contains("no such camera"), "{e}");
    }
}
