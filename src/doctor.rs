//! `edgetune doctor`: checks, on the device, what the config needs — the
//! camera program and a camera, the I²C bus and the display's address, the
//! SPI device, the GPIO pins (free, no clashes), the model's sha256, the head
//! against the backbone, the state folder (writable, free space) — and says
//! what to fix.
//!
//! Every check takes its paths from [`Env`] (`/dev`, `/sys`, `$PATH`, the
//! state folder) and talks to hardware only through [`Hardware`], so tests
//! run them against temporary folders and fakes off the board.

use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::backbone::ModelSpec;
use crate::device::config::DeviceConfig;
use crate::device::split_opts;
use crate::device::trigger::GpioSpec;
use crate::headfile::HeadFile;
use crate::manifest::{DEFAULT_MODEL, default_models_dir};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    /// Works, but worth a look (low disk, nothing to check).
    Warning,
    /// `edgetune run` will not work as configured.
    Problem,
}

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: String,
    pub status: Status,
    pub message: String,
    /// What to do about a problem or warning.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Check {
    pub fn ok(name: &str, message: impl Into<String>) -> Check {
        Check {
            name: name.into(),
            status: Status::Ok,
            message: message.into(),
            fix: None,
        }
    }
    pub fn problem(name: &str, message: impl Into<String>, fix: impl Into<String>) -> Check {
        Check {
            name: name.into(),
            status: Status::Problem,
            message: message.into(),
            fix: Some(fix.into()),
        }
    }
    pub fn warning(name: &str, message: impl Into<String>, fix: impl Into<String>) -> Check {
        Check {
            name: name.into(),
            status: Status::Warning,
            message: message.into(),
            fix: Some(fix.into()),
        }
    }
    /// `ok       camera: ...` / `problem  i2c-1: ...; fix: ...`
    pub fn line(&self) -> String {
        let status = match self.status {
            Status::Ok => "ok",
            Status::Warning => "warning",
            Status::Problem => "problem",
        };
        let mut s = format!("{status:<8} {}: {}", self.name, self.message);
        if let Some(f) = &self.fix {
            s.push_str("; fix: ");
            s.push_str(f);
        }
        s
    }
}

/// Whether any check is a problem (the exit status of `edgetune doctor`).
pub fn has_problem(checks: &[Check]) -> bool {
    checks.iter().any(|c| c.status == Status::Problem)
}

/// The few hardware questions that need ioctls. [`LinuxHardware`] asks the
/// kernel; tests answer with fakes.
pub trait Hardware {
    /// Does a device acknowledge `addr` on the I²C bus `dev`? (An SMBus
    /// "quick write", as `i2cdetect` does.)
    fn i2c_probe(&self, dev: &Path, addr: u16) -> io::Result<bool>;
    /// The chip's label (`pinctrl-bcm2711`, `pinctrl-rp1`, …) and line count.
    fn gpio_chip(&self, chip: &Path) -> io::Result<(String, u32)>;
    /// `Some(consumer)` when the line is taken (by the kernel or a program).
    fn gpio_line_user(&self, chip: &Path, line: u32) -> io::Result<Option<String>>;
}

/// Where the checks look, and their limits.
pub struct Env {
    /// `/dev` (tests: a temporary folder).
    pub dev: PathBuf,
    /// `/sys`.
    pub sys: PathBuf,
    /// `$PATH`, to find the camera programs.
    pub path_var: OsString,
    /// Run the camera program (`--list-cameras`) or `cmd:` command; off:
    /// only check that it exists.
    pub camera_test: bool,
    /// Folder whose free space and writability are checked (/var/lib/edgetune).
    pub state_dir: Option<PathBuf>,
    /// Below this many MB free: a problem; below 5× this: a warning.
    pub min_free_mb: u64,
    pub hardware: Box<dyn Hardware>,
}

impl Env {
    /// The real system: `/dev`, `/sys`, `$PATH`, the kernel's ioctls.
    pub fn system() -> Env {
        Env {
            dev: "/dev".into(),
            sys: "/sys".into(),
            path_var: std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into()),
            camera_test: true,
            state_dir: None,
            min_free_mb: 200,
            hardware: Box::new(LinuxHardware),
        }
    }

    /// `/dev/...` in a spec, resolved against [`Env::dev`].
    fn dev_path(&self, p: &str) -> PathBuf {
        match p.strip_prefix("/dev/") {
            Some(rest) => self.dev.join(rest),
            None => PathBuf::from(p),
        }
    }
}

/// Runs every check the config calls for. `config_path` is only for messages.
pub fn run_checks(cfg: &DeviceConfig, config_path: Option<&Path>, env: &Env) -> Vec<Check> {
    let mut out = Vec::new();
    match config_path {
        Some(p) => out.push(Check::ok("config", format!("{} parses", p.display()))),
        None => out.push(Check::warning(
            "config",
            "no config file: checking the defaults (camera picam, no display, no pins)",
            "pass --config FILE (the service uses /etc/edgetune/config.toml)",
        )),
    }
    out.push(check_camera(cfg.camera.as_deref().unwrap_or("picam"), env));
    let needs = Needs::of(cfg);
    for (spec, err) in &needs.bad_specs {
        out.push(Check::problem(
            "config",
            format!("{spec:?}: {err}"),
            "correct it in the config",
        ));
    }
    for &(bus, addr) in &needs.i2c {
        out.push(check_i2c(bus, addr, env));
    }
    for &(bus, cs) in &needs.spi {
        out.push(check_spi(bus, cs, env));
    }
    out.extend(check_gpio(&needs, env));
    let (model_check, fingerprint) = check_model(cfg);
    out.push(model_check);
    out.push(check_head(cfg.run.head.as_deref(), fingerprint.as_deref()));
    let state = env.state_dir.clone().or_else(|| {
        let p = PathBuf::from("/var/lib/edgetune");
        if p.is_dir() {
            Some(p)
        } else {
            cfg.run
                .head
                .as_ref()
                .and_then(|h| h.parent().map(Path::to_path_buf))
        }
    });
    match state {
        Some(dir) => {
            out.push(check_writable(&dir));
            out.push(check_disk(&dir, env.min_free_mb));
        }
        None => out.push(Check::warning(
            "disk",
            "no state folder to check",
            "pass --state-dir DIR",
        )),
    }
    out
}

// ------------------------------------------------------------------ what the config uses

/// Hardware the config uses, from its trigger, display and output specs.
#[derive(Debug, Default, PartialEq)]
pub struct Needs {
    /// (bus, address) of I²C displays.
    pub i2c: Vec<(u8, u16)>,
    /// (bus, chip select) of SPI panels.
    pub spi: Vec<(u8, u8)>,
    /// (BCM pin, what uses it).
    pub pins: Vec<(u32, String)>,
    /// Specs that do not parse.
    pub bad_specs: Vec<(String, String)>,
}

impl Needs {
    pub fn of(cfg: &DeviceConfig) -> Needs {
        let mut n = Needs::default();
        for t in &cfg.triggers {
            let (kind, rest) = t.split_once(':').unwrap_or((t, ""));
            if kind == "gpio" || kind == "button" {
                match GpioSpec::parse(rest) {
                    Ok(g) => n.pins.push((g.pin as u32, format!("trigger {t}"))),
                    Err(e) => n.bad_specs.push((t.clone(), format!("{e:#}"))),
                }
            }
        }
        for o in &cfg.run.outputs {
            let target = o.split_once('=').map(|(_, r)| r).unwrap_or("");
            if let Some(rest) = target.strip_prefix("gpio:") {
                match rest.split(',').next().unwrap_or("").trim().parse::<u32>() {
                    Ok(p) if p <= 27 => n.pins.push((p, format!("output {o}"))),
                    _ => n
                        .bad_specs
                        .push((o.clone(), "expected LABEL=gpio:PIN with PIN 0-27".into())),
                }
            }
        }
        for d in &cfg.displays {
            let (kind, rest) = d.split_once(':').unwrap_or((d, ""));
            let (_, opts) = split_opts(rest);
            let num = |k: &str, default: u32| -> Result<u32, String> {
                opts.get(k).map_or(Ok(default), |v| {
                    v.parse().map_err(|_| format!("{k}={v} is not a number"))
                })
            };
            match kind {
                "oled" | "ssd1306" => {
                    let bus = num("bus", 1);
                    let addr = opts.get("addr").map_or(Ok(0x3c), |a| {
                        u16::from_str_radix(a.trim_start_matches("0x"), 16)
                            .map_err(|_| format!("addr={a} is not hex"))
                    });
                    match (bus, addr) {
                        (Ok(b), Ok(a)) => {
                            n.i2c.push((b as u8, a));
                            if b == 1 {
                                n.pins.push((2, format!("I2C-1 SDA ({d})")));
                                n.pins.push((3, format!("I2C-1 SCL ({d})")));
                            }
                        }
                        (Err(e), _) | (_, Err(e)) => n.bad_specs.push((d.clone(), e)),
                    }
                }
                "st7789" | "ili9341" => {
                    let vals = (
                        num("spi", 0),
                        num("cs", 0),
                        num("dc", 25),
                        num("rst", 27),
                        num("bl", 18),
                    );
                    match vals {
                        (Ok(spi), Ok(cs), Ok(dc), Ok(rst), Ok(bl)) => {
                            n.spi.push((spi as u8, cs as u8));
                            n.pins.push((dc, format!("{kind} DC")));
                            n.pins.push((rst, format!("{kind} RST")));
                            n.pins.push((bl, format!("{kind} backlight")));
                            if spi == 0 {
                                for (p, what) in [(10, "MOSI"), (11, "SCLK")] {
                                    n.pins.push((p, format!("SPI0 {what} ({kind})")));
                                }
                                n.pins.push((
                                    if cs == 0 { 8 } else { 7 },
                                    format!("SPI0 CE{cs} ({kind})"),
                                ));
                            }
                        }
                        (a, b, c, d2, e) => {
                            let err = [a, b, c, d2, e]
                                .into_iter()
                                .find_map(|r| r.err())
                                .unwrap_or_default();
                            n.bad_specs.push((d.clone(), err));
                        }
                    }
                }
                _ => {}
            }
        }
        n
    }
}

// ------------------------------------------------------------------ camera

fn find_program(name: &str, path_var: &OsString) -> Option<PathBuf> {
    std::env::split_paths(path_var)
        .map(|d| d.join(name))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// Runs a command with a time limit; `(exit ok, stdout, stderr)`.
fn run_with_timeout(mut cmd: Command, limit: Duration) -> io::Result<(bool, Vec<u8>, String)> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let (mut so, mut se) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let out_t = std::thread::spawn(move || {
        let mut v = Vec::new();
        io::Read::read_to_end(&mut so, &mut v).map(|_| v)
    });
    let err_t = std::thread::spawn(move || {
        let mut v = Vec::new();
        io::Read::read_to_end(&mut se, &mut v).map(|_| v)
    });
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait()? {
            break s;
        }
        if start.elapsed() > limit {
            child.kill().ok();
            child.wait().ok();
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("no answer in {} s", limit.as_secs()),
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stdout = out_t.join().unwrap_or_else(|_| Ok(Vec::new()))?;
    let stderr = err_t.join().unwrap_or_else(|_| Ok(Vec::new()))?;
    Ok((
        status.success(),
        stdout,
        String::from_utf8_lossy(&stderr).into_owned(),
    ))
}

fn last_line(s: &str) -> String {
    s.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim()
        .chars()
        .take(160)
        .collect()
}

/// The `camera` setting: its program is there and (with `camera_test`) works.
pub fn check_camera(spec: &str, env: &Env) -> Check {
    const N: &str = "camera";
    if matches!(spec, "picam" | "rpicam" | "libcamera") {
        let Some(prog) = ["rpicam-still", "libcamera-still"]
            .iter()
            .find_map(|p| find_program(p, &env.path_var))
        else {
            return Check::problem(
                N,
                "picam: neither rpicam-still nor libcamera-still is installed",
                "sudo apt install rpicam-apps (or set camera = \"/dev/video0\" for a USB webcam)",
            );
        };
        if !env.camera_test {
            return Check::ok(
                N,
                format!("{} found (not run: --no-camera-test)", prog.display()),
            );
        }
        let mut cmd = Command::new(&prog);
        cmd.arg("--list-cameras");
        return match run_with_timeout(cmd, Duration::from_secs(20)) {
            Err(e) => Check::problem(
                N,
                format!("{} --list-cameras: {e}", prog.display()),
                "check the camera with rpicam-hello --list-cameras",
            ),
            Ok((_, out, err)) => {
                let text = format!("{}{err}", String::from_utf8_lossy(&out));
                let first = text
                    .lines()
                    .map(str::trim)
                    .find(|l| l.starts_with("0 :") || l.starts_with("0:"));
                match first {
                    Some(cam) if !text.contains("No cameras available") => Check::ok(
                        N,
                        format!(
                            "{}: {cam}",
                            prog.file_name().unwrap_or_default().to_string_lossy()
                        ),
                    ),
                    _ => Check::problem(
                        N,
                        format!(
                            "{}: no camera detected ({})",
                            prog.display(),
                            last_line(&text)
                        ),
                        "check the ribbon cable (contacts, orientation), camera_auto_detect=1 in \
                         /boot/firmware/config.txt, then reboot; rpicam-hello --list-cameras",
                    ),
                }
            }
        };
    }
    if let Some(dir) = spec.strip_prefix("dir:") {
        let n = std::fs::read_dir(dir).map(|r| r.count()).unwrap_or(0);
        return if n > 0 {
            Check::ok(N, format!("{spec}: {n} entries"))
        } else {
            Check::problem(
                N,
                format!("{spec}: missing or empty folder"),
                "point dir: at a folder of images",
            )
        };
    }
    if let Some(cmdline) = spec.strip_prefix("cmd:") {
        if !env.camera_test {
            return Check::ok(N, format!("{spec} (not run: --no-camera-test)"));
        }
        let mut cmd = Command::new("/bin/sh");
        cmd.args(["-c", cmdline]);
        return match run_with_timeout(cmd, Duration::from_secs(20)) {
            Ok((true, out, _)) if out.starts_with(&[0xFF, 0xD8]) => {
                Check::ok(N, format!("{spec}: printed a JPEG ({} bytes)", out.len()))
            }
            Ok((ok, out, err)) => Check::problem(
                N,
                format!(
                    "{spec}: {} ({} bytes on stdout, not a JPEG){}",
                    if ok { "exited 0" } else { "failed" },
                    out.len(),
                    if err.trim().is_empty() {
                        String::new()
                    } else {
                        format!(": {}", last_line(&err))
                    }
                ),
                "the command must print one JPEG image on stdout",
            ),
            Err(e) => Check::problem(
                N,
                format!("{spec}: {e}"),
                "the command must print one JPEG image on stdout",
            ),
        };
    }
    let dev = spec.strip_prefix("v4l2:").unwrap_or(spec);
    if dev.starts_with("/dev/") {
        let p = env.dev_path(dev);
        return match std::fs::OpenOptions::new().read(true).write(true).open(&p) {
            Ok(_) => Check::ok(N, format!("{dev} opens read/write")),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Check::problem(
                N,
                format!("{dev} does not exist"),
                "plug the webcam in and look at ls /dev/video*; set camera = \"/dev/videoN\"",
            ),
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => Check::problem(
                N,
                format!("{dev}: permission denied"),
                "add the user to the video group (sudo adduser edgetune video), then restart the service",
            ),
            Err(e) => Check::problem(N, format!("{dev}: {e}"), "check the webcam"),
        };
    }
    Check::problem(
        N,
        format!("{spec:?}: unknown camera"),
        "use picam, /dev/videoN, cmd:COMMAND or dir:FOLDER",
    )
}

// ------------------------------------------------------------------ I²C, SPI

const ENABLE_I2C: &str = "enable I2C: dtparam=i2c_arm=on in /boot/firmware/config.txt and i2c-dev in \
    /etc/modules-load.d (scripts/prepare-sd.sh does both; or sudo raspi-config nonint do_i2c 0), then reboot";

/// `/dev/i2c-BUS` is there and usable, and a device answers at `addr`.
pub fn check_i2c(bus: u8, addr: u16, env: &Env) -> Check {
    let name = format!("i2c-{bus}");
    let dev = env.dev.join(format!("i2c-{bus}"));
    match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&dev)
    {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Check::problem(
                &name,
                format!("{} does not exist", dev.display()),
                ENABLE_I2C,
            );
        }
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
            return Check::problem(
                &name,
                format!("{}: permission denied", dev.display()),
                "add the user to the i2c group (sudo adduser edgetune i2c), then restart the service",
            );
        }
        Err(e) => return Check::problem(&name, format!("{}: {e}", dev.display()), ENABLE_I2C),
        Ok(_) => {}
    }
    match env.hardware.i2c_probe(&dev, addr) {
        Ok(true) => Check::ok(
            &name,
            format!("a device answers at 0x{addr:02x} on {}", dev.display()),
        ),
        Ok(false) => Check::problem(
            &name,
            format!("nothing answers at 0x{addr:02x} on {}", dev.display()),
            format!(
                "check the display's wiring (SDA GPIO2 pin 3, SCL GPIO3 pin 5, 3V3, GND) and its address \
                 with i2cdetect -y {bus} (0x3c or 0x3d: set addr= in the display spec)"
            ),
        ),
        Err(e) => Check::problem(
            &name,
            format!("cannot probe 0x{addr:02x} on {}: {e}", dev.display()),
            format!("is it an I2C adapter? try i2cdetect -y {bus}"),
        ),
    }
}

/// `/dev/spidevBUS.CS` is there and usable.
pub fn check_spi(bus: u8, cs: u8, env: &Env) -> Check {
    let name = format!("spi{bus}.{cs}");
    let dev = env.dev.join(format!("spidev{bus}.{cs}"));
    match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&dev)
    {
        Ok(_) => Check::ok(&name, format!("{} opens read/write", dev.display())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Check::problem(
            &name,
            format!("{} does not exist", dev.display()),
            "enable SPI: dtparam=spi=on in /boot/firmware/config.txt (or sudo raspi-config nonint do_spi 0), then reboot",
        ),
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => Check::problem(
            &name,
            format!("{}: permission denied", dev.display()),
            "add the user to the spi group (sudo adduser edgetune spi), then restart the service",
        ),
        Err(e) => Check::problem(&name, format!("{}: {e}", dev.display()), "check SPI"),
    }
}

// ------------------------------------------------------------------ GPIO

/// The header's GPIO chip: the one labelled `pinctrl-*` (bcm2835, bcm2711,
/// rp1 on the Pi 5), else the first with at least 28 lines.
fn header_chip(env: &Env) -> Result<PathBuf, Check> {
    let mut chips: Vec<PathBuf> = std::fs::read_dir(&env.dev)
        .map(|r| {
            r.filter_map(|e| e.ok())
                .filter(|e| e.file_name().to_string_lossy().starts_with("gpiochip"))
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default();
    chips.sort();
    if chips.is_empty() {
        return Err(Check::problem(
            "gpio",
            format!(
                "no {}/gpiochip*: no GPIO here (not a Raspberry Pi?)",
                env.dev.display()
            ),
            "run doctor on the Pi; remove gpio: triggers and outputs elsewhere",
        ));
    }
    let mut fallback = None;
    for c in &chips {
        match env.hardware.gpio_chip(c) {
            Ok((label, _)) if label.starts_with("pinctrl-") => return Ok(c.clone()),
            Ok((_, lines)) if lines >= 28 && fallback.is_none() => fallback = Some(c.clone()),
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                return Err(Check::problem(
                    "gpio",
                    format!("{}: permission denied", c.display()),
                    "add the user to the gpio group (sudo adduser edgetune gpio), then restart the service",
                ));
            }
            _ => {}
        }
    }
    fallback.ok_or_else(|| {
        Check::problem(
            "gpio",
            format!(
                "no Raspberry Pi GPIO chip among {} chips in {}",
                chips.len(),
                env.dev.display()
            ),
            "run doctor on the Pi",
        )
    })
}

/// Pins used twice by the config, then each pin's state on the header chip.
pub fn check_gpio(needs: &Needs, env: &Env) -> Vec<Check> {
    let mut out = Vec::new();
    let mut clash = false;
    for (i, (pin, what)) in needs.pins.iter().enumerate() {
        if let Some((_, other)) = needs.pins[..i].iter().find(|(p, _)| p == pin) {
            out.push(Check::problem(
                &format!("gpio{pin}"),
                format!("used twice: {other} and {what}"),
                "give one of them another pin in the config",
            ));
            clash = true;
        }
    }
    // pins edgetune drives itself (not the I2C/SPI ones, owned by their drivers)
    let own: Vec<&(u32, String)> = needs
        .pins
        .iter()
        .filter(|(_, w)| !w.starts_with("I2C-") && !w.starts_with("SPI0"))
        .collect();
    if own.is_empty() {
        if !clash {
            out.push(Check::ok("gpio", "no GPIO pins in the config"));
        }
        return out;
    }
    let chip = match header_chip(env) {
        Ok(c) => c,
        Err(c) => {
            out.push(c);
            return out;
        }
    };
    for (pin, what) in own {
        let name = format!("gpio{pin}");
        if env.sys.join(format!("class/gpio/gpio{pin}")).exists() {
            out.push(Check::problem(
                &name,
                format!("{what}: exported through /sys/class/gpio by another program"),
                format!(
                    "echo {pin} | sudo tee /sys/class/gpio/unexport, and find what exported it"
                ),
            ));
            continue;
        }
        match env.hardware.gpio_line_user(&chip, *pin) {
            Ok(None) => out.push(Check::ok(&name, format!("{what}: free on {}", chip.display()))),
            Ok(Some(user)) => out.push(Check::problem(
                &name,
                format!("{what}: in use by {user:?}"),
                "stop that program or overlay, or pick another pin (if it is the edgetune service itself: \
                 sudo systemctl stop edgetune, then run doctor again)",
            )),
            Err(e) => out.push(Check::problem(
                &name,
                format!("{what}: cannot read line {pin} of {}: {e}", chip.display()),
                "add the user to the gpio group (sudo adduser edgetune gpio)",
            )),
        }
    }
    out
}

// ------------------------------------------------------------------ model, head, disk

/// The model file's sha256 against its manifest; returns the fingerprint.
pub fn check_model(cfg: &DeviceConfig) -> (Check, Option<String>) {
    let name = cfg
        .model
        .clone()
        .unwrap_or_else(|| DEFAULT_MODEL.to_string());
    let dir = cfg.models_dir.clone().unwrap_or_else(default_models_dir);
    let fix = format!(
        "sudo -u edgetune edgetune models install {name} --from DIR --models-dir {} (DIR holds the .onnx file)",
        dir.display()
    );
    let spec = match ModelSpec::resolve(&name, Some(&dir)) {
        Ok(s) => s,
        Err(e) => return (Check::problem("model", format!("{e:#}"), fix), None),
    };
    match spec.verify() {
        Ok(sha) => {
            let fp = spec.manifest.fingerprint(&sha);
            (
                Check::ok(
                    "model",
                    format!("{} sha256 {}… ok", spec.path.display(), &sha[..12]),
                ),
                Some(fp),
            )
        }
        Err(e) => (Check::problem("model", format!("{e:#}"), fix), None),
    }
}

/// The head loads and was trained on this backbone.
pub fn check_head(head: Option<&Path>, fingerprint: Option<&str>) -> Check {
    let Some(path) = head else {
        return Check::problem(
            "head",
            "no head in the config",
            "set head = \"...\" under [run]",
        );
    };
    if !path.exists() {
        return Check::problem(
            "head",
            format!("{} does not exist yet", path.display()),
            format!(
                "train one: sudo -u edgetune edgetune capture --config /etc/edgetune/config.toml --label NAME \
                 --count 20 (per class; retrains {}), or copy a head trained elsewhere there",
                path.display()
            ),
        );
    }
    let h = match HeadFile::load(path) {
        Ok(h) => h,
        Err(e) => {
            return Check::problem(
                "head",
                format!("{e:#}"),
                "retrain it or copy a good head file",
            );
        }
    };
    let labels = h.meta.labels.join(", ");
    match fingerprint {
        Some(fp) if fp == h.meta.backbone.fingerprint => Check::ok(
            "head",
            format!("{} ({labels}) matches the backbone", path.display()),
        ),
        Some(fp) => Check::problem(
            "head",
            format!(
                "{} was trained on {} (fingerprint {}), the model here has fingerprint {fp}",
                path.display(),
                h.meta.backbone.name,
                h.meta.backbone.fingerprint
            ),
            "retrain it here, or set model = \"...\" to the backbone it was trained on",
        ),
        None => Check::warning(
            "head",
            format!(
                "{} ({labels}) loads; not compared with the backbone",
                path.display()
            ),
            "fix the model first",
        ),
    }
}

/// The state folder takes a new file.
pub fn check_writable(dir: &Path) -> Check {
    match tempfile::Builder::new().prefix(".doctor").tempfile_in(dir) {
        Ok(_) => Check::ok("state", format!("{} is writable", dir.display())),
        Err(e) => Check::problem(
            "state",
            format!("{}: cannot write: {e}", dir.display()),
            "run doctor as the service user (sudo -u edgetune edgetune doctor); the folder must belong to edgetune",
        ),
    }
}

/// Free space of the file system holding `dir` (`df -Pk`).
pub fn free_mb(dir: &Path) -> io::Result<u64> {
    let out = Command::new("df")
        .arg("-Pk")
        .arg(dir)
        .stderr(Stdio::piped())
        .output()?;
    if !out.status.success() {
        return Err(io::Error::other(last_line(&String::from_utf8_lossy(
            &out.stderr,
        ))));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .nth(1)
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|kb| kb.parse::<u64>().ok())
        .map(|kb| kb / 1024)
        .ok_or_else(|| io::Error::other(format!("cannot read df's output: {text:?}")))
}

pub fn check_disk(dir: &Path, min_free_mb: u64) -> Check {
    let fix = "delete old frames (save_frames) or captured photos you no longer need, or use a bigger card";
    match free_mb(dir) {
        Ok(mb) if mb < min_free_mb => Check::problem(
            "disk",
            format!(
                "{} MB free on {} (under {min_free_mb} MB)",
                mb,
                dir.display()
            ),
            fix,
        ),
        Ok(mb) if mb < min_free_mb * 5 => {
            Check::warning("disk", format!("{mb} MB free on {}", dir.display()), fix)
        }
        Ok(mb) => Check::ok("disk", format!("{mb} MB free on {}", dir.display())),
        Err(e) => Check::problem(
            "disk",
            format!("{}: {e}", dir.display()),
            "check that the folder exists",
        ),
    }
}

// ------------------------------------------------------------------ Linux ioctls

/// The kernel: i2c-dev and GPIO character-device ioctls.
pub struct LinuxHardware;

mod sys {
    use std::ffi::{c_int, c_ulong};
    unsafe extern "C" {
        pub fn ioctl(fd: c_int, request: c_ulong, ...) -> c_int;
    }
    pub const I2C_SLAVE: c_ulong = 0x0703;
    pub const I2C_SMBUS: c_ulong = 0x0720;
    /// `_IOR(0xB4, 0x01, struct gpiochip_info)`, 68 bytes.
    pub const GPIO_GET_CHIPINFO: c_ulong = 0x8044_B401;
    /// `_IOWR(0xB4, 0x02, struct gpioline_info)`, 72 bytes.
    pub const GPIO_GET_LINEINFO: c_ulong = 0xC048_B402;
    pub const GPIOLINE_FLAG_KERNEL: u32 = 1;

    #[repr(C)]
    pub struct SmbusData {
        pub read_write: u8,
        pub command: u8,
        pub size: u32,
        pub data: *mut u8,
    }
    #[repr(C)]
    pub struct ChipInfo {
        pub name: [u8; 32],
        pub label: [u8; 32],
        pub lines: u32,
    }
    #[repr(C)]
    pub struct LineInfo {
        pub line_offset: u32,
        pub flags: u32,
        pub name: [u8; 32],
        pub consumer: [u8; 32],
    }
}

fn cstr(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}

impl Hardware for LinuxHardware {
    fn i2c_probe(&self, dev: &Path, addr: u16) -> io::Result<bool> {
        use std::os::fd::AsRawFd;
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(dev)?;
        let fd = f.as_raw_fd();
        // SAFETY: plain i2c-dev ioctls on an fd we own; the SMBus argument
        // lives for the call and a quick write carries no data buffer.
        unsafe {
            if sys::ioctl(fd, sys::I2C_SLAVE, addr as std::ffi::c_ulong) < 0 {
                return Err(io::Error::last_os_error());
            }
            let mut args = sys::SmbusData {
                read_write: 0,
                command: 0,
                size: 0,
                data: std::ptr::null_mut(),
            };
            if sys::ioctl(fd, sys::I2C_SMBUS, &mut args as *mut sys::SmbusData) < 0 {
                let e = io::Error::last_os_error();
                // no acknowledge: ENXIO / EREMOTEIO / EIO depending on the adapter
                return match e.raw_os_error() {
                    Some(6) | Some(121) | Some(5) => Ok(false),
                    _ => Err(e),
                };
            }
        }
        Ok(true)
    }

    fn gpio_chip(&self, chip: &Path) -> io::Result<(String, u32)> {
        use std::os::fd::AsRawFd;
        let f = std::fs::File::open(chip)?;
        let mut info = sys::ChipInfo {
            name: [0; 32],
            label: [0; 32],
            lines: 0,
        };
        // SAFETY: the kernel fills `info`, whose layout is struct gpiochip_info.
        if unsafe {
            sys::ioctl(
                f.as_raw_fd(),
                sys::GPIO_GET_CHIPINFO,
                &mut info as *mut sys::ChipInfo,
            )
        } < 0
        {
            return Err(io::Error::last_os_error());
        }
        Ok((cstr(&info.label), info.lines))
    }

    fn gpio_line_user(&self, chip: &Path, line: u32) -> io::Result<Option<String>> {
        use std::os::fd::AsRawFd;
        let f = std::fs::File::open(chip)?;
        let mut info = sys::LineInfo {
            line_offset: line,
            flags: 0,
            name: [0; 32],
            consumer: [0; 32],
        };
        // SAFETY: the kernel fills `info`, whose layout is struct gpioline_info.
        if unsafe {
            sys::ioctl(
                f.as_raw_fd(),
                sys::GPIO_GET_LINEINFO,
                &mut info as *mut sys::LineInfo,
            )
        } < 0
        {
            return Err(io::Error::last_os_error());
        }
        if info.flags & sys::GPIOLINE_FLAG_KERNEL != 0 {
            let c = cstr(&info.consumer);
            Ok(Some(if c.is_empty() { "the kernel".into() } else { c }))
        } else {
            Ok(None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ioctl_struct_sizes_match_the_kernel() {
        assert_eq!(std::mem::size_of::<sys::ChipInfo>(), 68);
        assert_eq!(std::mem::size_of::<sys::LineInfo>(), 72);
    }

    #[test]
    fn line_format() {
        let c = Check::problem("i2c-1", "missing", "enable it");
        assert_eq!(c.line(), "problem  i2c-1: missing; fix: enable it");
        assert_eq!(Check::ok("disk", "1 MB").line(), "ok       disk: 1 MB");
    }
}
