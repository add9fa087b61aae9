//! Image decoding and the backbone's preprocessing: decode (with limits) →
//! RGB → central crop → resize → normalise into the model's input layout.

use std::io::Cursor;
use std::path::Path;

use fast_image_resize::images::{Image, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use image::{DynamicImage, ImageReader, Limits, RgbImage};
use ndarray::{Array4, ArrayViewMut3, s};

use crate::manifest::{Layout, Manifest, ResizeFilter};

/// Decode limits: generous for phone photos, bounded for a 512 MB board.
pub const MAX_SIDE: u32 = 16_384;
pub const MAX_DECODE_BYTES: u64 = 256 << 20;

/// Why an image could not be used. The message is shown to the user next to
/// the file name, so it says what is wrong and, where it helps, what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImageError {
    #[error("empty file (0 bytes)")]
    Empty,
    #[error("not a supported image ({0})")]
    Unsupported(String),
    #[error("corrupt or truncated image: {0}")]
    Corrupt(String),
    #[error("image too large to decode safely: {0}")]
    TooLarge(String),
    #[error("cannot read file: {0}")]
    Io(String),
}

/// Decodes image bytes with size limits; any format the `image` features
/// allow (JPEG, PNG, BMP, GIF first frame, WebP), any colour type.
pub fn decode(bytes: &[u8]) -> Result<DynamicImage, ImageError> {
    if bytes.is_empty() {
        return Err(ImageError::Empty);
    }
    let reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| ImageError::Io(e.to_string()))?;
    if reader.format().is_none() {
        return Err(ImageError::Unsupported("unknown file signature".into()));
    }
    if reader.format() == Some(image::ImageFormat::Jpeg) && !jpeg_is_complete(bytes) {
        // the decoder would fill the missing part with gray and say nothing
        return Err(ImageError::Corrupt(
            "truncated JPEG (no end-of-image marker)".into(),
        ));
    }
    let mut reader = reader;
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_DECODE_BYTES);
    reader.limits(limits);
    reader.decode().map_err(|e| match e {
        image::ImageError::Limits(l) => ImageError::TooLarge(format!(
            "{l} (limits: {MAX_SIDE} px per side, {} MiB)",
            MAX_DECODE_BYTES >> 20
        )),
        image::ImageError::Unsupported(u) => ImageError::Unsupported(u.to_string()),
        image::ImageError::IoError(io) => ImageError::Corrupt(io.to_string()),
        other => ImageError::Corrupt(other.to_string()),
    })
}

/// A complete JPEG has an end-of-image marker (FF D9) after its last
/// start-of-scan (FF DA). Inside entropy-coded data FF is always followed by
/// 00 or a restart marker, so neither pattern occurs there by chance; an
/// EXIF thumbnail's markers come before the main image's scans.
fn jpeg_is_complete(bytes: &[u8]) -> bool {
    let find_last = |pat: [u8; 2]| bytes.windows(2).rposition(|w| w == pat);
    match (find_last([0xFF, 0xDA]), find_last([0xFF, 0xD9])) {
        (Some(sos), Some(eoi)) => eoi > sos,
        _ => false,
    }
}

pub fn decode_file(path: &Path) -> Result<DynamicImage, ImageError> {
    let bytes = std::fs::read(path).map_err(|e| ImageError::Io(e.to_string()))?;
    decode(&bytes)
}

/// The central crop keeping `fraction` of each side, as TensorFlow's
/// `central_crop`: the offset is rounded down, the size is what remains.
/// Returns `(x0, y0, width, height)`.
pub fn central_crop_box(w: u32, h: u32, fraction: f32) -> (u32, u32, u32, u32) {
    if fraction >= 1.0 {
        return (0, 0, w, h);
    }
    let off = |side: u32| ((side as f64 - side as f64 * fraction as f64) / 2.0) as u32;
    let (x0, y0) = (off(w), off(h));
    (x0, y0, (w - 2 * x0).max(1), (h - 2 * y0).max(1))
}

/// The central crop as an image (see [`central_crop_box`]).
pub fn central_crop(img: &RgbImage, fraction: f32) -> RgbImage {
    let (x0, y0, cw, ch) = central_crop_box(img.width(), img.height(), fraction);
    image::imageops::crop_imm(img, x0, y0, cw, ch).to_image()
}

fn resize_alg(f: ResizeFilter) -> ResizeAlg {
    match f {
        ResizeFilter::Nearest => ResizeAlg::Nearest,
        ResizeFilter::Bilinear => ResizeAlg::Convolution(FilterType::Bilinear),
        ResizeFilter::Bicubic => ResizeAlg::Convolution(FilterType::CatmullRom),
    }
}

/// Crop and resize to the model's input size, as 8-bit RGB. The crop is
/// folded into the resize (no copy of the cropped region) and the resize is
/// `fast_image_resize`'s SIMD convolution: bilinear with its support
/// widened by the scale factor when downscaling, as Pillow's `BILINEAR`.
pub fn to_model_rgb(img: &DynamicImage, m: &Manifest) -> RgbImage {
    let converted;
    let rgb = match img.as_rgb8() {
        Some(rgb) => rgb,
        None => {
            converted = img.to_rgb8();
            &converted
        }
    };
    let (w, h) = rgb.dimensions();
    let (x0, y0, cw, ch) = central_crop_box(w, h, m.preprocess.crop_fraction);
    let (tw, th) = (m.width as u32, m.height as u32);
    if (cw, ch) == (tw, th) {
        return image::imageops::crop_imm(rgb, x0, y0, cw, ch).to_image();
    }
    thread_local! {
        // keeps its convolution buffers between images
        static RESIZER: std::cell::RefCell<Resizer> = std::cell::RefCell::new(Resizer::new());
    }
    let src =
        ImageRef::new(w, h, rgb.as_raw(), PixelType::U8x3).expect("an RgbImage's buffer fits");
    let mut dst = Image::new(tw, th, PixelType::U8x3);
    let options = ResizeOptions::new()
        .resize_alg(resize_alg(m.preprocess.resize))
        .crop(x0 as f64, y0 as f64, cw as f64, ch as f64);
    RESIZER
        .with_borrow_mut(|r| r.resize(&src, &mut dst, &options))
        .expect("same pixel type, crop inside the image");
    RgbImage::from_raw(tw, th, dst.into_vec()).expect("the buffer is tw x th x 3")
}

/// Writes the normalised image into one batch slot of an input tensor.
/// `slot` is [C,H,W] for NCHW or [H,W,C] for NHWC.
pub fn normalise_into(rgb: &RgbImage, m: &Manifest, mut slot: ArrayViewMut3<f32>) {
    let coef = m.preprocess.norm.coefficients();
    for (x, y, p) in rgb.enumerate_pixels() {
        for c in 0..3 {
            let v = p.0[c] as f32 * coef[c].0 + coef[c].1;
            match m.layout {
                Layout::Nchw => slot[[c, y as usize, x as usize]] = v,
                Layout::Nhwc => slot[[y as usize, x as usize, c]] = v,
            }
        }
    }
}

/// A batch-1 input tensor for the backbone from a decoded image.
pub fn to_input(img: &DynamicImage, m: &Manifest) -> Array4<f32> {
    let rgb = to_model_rgb(img, m);
    let mut t = empty_input(m, 1);
    normalise_into(&rgb, m, t.slice_mut(s![0, .., .., ..]));
    t
}

pub fn input_shape(m: &Manifest, batch: usize) -> [usize; 4] {
    match m.layout {
        Layout::Nchw => [batch, 3, m.height, m.width],
        Layout::Nhwc => [batch, m.height, m.width, 3],
    }
}

pub fn empty_input(m: &Manifest, batch: usize) -> Array4<f32> {
    Array4::zeros(input_shape(m, batch))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn central_crop_matches_tf_arithmetic() {
        let img = RgbImage::new(100, 60);
        let c = central_crop(&img, 0.875);
        // offsets 6 and 3 (rounded down), the rest is kept
        assert_eq!(c.dimensions(), (88, 54));
    }

    #[test]
    fn empty_and_garbage_are_clear_errors() {
        assert_eq!(decode(b"").unwrap_err(), ImageError::Empty);
        assert!(matches!(
            decode(b"hello, not an image").unwrap_err(),
            ImageError::Unsupported(_)
        ));
    }
}
