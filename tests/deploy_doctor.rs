//! `edgetune doctor` off the board: every check against temporary folders
//! (a fake /dev, /sys and $PATH) and a fake [`Hardware`]; the CLI's lines,
//! JSON and exit status. The packaged config is what the checks read.

mod common;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use edgetune::device::config::DeviceConfig;
use edgetune::doctor::{self, Check, Env, Hardware, Needs, Status};

/// Answers like a Pi: a `pinctrl-bcm2711` chip, I²C devices at `answering`,
/// GPIO lines in `taken` used by someone.
#[derive(Default)]
struct FakePi {
    answering: Vec<u16>,
    taken: BTreeMap<u32, String>,
    probed: RefCell<Vec<u16>>,
}

impl Hardware for FakePi {
    fn i2c_probe(&self, _: &Path, addr: u16) -> io::Result<bool> {
        self.probed.borrow_mut().push(addr);
        Ok(self.answering.contains(&addr))
    }
    fn gpio_chip(&self, chip: &Path) -> io::Result<(String, u32)> {
        if chip.ends_with("gpiochip0") {
            Ok(("pinctrl-bcm2711".into(), 58))
        } else {
            Ok(("raspberrypi-exp-gpio".into(), 8))
        }
    }
    fn gpio_line_user(&self, chip: &Path, line: u32) -> io::Result<Option<String>> {
        assert!(
            chip.ends_with("gpiochip0"),
            "the header chip is gpiochip0, not {}",
            chip.display()
        );
        Ok(self.taken.get(&line).cloned())
    }
}

struct Board {
    _tmp: tempfile::TempDir,
    root: PathBuf,
}

impl Board {
    /// A fake /dev (i2c-1, gpiochip0/1, spidev0.0), /sys, bin/ and state/.
    fn new() -> Board {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().to_path_buf();
        for d in ["dev", "sys/class/gpio", "bin", "state"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        for f in ["i2c-1", "gpiochip0", "gpiochip1", "spidev0.0"] {
            std::fs::write(root.join("dev").join(f), b"").unwrap();
        }
        Board { _tmp: tmp, root }
    }
    fn env(&self, hw: FakePi) -> Env {
        Env {
            dev: self.root.join("dev"),
            sys: self.root.join("sys"),
            path_var: self.root.join("bin").into_os_string(),
            camera_test: true,
            state_dir: Some(self.root.join("state")),
            min_free_mb: 1,
            hardware: Box::new(hw),
        }
    }
    /// A fake camera program printing `output`.
    fn program(&self, name: &str, output: &str) {
        let p = self.root.join("bin").join(name);
        std::fs::write(&p, format!("#!/bin/sh\ncat <<'OUT'\n{output}\nOUT\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
}

/// A small untrained head "trained" on the backbone with `fingerprint`.
fn write_head(path: &Path, fingerprint: &str) {
    use edgetune::head::{Head, HeadConfig};
    use edgetune::headfile::{BackboneInfo, HeadFile};
    let manifest = edgetune::manifest::Manifest::builtin("mobilenet_v2_1.0_224_features").unwrap();
    let backbone = BackboneInfo {
        name: manifest.name.clone(),
        fingerprint: fingerprint.into(),
        model_sha256: manifest.sha256.clone(),
        manifest,
    };
    let head = Head::new(1280, 2, &HeadConfig::mlp(&[], 0.0), 0);
    HeadFile::new(
        head,
        vec!["ants".into(), "bees".into()],
        backbone,
        serde_json::json!({}),
    )
    .save(path)
    .unwrap();
}

fn find<'a>(checks: &'a [Check], name: &str) -> &'a Check {
    checks
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no check {name} in {checks:#?}"))
}

fn packaged_config() -> DeviceConfig {
    DeviceConfig::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/config.toml"))
        .unwrap()
}

#[test]
fn packaged_config_needs_i2c_display_and_button() {
    let cfg = packaged_config();
    let n = Needs::of(&cfg);
    assert_eq!(n.i2c, vec![(1, 0x3c)]);
    assert!(n.spi.is_empty());
    assert!(
        n.pins
            .iter()
            .any(|(p, w)| *p == 17 && w.contains("trigger"))
    );
    assert!(n.bad_specs.is_empty());
    assert_eq!(
        cfg.run.head.as_deref(),
        Some(Path::new("/var/lib/edgetune/heads/head.safetensors"))
    );
    assert_eq!(
        cfg.models_dir.as_deref(),
        Some(Path::new("/var/lib/edgetune/models"))
    );
    assert_eq!(
        cfg.cache.as_deref(),
        Some(Path::new("/var/lib/edgetune/cache/features.redb"))
    );
}

#[test]
fn camera_program_missing_present_no_camera_and_working() {
    let b = Board::new();
    let c = doctor::check_camera("picam", &b.env(FakePi::default()));
    assert_eq!(c.status, Status::Problem);
    assert!(c.fix.as_ref().unwrap().contains("rpicam-apps"), "{c:?}");

    b.program("libcamera-still", "No cameras available!");
    let c = doctor::check_camera("picam", &b.env(FakePi::default()));
    assert_eq!(c.status, Status::Problem, "{c:?}");
    assert!(
        c.message.contains("no camera detected") && c.fix.as_ref().unwrap().contains("ribbon"),
        "{c:?}"
    );

    // rpicam-still is preferred when both are there
    b.program(
        "rpicam-still",
        "Available cameras\n-----------------\n0 : imx708 [4608x2592 10-bit RGGB] (/base/soc/i2c0mux/i2c@1/imx708@1a)",
    );
    let c = doctor::check_camera("picam", &b.env(FakePi::default()));
    assert_eq!(c.status, Status::Ok, "{c:?}");
    assert!(c.message.starts_with("rpicam-still: 0 : imx708"), "{c:?}");

    let mut env = b.env(FakePi::default());
    env.camera_test = false;
    std::fs::remove_file(b.root.join("bin/rpicam-still")).unwrap();
    b.program("rpicam-still", "No cameras available!");
    assert_eq!(
        doctor::check_camera("picam", &env).status,
        Status::Ok,
        "not run with camera_test off"
    );
}

#[test]
fn camera_cmd_dir_and_v4l2() {
    let b = Board::new();
    let env = b.env(FakePi::default());
    assert_eq!(
        doctor::check_camera("cmd:printf '\\377\\330\\377\\340rest'", &env).status,
        Status::Ok
    );
    let c = doctor::check_camera("cmd:echo hello", &env);
    assert_eq!(c.status, Status::Problem);
    assert!(c.message.contains("not a JPEG"), "{c:?}");
    assert_eq!(
        doctor::check_camera("cmd:exit 3", &env).status,
        Status::Problem
    );

    let c = doctor::check_camera("/dev/video0", &env);
    assert_eq!(c.status, Status::Problem);
    assert!(c.message.contains("does not exist"), "{c:?}");
    std::fs::write(b.root.join("dev/video0"), b"").unwrap();
    assert_eq!(doctor::check_camera("/dev/video0", &env).status, Status::Ok);

    assert_eq!(
        doctor::check_camera("dir:/nonexistent-edgetune", &env).status,
        Status::Problem
    );
    assert_eq!(
        doctor::check_camera(&format!("dir:{}", b.root.join("dev").display()), &env).status,
        Status::Ok
    );
    assert_eq!(doctor::check_camera("webcam", &env).status, Status::Problem);
}

#[test]
fn i2c_bus_missing_address_silent_and_answering() {
    let b = Board::new();
    let c = doctor::check_i2c(3, 0x3c, &b.env(FakePi::default()));
    assert_eq!(c.status, Status::Problem);
    assert!(
        c.message.contains("i2c-3 does not exist")
            && c.fix.as_ref().unwrap().contains("dtparam=i2c_arm=on"),
        "{c:?}"
    );

    let c = doctor::check_i2c(
        1,
        0x3c,
        &b.env(FakePi {
            answering: vec![0x3d],
            ..Default::default()
        }),
    );
    assert_eq!(c.status, Status::Problem);
    assert!(
        c.message.contains("nothing answers at 0x3c")
            && c.fix.as_ref().unwrap().contains("i2cdetect -y 1"),
        "{c:?}"
    );

    let hw = FakePi {
        answering: vec![0x3c],
        ..Default::default()
    };
    assert_eq!(doctor::check_i2c(1, 0x3c, &b.env(hw)).status, Status::Ok);

    // the real ioctls on something that is not an I²C adapter: a clear problem, no panic
    let mut env = b.env(FakePi::default());
    env.hardware = Box::new(doctor::LinuxHardware);
    let c = doctor::check_i2c(1, 0x3c, &env);
    assert_eq!(c.status, Status::Problem);
    assert!(c.message.contains("cannot probe"), "{c:?}");
}

#[test]
fn gpio_pins_free_taken_exported_and_clashing() {
    let b = Board::new();
    let mut cfg = DeviceConfig {
        triggers: vec!["gpio:17".into(), "interval:5s".into()],
        ..Default::default()
    };
    cfg.run.outputs = vec!["bees=gpio:22,hold=2s".into()];
    cfg.displays = vec!["oled:bus=1,addr=0x3c".into()];
    let n = Needs::of(&cfg);

    let checks = doctor::check_gpio(&n, &b.env(FakePi::default()));
    assert_eq!(find(&checks, "gpio17").status, Status::Ok, "{checks:#?}");
    assert_eq!(find(&checks, "gpio22").status, Status::Ok);
    assert!(
        checks.iter().all(|c| c.name != "gpio2"),
        "I2C pins belong to the I2C driver: {checks:#?}"
    );

    let hw = FakePi {
        taken: [(22, "gpio-leds".to_string())].into(),
        ..Default::default()
    };
    let c = find(&doctor::check_gpio(&n, &b.env(hw)), "gpio22").clone();
    assert_eq!(c.status, Status::Problem);
    assert!(c.message.contains("gpio-leds"), "{c:?}");

    std::fs::create_dir_all(b.root.join("sys/class/gpio/gpio17")).unwrap();
    let c = find(&doctor::check_gpio(&n, &b.env(FakePi::default())), "gpio17").clone();
    assert_eq!(c.status, Status::Problem);
    assert!(c.message.contains("/sys/class/gpio"), "{c:?}");

    // a button on GPIO3 clashes with the OLED's I2C-1 SCL
    cfg.triggers = vec!["gpio:3".into()];
    let checks = doctor::check_gpio(&Needs::of(&cfg), &b.env(FakePi::default()));
    let c = checks
        .iter()
        .find(|c| c.name == "gpio3" && c.message.contains("used twice"))
        .expect("clash");
    assert!(c.message.contains("I2C-1 SCL"), "{c:?}");

    // no GPIO chip at all (not a Pi)
    for f in ["gpiochip0", "gpiochip1"] {
        std::fs::remove_file(b.root.join("dev").join(f)).unwrap();
    }
    cfg.triggers = vec!["gpio:17".into()];
    let checks = doctor::check_gpio(&Needs::of(&cfg), &b.env(FakePi::default()));
    assert_eq!(find(&checks, "gpio").status, Status::Problem);
}

#[test]
fn spi_panel_needs_spidev_and_its_pins() {
    let b = Board::new();
    let cfg = DeviceConfig {
        displays: vec!["st7789:dc=25,rst=27,bl=18".into()],
        ..Default::default()
    };
    let n = Needs::of(&cfg);
    assert_eq!(n.spi, vec![(0, 0)]);
    assert_eq!(
        doctor::check_spi(0, 0, &b.env(FakePi::default())).status,
        Status::Ok
    );
    let c = doctor::check_spi(0, 1, &b.env(FakePi::default()));
    assert_eq!(c.status, Status::Problem);
    assert!(c.fix.as_ref().unwrap().contains("dtparam=spi=on"), "{c:?}");
    let checks = doctor::check_gpio(&n, &b.env(FakePi::default()));
    for p in ["gpio25", "gpio27", "gpio18"] {
        assert_eq!(find(&checks, p).status, Status::Ok);
    }
}

#[test]
fn model_sha256_and_head_against_backbone() {
    let shared = common::shared();
    let tmp = tempfile::tempdir().unwrap();
    let models = tmp.path().join("models");
    std::fs::create_dir_all(&models).unwrap();
    let mut cfg = DeviceConfig {
        models_dir: Some(models.clone()),
        ..Default::default()
    };

    let (c, fp) = doctor::check_model(&cfg);
    assert_eq!(c.status, Status::Problem);
    assert!(
        fp.is_none() && c.fix.as_ref().unwrap().contains("edgetune models install"),
        "{c:?}"
    );

    // a truncated model file
    let onnx = "mobilenet_v2_1.0_224_features.onnx";
    let bytes = std::fs::read(shared.join("models").join(onnx)).unwrap();
    std::fs::write(models.join(onnx), &bytes[..1000]).unwrap();
    let (c, _) = doctor::check_model(&cfg);
    assert_eq!(c.status, Status::Problem);
    assert!(c.message.contains("sha256"), "{c:?}");

    std::fs::write(models.join(onnx), &bytes).unwrap();
    let (c, fp) = doctor::check_model(&cfg);
    assert_eq!(c.status, Status::Ok, "{c:?}");
    let fp = fp.unwrap();

    let head = tmp.path().join("head.safetensors");
    let c = doctor::check_head(Some(&head), Some(&fp));
    assert_eq!(c.status, Status::Problem);
    assert!(c.fix.as_ref().unwrap().contains("capture"), "{c:?}");

    write_head(&head, &fp);
    assert_eq!(
        doctor::check_head(Some(&head), Some(&fp)).status,
        Status::Ok
    );
    let c = doctor::check_head(Some(&head), Some("0123456789abcdef"));
    assert_eq!(c.status, Status::Problem);
    assert!(c.message.contains("trained on"), "{c:?}");
    assert_eq!(
        doctor::check_head(Some(&head), None).status,
        Status::Warning
    );

    std::fs::write(&head, b"not a head").unwrap();
    assert_eq!(
        doctor::check_head(Some(&head), Some(&fp)).status,
        Status::Problem
    );
    cfg.run.head = None;
    assert_eq!(
        doctor::check_head(cfg.run.head.as_deref(), Some(&fp)).status,
        Status::Problem
    );
}

#[test]
fn disk_and_state_folder() {
    let tmp = tempfile::tempdir().unwrap();
    assert_eq!(doctor::check_disk(tmp.path(), 1).status, Status::Ok);
    let free = doctor::free_mb(tmp.path()).unwrap();
    let c = doctor::check_disk(tmp.path(), free + 1000);
    assert_eq!(c.status, Status::Problem);
    assert!(c.message.contains("MB free"), "{c:?}");
    assert_eq!(
        doctor::check_disk(Path::new("/nonexistent-edgetune"), 1).status,
        Status::Problem
    );
    assert_eq!(doctor::check_writable(tmp.path()).status, Status::Ok);
    assert_eq!(
        doctor::check_writable(Path::new("/nonexistent-edgetune")).status,
        Status::Problem
    );
    assert!(
        std::fs::read_dir(tmp.path()).unwrap().next().is_none(),
        "the write probe leaves nothing behind"
    );
}

fn doctor_cli(args: &[&str], path: &Path) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_edgetune"))
        .arg("doctor")
        .args(args)
        .env("PATH", path)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn cli_prints_a_line_per_check_and_fails_on_problems() {
    let b = Board::new();
    b.program("rpicam-still", "Available cameras\n0 : imx708 [4608x2592]");
    let cfg_path = b.root.join("config.toml");
    // the packaged config with the state folder moved into the temp dir
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/config.toml"),
    )
    .unwrap()
    .replace(
        "/var/lib/edgetune",
        &b.root.join("state").display().to_string(),
    );
    std::fs::write(&cfg_path, text).unwrap();
    let path = format!("{}:/usr/bin:/bin", b.root.join("bin").display());
    let common_args = [
        "--config",
        cfg_path.to_str().unwrap(),
        "--dev-root",
        b.root.join("dev").to_str().unwrap(),
        "--sys-root",
        b.root.join("sys").to_str().unwrap(),
        "--state-dir",
        b.root.join("state").to_str().unwrap(),
        "--min-free-mb",
        "1",
    ]
    .map(String::from);
    let args: Vec<&str> = common_args.iter().map(String::as_str).collect();
    let (code, out) = doctor_cli(&args, Path::new(&path));
    assert_eq!(code, 1, "{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("ok       camera: rpicam-still: 0 : imx708")),
        "{out}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("problem  model: ") && l.contains("; fix: ")),
        "{out}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with("problem  head: ")),
        "{out}"
    );
    // a regular file is not an I2C adapter: the real ioctl says so
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("problem  i2c-1: cannot probe 0x3c")),
        "{out}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with("ok       disk: ")),
        "{out}"
    );
    assert!(lines.last().unwrap().contains("problems"), "{out}");

    let mut jargs = args.clone();
    jargs.push("--json");
    let (code, out) = doctor_cli(&jargs, Path::new(&path));
    assert_eq!(code, 1);
    let j: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(j["ok"], false);
    let checks = j["checks"].as_array().unwrap();
    assert!(
        checks
            .iter()
            .any(|c| c["name"] == "camera" && c["status"] == "ok")
    );
    assert!(
        checks
            .iter()
            .all(|c| c["status"] != "problem" || c["fix"].is_string())
    );

    // a config with a typo is the one problem reported
    std::fs::write(&cfg_path, "camra = \"picam\"\n").unwrap();
    let (code, out) = doctor_cli(&args, Path::new(&path));
    assert_eq!(code, 1);
    assert!(out.starts_with("problem  config: "), "{out}");

    // nothing needed that is missing: exit 0
    let dir = b.root.join("frames");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("a.jpg"), b"x").unwrap();
    std::fs::write(&cfg_path, format!("camera = \"dir:{}\"\n", dir.display())).unwrap();
    let shared = common::shared();
    let models = b.root.join("state/models");
    std::fs::create_dir_all(&models).unwrap();
    let onnx = "mobilenet_v2_1.0_224_features.onnx";
    std::fs::copy(shared.join("models").join(onnx), models.join(onnx)).unwrap();
    let spec =
        edgetune::backbone::ModelSpec::resolve("mobilenet_v2_1.0_224_features", Some(&models))
            .unwrap();
    let fp = spec.manifest.fingerprint(&spec.verify().unwrap());
    let head = b.root.join("state/head.safetensors");
    write_head(&head, &fp);
    std::fs::write(
        &cfg_path,
        format!(
            "camera = \"dir:{}\"\nmodels_dir = \"{}\"\n[run]\nhead = \"{}\"\n",
            dir.display(),
            models.display(),
            head.display()
        ),
    )
    .unwrap();
    let (code, out) = doctor_cli(&args, Path::new(&path));
    assert_eq!(code, 0, "{out}");
    assert!(out.trim_end().ends_with("all checks passed"), "{out}");
}
