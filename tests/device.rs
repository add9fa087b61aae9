//! `edgetune run` / `capture` off the board: dir: frames from the
//! hymenoptera val set, interval/stdin/motion triggers, the png: display,
//! camera and GPIO failures, capture safety, the teach flow, head reload.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use edgetune::device::capture::{CaptureOptions, FrameSink, capture, save_new};
use edgetune::device::classify::FakeClassifier;
use edgetune::device::display::{Display, PngDisplay, PngLayout};
use edgetune::device::frame::{DirSource, Frame, FrameSource};
use edgetune::device::output::Outputs;
use edgetune::device::runloop::{Rig, RunOptions, run};
use edgetune::device::screen::Screen;
use edgetune::device::trigger::{Motion, MotionDetector, Stdin, Trigger};
use image::{DynamicImage, RgbImage};
use serde_json::Value;

struct Fixture {
    _dir: tempfile::TempDir,
    root: PathBuf,
    head: PathBuf,
    val: PathBuf,
    cache: PathBuf,
}

fn copy_some(from: &Path, to: &Path, n: usize) {
    for class in ["ants", "bees"] {
        let mut files: Vec<_> = std::fs::read_dir(from.join(class))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        std::fs::create_dir_all(to.join(class)).unwrap();
        for f in files.iter().take(n) {
            std::fs::copy(f, to.join(class).join(f.file_name().unwrap())).unwrap();
        }
    }
}

fn models_dir() -> String {
    common::shared().join("models").display().to_string()
}

/// A head trained once on 15 images per class, 10 val images per class.
fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        let hym = common::shared().join("data/hymenoptera");
        copy_some(&hym.join("train"), &root.join("train"), 15);
        copy_some(&hym.join("val"), &root.join("val"), 10);
        let head = root.join("head.safetensors");
        let cache = root.join("c.redb");
        let out = Command::new(common::bin())
            .args([
                "train",
                root.join("train").to_str().unwrap(),
                "-o",
                head.to_str().unwrap(),
            ])
            .args([
                "--models-dir",
                &models_dir(),
                "--cache",
                cache.to_str().unwrap(),
                "--progress",
                "none",
            ])
            .args(["--val-split", "0", "--seed", "1"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "train: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Fixture {
            _dir: dir,
            val: root.join("val"),
            head,
            cache,
            root,
        }
    })
}

fn edgetune(args: &[&str]) -> Command {
    let mut c = Command::new(common::bin());
    c.args(args);
    c
}

fn run_cmd(f: &Fixture, extra: &[&str]) -> Command {
    let mut c = edgetune(&[
        "run",
        "--head",
        f.head.to_str().unwrap(),
        "--models-dir",
        &models_dir(),
    ]);
    c.args(["--cache", f.cache.to_str().unwrap()]);
    c.args(extra);
    c
}

fn json_lines(out: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l:?}: {e}")))
        .collect()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn run_dir_interval_gives_right_labels_and_png_screens() {
    let f = fixture();
    let screens = f.root.join("screens-run");
    let out = run_cmd(
        f,
        &[
            "--camera",
            &format!("dir:{}", f.val.display()),
            "--trigger",
            "interval:0",
        ],
    )
    .args([
        "--display",
        &format!("png:{}", screens.display()),
        "--top-k",
        "2",
    ])
    .output()
    .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 20, "one line per val frame");
    let mut right = 0;
    let mut total_ms = Vec::new();
    for l in &lines {
        let frame = l["frame"].as_str().unwrap();
        let truth = frame.split('/').next().unwrap();
        let label = l["label"].as_str().unwrap();
        right += (label == truth) as usize;
        assert_eq!(l["trigger"], "interval");
        assert_eq!(l["top"].as_array().unwrap().len(), 2);
        let p = l["top"][0]["probability"].as_f64().unwrap();
        assert!((0.5..=1.0).contains(&p));
        for k in ["capture", "backbone", "head", "total"] {
            assert!(l["ms"][k].as_f64().unwrap() >= 0.0, "ms.{k}");
        }
        assert!(l["time"].as_str().unwrap().ends_with('Z'));
        total_ms.push(l["ms"]["total"].as_f64().unwrap());
    }
    assert!(right >= 16, "{right}/20 right");
    total_ms.sort_by(f64::total_cmp);
    eprintln!(
        "run on dir: frames: median {:.1} ms per frame (capture+backbone+head)",
        total_ms[10]
    );
    // a waiting screen, then one screen per result
    let pngs: Vec<_> = std::fs::read_dir(&screens)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(pngs.len(), 21);
    let last = image::open(screens.join("screen-000021.png"))
        .unwrap()
        .to_luma8();
    assert_eq!(last.dimensions(), (128, 64));
}

#[test]
fn run_stdin_trigger_and_unknown_below_threshold() {
    let f = fixture();
    let mut child = run_cmd(
        f,
        &[
            "--camera",
            &format!("dir:{}", f.val.display()),
            "--trigger",
            "stdin",
        ],
    )
    .args(["--threshold", "1.0"])
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    child.stdin.take().unwrap().write_all(b"\n\n\n").unwrap(); // then EOF ends the run
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 3);
    for l in &lines {
        assert_eq!(l["trigger"], "stdin");
        assert_eq!(l["label"], "unknown", "p < 1.0 must not be a forced guess");
        assert!(l["top"][0]["label"] == "ants" || l["top"][0]["label"] == "bees");
    }
}

fn solid(w: u32, h: u32, c: [u8; 3]) -> DynamicImage {
    DynamicImage::ImageRgb8(RgbImage::from_pixel(w, h, image::Rgb(c)))
}

fn frame(img: DynamicImage) -> Frame {
    Frame {
        image: img,
        name: "t".into(),
        encoded: None,
    }
}

#[test]
fn motion_fires_on_change_not_on_identical_frames() {
    let photo = edgetune::preprocess::decode_file(
        &fixture().val.join("bees").join(
            std::fs::read_dir(fixture().val.join("bees"))
                .unwrap()
                .next()
                .unwrap()
                .unwrap()
                .file_name(),
        ),
    )
    .unwrap();
    let mut det = MotionDetector::default();
    assert_eq!(
        det.score(&photo),
        None,
        "first frame has nothing to compare with"
    );
    assert_eq!(det.score(&photo), Some(0.0));
    assert!(det.score(&photo.fliph()).unwrap() > 0.05);

    let mut m = Motion::parse("0.05,cooldown=0").unwrap();
    let t = std::time::Instant::now();
    let a = frame(photo.clone());
    let b = frame(solid(photo.width(), photo.height(), [255, 255, 255]));
    let fired: Vec<bool> = [&a, &a, &a, &b, &b, &a]
        .iter()
        .map(|f| m.poll(t, Some(f)).unwrap().is_some())
        .collect();
    assert_eq!(fired, vec![false, false, false, true, false, true]);

    // cool-down: a second change right after the first is ignored
    let mut m = Motion::parse("0.05,cooldown=10s").unwrap();
    m.poll(t, Some(&a)).unwrap();
    assert!(m.poll(t, Some(&b)).unwrap().is_some());
    assert!(
        m.poll(t + Duration::from_secs(1), Some(&a))
            .unwrap()
            .is_none()
    );
    assert!(
        m.poll(t + Duration::from_secs(11), Some(&b))
            .unwrap()
            .is_some()
    );
}

/// Motion through the whole loop: three identical frames, then a change.
#[test]
fn motion_trigger_in_the_run_loop() {
    let d = tempfile::tempdir().unwrap();
    for (i, c) in [
        [10, 10, 10],
        [10, 10, 10],
        [10, 10, 10],
        [250, 250, 250],
        [250, 250, 250],
    ]
    .iter()
    .enumerate()
    {
        solid(64, 48, *c)
            .save(d.path().join(format!("{i}.png")))
            .unwrap();
    }
    let mut rig = Rig {
        source: Box::new(DirSource::open(d.path(), false).unwrap()),
        triggers: vec![Box::new(Motion::parse("0.05,cooldown=0").unwrap())],
        displays: vec![],
        outputs: Outputs::default(),
    };
    let mut clf = FakeClassifier {
        labels: vec!["light".into(), "dark".into()],
    };
    let mut out = Vec::new();
    let opts = RunOptions {
        tick: Duration::from_millis(1),
        ..Default::default()
    };
    run(&mut rig, &mut clf, &opts, &mut out, &AtomicBool::new(false)).unwrap();
    let lines: Vec<Value> = String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["frame"], "3.png");
    assert_eq!(lines[0]["trigger"], "motion");
    assert_eq!(lines[0]["label"], "light");
}

fn lit(img: &image::GrayImage, x0: u32, x1: u32, y0: u32, y1: u32) -> usize {
    (y0..y1)
        .flat_map(|y| (x0..x1).map(move |x| (x, y)))
        .filter(|&(x, y)| img.get_pixel(x, y).0[0] > 0)
        .count()
}

#[test]
fn png_display_renders_oled_and_colour_screens() {
    let f = fixture();
    let photo = DirSource::open(&f.val.join("bees"), false)
        .unwrap()
        .grab()
        .unwrap()
        .unwrap();
    let thumb = photo.image.thumbnail(240, 240).to_rgb8();
    let d = tempfile::tempdir().unwrap();
    let mut oled = PngDisplay::parse(&format!("{}", d.path().join("o").display())).unwrap();
    let screen = Screen::Result {
        label: "bees",
        confidence: 0.93,
        latency_ms: 41.0,
        thumb: Some(&thumb),
    };
    oled.show(&screen).unwrap();
    let img = image::open(oled.last_path.as_ref().unwrap())
        .unwrap()
        .to_luma8();
    assert_eq!(img.dimensions(), (128, 64));
    assert!(lit(&img, 0, 128, 0, 64) > 300, "something is drawn");
    assert!(lit(&img, 0, 60, 0, 20) > 40, "label text region");
    assert_eq!(
        lit(&img, 60, 128, 0, 20),
        0,
        "short label leaves the right of the title dark"
    );
    assert!(
        lit(&img, 2, 110, 26, 36) > 900,
        "93% bar is full up to ~93%"
    );

    let mut colour = PngDisplay::new(d.path().join("c"), PngLayout::Color(320, 240));
    colour.show(&screen).unwrap();
    let img = image::open(colour.last_path.as_ref().unwrap())
        .unwrap()
        .to_rgb8();
    assert_eq!(img.dimensions(), (320, 240));
    let distinct: std::collections::HashSet<_> = img.pixels().map(|p| p.0).collect();
    assert!(
        distinct.len() > 200,
        "the thumbnail is drawn ({} colours)",
        distinct.len()
    );
    // green title for a confident result
    let green = (0..30)
        .flat_map(|y| (0..100).map(move |x| (x, y)))
        .filter(|&(x, y)| {
            let p = img.get_pixel(x, y).0;
            p[1] > 200 && p[0] < 50
        });
    assert!(green.count() > 40);
    assert!(PngDisplay::parse("").is_err());
    assert!(PngDisplay::parse("out,size=12x12").is_err());
}

#[test]
fn camera_command_failures_are_retried_then_reported() {
    let f = fixture();
    let out = run_cmd(
        f,
        &[
            "--camera",
            "cmd:echo oops >&2; exit 3",
            "--trigger",
            "interval:0",
        ],
    )
    .args([
        "--retry-ms",
        "5",
        "--retry-max-ms",
        "20",
        "--max-failures",
        "4",
    ])
    .output()
    .unwrap();
    assert!(!out.status.success());
    let e = stderr(&out);
    assert!(e.contains("exited with status 3: oops"), "{e}");
    for ms in [
        "retrying in 5 ms",
        "retrying in 10 ms",
        "retrying in 20 ms",
        "giving up",
    ] {
        assert!(e.contains(ms), "{ms}: {e}");
    }
    assert!(!e.contains("panicked"));

    let out = run_cmd(f, &["--camera", "cmd:echo hello", "--max-failures", "1"])
        .output()
        .unwrap();
    assert!(stderr(&out).contains("not an image"), "{}", stderr(&out));

    // a camera that fails twice, then works: the run carries on
    let d = tempfile::tempdir().unwrap();
    let counter = d.path().join("n");
    let jpg = std::fs::read_dir(f.val.join("ants"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let script = format!(
        "n=$(cat {c} 2>/dev/null || echo 0); echo $((n+1)) > {c}; [ $n -ge 2 ] && cat {j} || exit 1",
        c = counter.display(),
        j = jpg.display()
    );
    let out = run_cmd(
        f,
        &[
            "--camera",
            &format!("cmd:{script}"),
            "--trigger",
            "interval:0",
            "--max-frames",
            "1",
        ],
    )
    .args(["--retry-ms", "5"])
    .output()
    .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(json_lines(&out).len(), 1);
    assert_eq!(stderr(&out).matches("retrying in").count(), 2);
}

#[test]
fn missing_cameras_and_devices_are_clear_errors() {
    let f = fixture();
    let cases: &[(&[&str], &str)] = &[
        (&["--camera", "dir:/nonexistent/frames"], "no such folder"),
        (&["--camera", "webcam"], "expected picam"),
        (
            &["--camera", "dir:.", "--display", "lcd"],
            "expected png:DIR",
        ),
        (
            &["--camera", "dir:.", "--trigger", "motion:7"],
            "fraction of changed pixels",
        ),
    ];
    for (args, msg) in cases {
        let out = run_cmd(f, args).output().unwrap();
        assert!(!out.status.success());
        assert!(stderr(&out).contains(msg), "{args:?}: {}", stderr(&out));
    }
    // no Pi camera apps here: named, retried, then given up
    if which("rpicam-still").is_none() && which("libcamera-still").is_none() {
        let out = run_cmd(f, &["--camera", "picam", "--max-failures", "1"])
            .output()
            .unwrap();
        assert!(
            stderr(&out).contains("neither rpicam-still nor libcamera-still"),
            "{}",
            stderr(&out)
        );
    }
    #[cfg(all(feature = "v4l2", target_pointer_width = "64"))]
    {
        let out = run_cmd(f, &["--camera", "/dev/video99", "--max-failures", "1"])
            .output()
            .unwrap();
        assert!(
            stderr(&out).contains("/dev/video99: no such camera"),
            "{}",
            stderr(&out)
        );
    }
}

fn which(p: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join(p))
        .find(|p| p.exists())
}

#[cfg(not(feature = "pi"))]
#[test]
fn gpio_without_the_pi_feature_says_so() {
    let f = fixture();
    let out = run_cmd(
        f,
        &[
            "--camera",
            &format!("dir:{}", f.val.display()),
            "--trigger",
            "gpio:17",
        ],
    )
    .output()
    .unwrap();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("without the `pi` feature"),
        "{}",
        stderr(&out)
    );
}

/// Off a Pi the GPIO trigger cannot open: logged and retried with
/// back-off while the interval trigger keeps the loop running.
#[cfg(feature = "pi")]
#[test]
fn gpio_failure_is_retried_not_fatal() {
    let f = fixture();
    let out = run_cmd(
        f,
        &[
            "--camera",
            &format!("dir:{}", f.val.display()),
            "--trigger",
            "gpio:17",
        ],
    )
    .args([
        "--trigger",
        "interval:50ms",
        "--max-frames",
        "3",
        "--retry-ms",
        "10",
        "--output",
        "bees=gpio:22",
    ])
    .output()
    .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(json_lines(&out).len(), 3);
    let e = stderr(&out);
    assert!(e.contains("trigger gpio:17: GPIO"), "{e}");
    assert!(e.contains("retrying in 10 ms"), "{e}");
}

/// Writes two photos, then the disk is full.
struct FullAfter(usize, Vec<PathBuf>);

impl FrameSink for FullAfter {
    fn create_new(&mut self, path: &Path, _: &[u8]) -> std::io::Result<()> {
        if self.1.len() >= self.0 {
            return Err(std::io::Error::from_raw_os_error(28)); // ENOSPC
        }
        self.1.push(path.to_path_buf());
        Ok(())
    }
}

fn stdin_lines(lines: &[&str]) -> Box<dyn Trigger> {
    let (tx, rx) = std::sync::mpsc::channel();
    for l in lines {
        tx.send(Some(l.to_string())).unwrap();
    }
    tx.send(None).unwrap();
    Box::new(Stdin::from_channel(rx))
}

#[test]
fn capture_survives_a_full_disk_and_never_overwrites() {
    let f = fixture();
    let mut rig = Rig {
        source: Box::new(DirSource::open(&f.val, true).unwrap()),
        triggers: vec![stdin_lines(&["", "", "", "", ""])],
        displays: vec![],
        outputs: Outputs::default(),
    };
    let opts = CaptureOptions {
        dataset: "/data".into(),
        label: Some("bees".into()),
        count: None,
        run: RunOptions {
            tick: Duration::from_millis(1),
            ..Default::default()
        },
    };
    let mut sink = FullAfter(2, vec![]);
    let mut out = Vec::new();
    let e = capture(
        &mut rig,
        &mut sink,
        None,
        &opts,
        &mut out,
        &AtomicBool::new(false),
    )
    .unwrap_err();
    let msg = format!("{e:#}");
    assert!(
        msg.contains("disk full") && msg.contains("2 photos were saved before"),
        "{msg}"
    );
    assert_eq!(String::from_utf8(out).unwrap().lines().count(), 2);

    // same time stamp twice: the second photo gets a new name
    let d = tempfile::tempdir().unwrap();
    let fr = frame(solid(8, 8, [1, 2, 3]));
    let mut fs = edgetune::device::capture::FsSink;
    let a = save_new(&mut fs, d.path(), "20240101-000000-000", "", &fr).unwrap();
    let b = save_new(&mut fs, d.path(), "20240101-000000-000", "", &fr).unwrap();
    assert_ne!(a, b);
    assert!(b.to_string_lossy().ends_with("-000-1.jpg"));
    assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 2);
}

/// Teach without a laptop: capture photos per class from stdin lines
/// (a button per class on a Pi), extract them, retrain, and the running
/// `run` reloads the new head; a broken head file is refused and the old
/// one kept.
#[test]
fn teach_flow_capture_retrain_and_live_reload() {
    let f = fixture();
    let d = tempfile::tempdir().unwrap();
    let dataset = d.path().join("ds");
    copy_some(&f.root.join("train"), &dataset, 6);
    let head = d.path().join("head.safetensors");
    let cache = d.path().join("c.redb");
    std::fs::copy(&f.head, &head).unwrap();

    // run, reading triggers from stdin, in the background
    let mut run = edgetune(&[
        "run",
        "--head",
        head.to_str().unwrap(),
        "--models-dir",
        &models_dir(),
    ])
    .args([
        "--cache",
        cache.to_str().unwrap(),
        "--camera",
        &format!("dir:{}", f.val.display()),
        "--loop",
    ])
    .args(["--trigger", "stdin"])
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let mut run_in = run.stdin.take().unwrap();
    let mut run_out = BufReader::new(run.stdout.take().unwrap());
    let mut ask = |w: &mut std::process::ChildStdin| -> Value {
        w.write_all(b"\n").unwrap();
        w.flush().unwrap();
        let mut l = String::new();
        run_out.read_line(&mut l).unwrap();
        serde_json::from_str(&l).unwrap()
    };
    let first = ask(&mut run_in);
    assert!(first["top"].as_array().unwrap().len() == 2);

    // capture: "wasps" is a new class; each stdin line names the class
    let mut cap = edgetune(&[
        "capture",
        "--dataset",
        dataset.to_str().unwrap(),
        "--extract",
    ])
    .args(["--camera", &format!("dir:{}", f.val.join("ants").display())])
    .args([
        "--retrain",
        head.to_str().unwrap(),
        "--models-dir",
        &models_dir(),
        "--cache",
        cache.to_str().unwrap(),
    ])
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    cap.stdin
        .take()
        .unwrap()
        .write_all(b"wasps\nwasps\nwasps\nwasps\nwasps\n")
        .unwrap();
    let out = cap.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 5);
    assert!(
        lines
            .iter()
            .all(|l| l["label"] == "wasps" && l["extracted"] == true)
    );
    assert_eq!(std::fs::read_dir(dataset.join("wasps")).unwrap().count(), 5);
    assert!(
        stderr(&out).contains("wrote"),
        "retrained: {}",
        stderr(&out)
    );

    // the running loop picks up the 3-class head on its next frame
    let next = ask(&mut run_in);
    let labels: Vec<_> = next["top"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["label"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(labels.len(), 3, "{next}");
    assert!(labels.contains(&"wasps".to_string()));

    // a corrupt head file does not stop it: the previous head stays
    std::fs::write(&head, b"not a head").unwrap();
    let after = ask(&mut run_in);
    assert_eq!(after["top"].as_array().unwrap().len(), 3);
    drop(run_in);
    let out = run.wait_with_output().unwrap();
    let e = stderr(&out);
    assert!(out.status.success(), "{e}");
    assert!(
        e.contains("reloaded") && e.contains("keeping the previous head"),
        "{e}"
    );
}

/// The config file supplies settings; flags override it.
#[test]
fn config_file_and_flag_override() {
    let f = fixture();
    let d = tempfile::tempdir().unwrap();
    let cfg = d.path().join("edgetune.toml");
    std::fs::write(
        &cfg,
        format!(
            "camera = \"dir:{}\"\ntriggers = [\"interval:0\"]\n[run]\nhead = \"{}\"\ntop_k = 1\nthreshold = 0.0\n",
            f.val.display(),
            f.head.display()
        ),
    )
    .unwrap();
    let out = edgetune(&[
        "run",
        "--config",
        cfg.to_str().unwrap(),
        "--models-dir",
        &models_dir(),
        "--max-frames",
        "2",
    ])
    .output()
    .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let l = json_lines(&out);
    assert_eq!(l.len(), 2);
    assert_eq!(l[0]["top"].as_array().unwrap().len(), 1);
    let out = edgetune(&[
        "run",
        "--config",
        cfg.to_str().unwrap(),
        "--models-dir",
        &models_dir(),
        "--max-frames",
        "1",
        "-k",
        "2",
    ])
    .output()
    .unwrap();
    assert_eq!(json_lines(&out)[0]["top"].as_array().unwrap().len(), 2);
    std::fs::write(&cfg, "camra = \"picam\"\n").unwrap();
    let out = edgetune(&["run", "--config", cfg.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(stderr(&out).contains("unknown field"), "{}", stderr(&out));
}

#[test]
fn run_help_documents_every_option() {
    let out = edgetune(&["run", "--help"]).output().unwrap();
    let h = String::from_utf8_lossy(&out.stdout);
    for opt in [
        "--config",
        "--camera",
        "--width",
        "--height",
        "--rotation",
        "--trigger",
        "--display",
        "--retry-ms",
        "--max-failures",
        "--head",
        "--top-k",
        "--threshold",
        "--output",
        "--save-frames",
        "--max-frames",
    ] {
        assert!(h.contains(opt), "{opt} missing from run --help");
    }
    let out = edgetune(&["capture", "--help"]).output().unwrap();
    let h = String::from_utf8_lossy(&out.stdout);
    for opt in ["--label", "--dataset", "--count", "--extract", "--retrain"] {
        assert!(h.contains(opt), "{opt} missing from capture --help");
    }
}

/// Renders the README pictures from a real classification (run with
/// `EDGETUNE_WRITE_DOC_IMAGES=1` to refresh docs/img/).
#[test]
fn readme_screens() {
    let f = fixture();
    let d = tempfile::tempdir().unwrap();
    let out = run_cmd(
        f,
        &[
            "--camera",
            &format!("dir:{}", f.val.join("bees").display()),
            "--trigger",
            "interval:0",
        ],
    )
    .args(["--max-frames", "1"])
    .args([
        "--display",
        &format!("png:{},scale=2", d.path().join("oled").display()),
    ])
    .args([
        "--display",
        &format!("png:{},color", d.path().join("color").display()),
    ])
    .output()
    .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(json_lines(&out)[0]["label"], "bees");
    let oled = d.path().join("oled/screen-000002.png");
    let color = d.path().join("color/screen-000002.png");
    assert_eq!(image::image_dimensions(&oled).unwrap(), (256, 128));
    assert_eq!(image::image_dimensions(&color).unwrap(), (240, 240));
    let img_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/img");
    if std::env::var_os("EDGETUNE_WRITE_DOC_IMAGES").is_some() {
        std::fs::create_dir_all(&img_dir).unwrap();
        std::fs::copy(&oled, img_dir.join("screen-oled.png")).unwrap();
        std::fs::copy(&color, img_dir.join("screen-color.png")).unwrap();
    }
    // the committed pictures are real renders of this size
    for (name, size) in [
        ("screen-oled.png", (256, 128)),
        ("screen-color.png", (240, 240)),
    ] {
        let p = img_dir.join(name);
        assert_eq!(
            image::image_dimensions(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display())),
            size
        );
    }
}
