//! Soak test, alone in its own test binary so that no other test
//! allocates in the same process while RSS is measured.

use std::sync::atomic::AtomicBool;
use std::time::Duration;

use edgetune::device::classify::FakeClassifier;
use edgetune::device::display::PngDisplay;
use edgetune::device::frame::DirSource;
use edgetune::device::output::Outputs;
use edgetune::device::runloop::{Rig, RunOptions, run};
use edgetune::device::trigger::{Interval, Motion};
use image::{DynamicImage, RgbImage};

fn rss_kb() -> u64 {
    let s = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = s.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4
}

/// 2,000 frames through the loop (real decode, motion check, thumbnail,
/// colour PNG rendering, JSON, pins; a fake classifier in place of tract):
/// memory must level off after warm-up.
#[test]
fn soak_2000_frames_memory_stays_flat() {
    let d = tempfile::tempdir().unwrap();
    let frames = d.path().join("frames");
    std::fs::create_dir_all(&frames).unwrap();
    for i in 0..10u8 {
        let img = RgbImage::from_fn(160, 120, |x, y| {
            image::Rgb([(x as u8).wrapping_mul(i), y as u8, i * 20])
        });
        DynamicImage::ImageRgb8(img)
            .save(frames.join(format!("{i}.jpg")))
            .unwrap();
    }
    let pin = edgetune::device::output::FakePin::default();
    let mut rig = Rig {
        source: Box::new(DirSource::open(&frames, true).unwrap()),
        triggers: vec![
            Box::new(Interval::new(Duration::ZERO)),
            Box::new(Motion::parse("0.9").unwrap()),
        ],
        displays: vec![Box::new(
            PngDisplay::parse(&format!("{},color,latest", d.path().join("s").display())).unwrap(),
        )],
        outputs: Outputs(vec![edgetune::device::output::LabelOutput::new(
            "a",
            Box::new(pin),
            0.1,
            Duration::ZERO,
        )]),
    };
    let mut clf = FakeClassifier {
        labels: vec!["a".into(), "b".into()],
    };
    let stop = AtomicBool::new(false);
    let mut sink = std::io::sink();
    let opts = |n| RunOptions {
        max_frames: Some(n),
        tick: Duration::from_millis(1),
        ..Default::default()
    };
    run(&mut rig, &mut clf, &opts(200), &mut sink, &stop).unwrap();
    let warm = rss_kb();
    let t0 = std::time::Instant::now();
    let s = run(&mut rig, &mut clf, &opts(1800), &mut sink, &stop).unwrap();
    let after = rss_kb();
    eprintln!(
        "soak: 2000 frames, RSS {warm} kB after 200 → {after} kB after 2000 ({:+} kB), {:.2} ms/frame",
        after as i64 - warm as i64,
        t0.elapsed().as_secs_f64() * 1e3 / 1800.0
    );
    assert_eq!(s.classified, 1800);
    assert!(after < warm + 4096, "RSS grew from {warm} kB to {after} kB");
}
