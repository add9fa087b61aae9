//! Frame sources: where `run` and `capture` get their pictures.
//!
//! `dir:PATH` replays a folder's images in order (tests, demos, offline),
//! `cmd:SHELL` runs a command that prints one JPEG, `picam` runs rpicam-still
//! (falling back to libcamera-still), `/dev/videoN` or `v4l2:/dev/videoN`
//! reads a webcam (feature `v4l2`).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use image::DynamicImage;

use crate::preprocess;

/// One captured picture.
pub struct Frame {
    pub image: DynamicImage,
    /// A name for the JSON line: the file for dir:, `picam#12` otherwise.
    pub name: String,
    /// The encoded bytes as captured (JPEG), when they match `image`; kept
    /// so saved frames are not re-encoded.
    pub encoded: Option<Vec<u8>>,
}

impl Frame {
    /// JPEG bytes of the frame: the original when there is one.
    pub fn jpeg(&self) -> Result<Vec<u8>> {
        if let Some(b) = self
            .encoded
            .as_ref()
            .filter(|b| b.starts_with(&[0xFF, 0xD8]))
        {
            return Ok(b.clone());
        }
        let mut out = Vec::new();
        let rgb = self.image.to_rgb8();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 92)
            .encode_image(&rgb)
            .context("cannot encode the frame as JPEG")?;
        Ok(out)
    }
}

pub trait FrameSource {
    fn name(&self) -> String;
    /// The next frame; `Ok(None)` when a finite source (dir:) is exhausted.
    fn grab(&mut self) -> Result<Option<Frame>>;
}

impl<T: FrameSource + ?Sized> FrameSource for Box<T> {
    fn name(&self) -> String {
        (**self).name()
    }
    fn grab(&mut self) -> Result<Option<Frame>> {
        (**self).grab()
    }
}

/// Resolution and orientation asked of a camera.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CameraSettings {
    pub width: Option<u32>,
    pub height: Option<u32>,
    /// Clockwise degrees: 0, 90, 180 or 270 (a camera mounted sideways).
    pub rotation: u16,
    /// dir: starts again at the first image when it reaches the end.
    pub repeat: bool,
}

/// Opens a `--camera` spec.
pub fn open(spec: &str, settings: &CameraSettings) -> Result<Box<dyn FrameSource>> {
    if ![0, 90, 180, 270].contains(&settings.rotation) {
        bail!(
            "--rotation {}: expected 0, 90, 180 or 270",
            settings.rotation
        );
    }
    let inner: Box<dyn FrameSource> = if let Some(d) = spec.strip_prefix("dir:") {
        Box::new(DirSource::open(Path::new(d), settings.repeat)?)
    } else if let Some(c) = spec.strip_prefix("cmd:") {
        Box::new(CommandSource::shell(c))
    } else if spec == "picam" || spec == "rpicam" || spec == "libcamera" {
        Box::new(CommandSource::picamera(settings))
    } else if spec.starts_with("/dev/video") || spec.starts_with("v4l2:") {
        let dev = spec.strip_prefix("v4l2:").unwrap_or(spec);
        open_v4l2(dev, settings)?
    } else {
        bail!(
            "--camera {spec:?}: expected picam, /dev/videoN (or v4l2:/dev/videoN), cmd:COMMAND \
             or dir:FOLDER"
        );
    };
    Ok(if settings.rotation == 0 {
        inner
    } else {
        Box::new(Rotated {
            inner,
            degrees: settings.rotation,
        })
    })
}

#[cfg(all(feature = "v4l2", target_pointer_width = "64"))]
fn open_v4l2(dev: &str, s: &CameraSettings) -> Result<Box<dyn FrameSource>> {
    Ok(Box::new(super::v4l2::V4l2Source::new(
        dev, s.width, s.height,
    )))
}

#[cfg(not(all(feature = "v4l2", target_pointer_width = "64")))]
fn open_v4l2(dev: &str, _: &CameraSettings) -> Result<Box<dyn FrameSource>> {
    bail!(
        "{dev}: this edgetune has no V4L2 support (built without the `v4l2` feature, or for a 32-bit target, where its crate does not build)"
    )
}

/// Rotates every frame (the camera is mounted turned).
struct Rotated {
    inner: Box<dyn FrameSource>,
    degrees: u16,
}

impl FrameSource for Rotated {
    fn name(&self) -> String {
        self.inner.name()
    }
    fn grab(&mut self) -> Result<Option<Frame>> {
        Ok(self.inner.grab()?.map(|mut f| {
            f.image = match self.degrees {
                90 => f.image.rotate90(),
                180 => f.image.rotate180(),
                270 => f.image.rotate270(),
                _ => f.image,
            };
            f.encoded = None; // no longer the same picture
            f
        }))
    }
}

/// A folder of images replayed in name order (recursively, so a dataset
/// folder DIR/<label>/ works and frame names carry the label).
pub struct DirSource {
    root: PathBuf,
    files: Vec<PathBuf>,
    next: usize,
    repeat: bool,
}

impl DirSource {
    pub fn open(root: &Path, repeat: bool) -> Result<DirSource> {
        if !root.is_dir() {
            bail!("dir:{}: no such folder", root.display());
        }
        let mut files = Vec::new();
        let mut stack = vec![root.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d)
                .with_context(|| format!("dir:{}: cannot list", d.display()))?
            {
                let p = e?.path();
                let hidden = p
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with('.'));
                if hidden {
                    continue;
                }
                if p.is_dir() {
                    stack.push(p);
                } else if crate::dataset::is_image_path(&p) {
                    files.push(p);
                }
            }
        }
        files.sort();
        if files.is_empty() {
            bail!("dir:{}: no images in this folder", root.display());
        }
        Ok(DirSource {
            root: root.to_path_buf(),
            files,
            next: 0,
            repeat,
        })
    }

    /// Number of images (never 0: an empty folder is an error).
    pub fn frames(&self) -> usize {
        self.files.len()
    }
}

impl FrameSource for DirSource {
    fn name(&self) -> String {
        format!("dir:{}", self.root.display())
    }

    fn grab(&mut self) -> Result<Option<Frame>> {
        if self.next >= self.files.len() {
            if !self.repeat {
                return Ok(None);
            }
            self.next = 0;
        }
        let p = self.files[self.next].clone();
        self.next += 1; // a bad file is skipped on the retry, not retried forever
        let bytes = std::fs::read(&p).with_context(|| format!("{}: cannot read", p.display()))?;
        let image = preprocess::decode(&bytes).map_err(|e| anyhow!("{}: {e}", p.display()))?;
        let name = p
            .strip_prefix(&self.root)
            .unwrap_or(&p)
            .to_string_lossy()
            .into_owned();
        Ok(Some(Frame {
            image,
            name,
            encoded: Some(bytes),
        }))
    }
}

/// A command that writes one image to stdout per run: `cmd:` or the Pi
/// camera apps.
pub struct CommandSource {
    label: String,
    /// Programs to try in order (the first one that exists is used).
    candidates: Vec<Vec<String>>,
    picam: bool,
    pub timeout: Duration,
    count: u64,
}

impl CommandSource {
    pub fn shell(cmd: &str) -> CommandSource {
        CommandSource {
            label: format!("cmd:{cmd}"),
            candidates: vec![vec!["sh".into(), "-c".into(), cmd.into()]],
            picam: false,
            timeout: Duration::from_secs(20),
            count: 0,
        }
    }

    /// rpicam-still (Bookworm), else libcamera-still (Bullseye): one JPEG on
    /// stdout, no preview window, minimal delay.
    pub fn picamera(s: &CameraSettings) -> CommandSource {
        let mut args: Vec<String> = ["-n", "-t", "1", "--encoding", "jpg", "-o", "-"]
            .map(String::from)
            .to_vec();
        if let Some(w) = s.width {
            args.extend(["--width".into(), w.to_string()]);
        }
        if let Some(h) = s.height {
            args.extend(["--height".into(), h.to_string()]);
        }
        let with = |p: &str| {
            std::iter::once(p.to_string())
                .chain(args.iter().cloned())
                .collect()
        };
        CommandSource {
            label: "picam".into(),
            candidates: vec![with("rpicam-still"), with("libcamera-still")],
            picam: true,
            timeout: Duration::from_secs(20),
            count: 0,
        }
    }

    fn spawn(&self) -> Result<(std::process::Child, String)> {
        for argv in &self.candidates {
            match Command::new(&argv[0])
                .args(&argv[1..])
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
            {
                Ok(c) => return Ok((c, argv[0].clone())),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(anyhow!("{}: cannot start {}: {e}", self.label, argv[0])),
            }
        }
        if self.picam {
            bail!(
                "picam: neither rpicam-still nor libcamera-still is installed \
                 (sudo apt install rpicam-apps), or use --camera /dev/video0"
            )
        }
        bail!("{}: cannot start {}", self.label, self.candidates[0][0])
    }
}

/// Last non-empty line of a program's stderr, for one-line errors.
fn last_line(s: &str) -> String {
    s.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim()
        .chars()
        .take(200)
        .collect()
}

/// What the Pi camera apps say when there is no camera or it is in use.
fn explain_picam(stderr: &str) -> Option<&'static str> {
    let s = stderr.to_lowercase();
    if s.contains("no cameras available") || s.contains("no camera") {
        Some("no camera detected: check the ribbon cable and `rpicam-hello --list-cameras`")
    } else if s.contains("busy") || s.contains("in use") || s.contains("failed to acquire camera") {
        Some("camera busy: another program (rpicam-*, a second edgetune) is using it")
    } else if s.contains("permission denied") {
        Some("permission denied: add the user to the `video` group")
    } else {
        None
    }
}

impl FrameSource for CommandSource {
    fn name(&self) -> String {
        self.label.clone()
    }

    fn grab(&mut self) -> Result<Option<Frame>> {
        let (mut child, prog) = self.spawn()?;
        // read both pipes on threads so a chatty command cannot block on a full pipe
        let mut out = child.stdout.take().unwrap();
        let mut err = child.stderr.take().unwrap();
        let t_out = std::thread::spawn(move || {
            let mut b = Vec::new();
            out.read_to_end(&mut b).map(|_| b)
        });
        let t_err = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = err.read_to_string(&mut s);
            s
        });
        let t0 = Instant::now();
        let status = loop {
            if let Some(st) = child.try_wait()? {
                break st;
            }
            if t0.elapsed() > self.timeout {
                let _ = child.kill();
                let _ = child.wait();
                bail!(
                    "{}: {prog} printed no image within {} s (killed)",
                    self.label,
                    self.timeout.as_secs()
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let bytes = t_out
            .join()
            .map_err(|_| anyhow!("reader thread panicked"))??;
        let stderr = t_err.join().unwrap_or_default();
        if !status.success() {
            let why = if self.picam {
                explain_picam(&stderr)
            } else {
                None
            };
            let detail = last_line(&stderr);
            let code = status
                .code()
                .map(|c| format!("status {c}"))
                .unwrap_or("a signal".into());
            return Err(match why {
                Some(w) => anyhow!("{}: {w} ({prog} exited with {code}: {detail})", self.label),
                None if detail.is_empty() => anyhow!("{}: {prog} exited with {code}", self.label),
                None => anyhow!("{}: {prog} exited with {code}: {detail}", self.label),
            });
        }
        let image = preprocess::decode(&bytes).map_err(|e| {
            anyhow!(
                "{}: the command printed {} bytes that are not an image ({e})",
                self.label,
                bytes.len()
            )
        })?;
        self.count += 1;
        Ok(Some(Frame {
            image,
            name: format!("{}#{}", self.label, self.count),
            encoded: Some(bytes),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picam_errors_are_explained() {
        assert!(
            explain_picam("ERROR: *** no cameras available ***")
                .unwrap()
                .contains("ribbon")
        );
        assert!(
            explain_picam("failed to acquire camera /base/soc: Device or resource busy")
                .unwrap()
                .contains("busy")
        );
        assert!(explain_picam("something else").is_none());
    }

    #[test]
    fn unknown_camera_spec() {
        let e = open("webcam", &CameraSettings::default())
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("expected picam"), "{e}");
    }
}
