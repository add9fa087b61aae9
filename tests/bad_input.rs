//! Every kind of bad or unusual image either decodes correctly or is skipped
//! with its file name and reason, and an extraction run carries on.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};

use common::*;
use edgetune::backbone::Backbone;
use edgetune::cache::FeatureCache;
use edgetune::extract::{ExtractOptions, Item, NoProgress, extract};
use edgetune::preprocess::{ImageError, decode, decode_file};
use image::{ImageBuffer, Luma, Rgb, RgbImage, Rgba};

fn photo_jpeg() -> Vec<u8> {
    std::fs::read(shared().join("models/photos/parrot.jpg")).unwrap()
}

fn gradient(w: u32, h: u32) -> RgbImage {
    RgbImage::from_fn(w, h, |x, y| {
        Rgb([(x * 255 / w) as u8, (y * 255 / h) as u8, 128])
    })
}

/// Writes every case into `dir`; returns (file, should decode).
fn make_cases(dir: &Path) -> Vec<(PathBuf, bool)> {
    let mut cases = Vec::new();
    let mut put = |name: &str, bytes: Vec<u8>, ok: bool| {
        let p = dir.join(name);
        std::fs::write(&p, bytes).unwrap();
        cases.push((p, ok));
    };
    let jpeg = photo_jpeg();
    put("zero.jpg", vec![], false);
    put(
        "text.jpg",
        b"this is a text file, not a photo\n".to_vec(),
        false,
    );
    put("truncated_header.jpg", jpeg[..200].to_vec(), false);
    put("truncated_half.jpg", jpeg[..jpeg.len() / 2].to_vec(), false);
    let png = {
        let mut v = std::io::Cursor::new(Vec::new());
        image::DynamicImage::from(gradient(300, 200))
            .write_to(&mut v, image::ImageFormat::Png)
            .unwrap();
        v.into_inner()
    };
    put("truncated_half.png", png[..png.len() / 2].to_vec(), false);
    let mut corrupt = jpeg.clone();
    // wipe the quantisation and Huffman tables and the frame header
    for b in corrupt.iter_mut().skip(20).take(600) {
        *b = 0xAB;
    }
    put("corrupt.jpg", corrupt, false);

    let enc = |img: image::DynamicImage, fmt: image::ImageFormat| {
        let mut v = std::io::Cursor::new(Vec::new());
        img.write_to(&mut v, fmt).unwrap();
        v.into_inner()
    };
    put(
        "anim.gif",
        enc(gradient(40, 30).into(), image::ImageFormat::Gif),
        true,
    );
    put(
        "gray.png",
        enc(
            image::DynamicImage::ImageLuma8(ImageBuffer::from_fn(50, 40, |x, _| {
                Luma([x as u8 * 4])
            })),
            image::ImageFormat::Png,
        ),
        true,
    );
    put(
        "gray.jpg",
        enc(
            image::DynamicImage::ImageLuma8(ImageBuffer::from_fn(50, 40, |x, _| {
                Luma([x as u8 * 4])
            })),
            image::ImageFormat::Jpeg,
        ),
        true,
    );
    put(
        "rgba.png",
        enc(
            image::DynamicImage::ImageRgba8(ImageBuffer::from_fn(64, 48, |x, y| {
                Rgba([x as u8, y as u8, 9, 100])
            })),
            image::ImageFormat::Png,
        ),
        true,
    );
    put(
        "sixteen.png",
        enc(
            image::DynamicImage::ImageRgb16(ImageBuffer::from_fn(64, 48, |x, y| {
                Rgb([x as u16 * 1000, y as u16 * 1000, 40000])
            })),
            image::ImageFormat::Png,
        ),
        true,
    );
    put(
        "photo.webp",
        enc(gradient(33, 17).into(), image::ImageFormat::WebP),
        true,
    );
    put(
        "photo.bmp",
        enc(gradient(33, 17).into(), image::ImageFormat::Bmp),
        true,
    );

    // a CMYK JPEG, as print workflows and some scanners write them
    let (w, h) = (48u16, 32u16);
    let cmyk: Vec<u8> = (0..w as usize * h as usize)
        .flat_map(|i| [(i % 200) as u8, 30, 60, 10])
        .collect();
    let mut buf = Vec::new();
    jpeg_encoder::Encoder::new(&mut buf, 90)
        .encode(&cmyk, w, h, jpeg_encoder::ColorType::Cmyk)
        .unwrap();
    put("cmyk.jpg", buf, true);

    // a real 20000 x 20000 grayscale PNG, streamed row by row (small on disk)
    let p = dir.join("huge.png");
    {
        let f = std::io::BufWriter::new(std::fs::File::create(&p).unwrap());
        let mut e = png::Encoder::new(f, 20_000, 20_000);
        e.set_color(png::ColorType::Grayscale);
        e.set_compression(png::Compression::Fastest);
        let mut w = e.write_header().unwrap().into_stream_writer().unwrap();
        let row = vec![0u8; 20_000];
        for _ in 0..20_000 {
            w.write_all(&row).unwrap();
        }
        w.finish().unwrap();
    }
    cases.push((p, false));
    cases
}

#[test]
fn each_case_decodes_or_fails_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    for (path, ok) in make_cases(dir.path()) {
        let r = decode_file(&path);
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        match (ok, r) {
            (true, Ok(img)) => assert!(img.width() > 0, "{name}"),
            (true, Err(e)) => panic!("{name} should decode, got: {e}"),
            (false, Ok(_)) => panic!("{name} should be refused"),
            (false, Err(e)) => {
                let msg = e.to_string();
                assert!(!msg.is_empty());
                if name == "huge.png" {
                    assert!(matches!(e, ImageError::TooLarge(_)), "{name}: {msg}");
                }
                if name == "zero.jpg" {
                    assert_eq!(e, ImageError::Empty);
                }
            }
        }
    }
}

#[test]
fn cmyk_jpeg_is_converted_to_plausible_rgb() {
    let (w, h) = (16u16, 16u16);
    // pure cyan ink: no red, full green and blue
    let cmyk: Vec<u8> = (0..w as usize * h as usize)
        .flat_map(|_| [255u8, 0, 0, 0])
        .collect();
    let mut buf = Vec::new();
    jpeg_encoder::Encoder::new(&mut buf, 95)
        .encode(&cmyk, w, h, jpeg_encoder::ColorType::Cmyk)
        .unwrap();
    let rgb = decode(&buf).unwrap().to_rgb8();
    let p = rgb.get_pixel(8, 8).0;
    // Adobe CMYK JPEGs store inverted ink; either way the colour must be cyan-ish or red-ish, not gray
    let spread = p.iter().max().unwrap() - p.iter().min().unwrap();
    assert!(spread > 100, "CMYK decoded to a gray pixel {p:?}");
}

#[test]
fn extraction_skips_bad_files_with_reasons_and_keeps_going() {
    let data = tempfile::tempdir().unwrap();
    let class = data.path().join("things");
    std::fs::create_dir_all(&class).unwrap();
    let cases = make_cases(&class);
    let good_photo = class.join("real.jpg");
    std::fs::write(&good_photo, photo_jpeg()).unwrap();

    let b = Backbone::load(&features_spec()).unwrap();
    let cache = FeatureCache::open(&data.path().join("cache.redb"), &b.fingerprint).unwrap();
    let mut files: Vec<PathBuf> = cases.iter().map(|c| c.0.clone()).collect();
    files.push(good_photo);
    let opts = ExtractOptions {
        threads: 2,
        commit_every: 4,
        keep_features: true,
    };
    let (report, items) = extract(&b, &cache, &files, &opts, &NoProgress).unwrap();
    let expected_ok = cases.iter().filter(|c| c.1).count() + 1;
    assert_eq!(report.extracted, expected_ok);
    assert_eq!(report.skipped.len(), files.len() - expected_ok);
    for (path, reason) in &report.skipped {
        assert!(
            cases.iter().any(|c| &c.0 == path && !c.1),
            "{} skipped: {reason}",
            path.display()
        );
    }
    for item in &items {
        if let Item::Features(f) = item {
            assert_eq!(f.len(), 1280);
            assert!(f.iter().all(|v| v.is_finite()));
        }
    }
    // second run: everything from the cache, failures remembered with their reasons
    let (again, _) = extract(&b, &cache, &files, &opts, &NoProgress).unwrap();
    assert_eq!((again.extracted, again.cached), (0, expected_ok));
    assert_eq!(again.skipped, report.skipped);
}
