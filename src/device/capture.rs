//! `capture`: labelled training photos taken on the device, written as
//! DATASET/LABEL/<timestamp>.jpg, never overwriting, optionally with their
//! features extracted into the cache right away.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Instant, SystemTime};

use anyhow::{Context, Result, anyhow, bail};
use serde_json::json;

use super::backoff::Backoff;
use super::frame::Frame;
use super::runloop::{
    Rig, RunOptions, grab_with_retry, idle, nap, poll_triggers, show_all, shutdown, small_thumb,
};
use super::screen::Screen;

/// Where photos go: the file system, or a fake (a full disk in tests).
pub trait FrameSink {
    /// Creates `path` with `bytes`; fails with AlreadyExists rather than
    /// replacing a file.
    fn create_new(&mut self, path: &Path, bytes: &[u8]) -> std::io::Result<()>;
}

pub struct FsSink;

impl FrameSink for FsSink {
    fn create_new(&mut self, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
        if let Some(d) = path.parent() {
            std::fs::create_dir_all(d)?;
        }
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)?;
        let r = f.write_all(bytes).and_then(|_| f.sync_all());
        if r.is_err() {
            // no half-written photo in the dataset
            let _ = std::fs::remove_file(path);
        }
        r
    }
}

fn is_disk_full(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::StorageFull || e.raw_os_error() == Some(28)
}

/// Writes `frame` as DIR/<stamp>[-label].jpg, adding -1, -2… when the name
/// is taken. Returns the path.
pub fn save_new(
    sink: &mut dyn FrameSink,
    dir: &Path,
    stamp: &str,
    tag: &str,
    frame: &Frame,
) -> Result<PathBuf> {
    let bytes = frame.jpeg()?;
    save_bytes(sink, dir, stamp, tag, &bytes)
}

fn save_bytes(
    sink: &mut dyn FrameSink,
    dir: &Path,
    stamp: &str,
    tag: &str,
    bytes: &[u8],
) -> Result<PathBuf> {
    let base = if tag.is_empty() {
        stamp.to_string()
    } else {
        format!("{stamp}-{tag}")
    };
    for n in 0..1000 {
        let name = if n == 0 {
            format!("{base}.jpg")
        } else {
            format!("{base}-{n}.jpg")
        };
        let path = dir.join(name);
        match sink.create_new(&path, bytes) {
            Ok(()) => return Ok(path),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) if is_disk_full(&e) => {
                bail!(
                    "{}: disk full, the photo was not saved; free some space (df -h {})",
                    path.display(),
                    dir.display()
                )
            }
            Err(e) => return Err(anyhow!("{}: cannot write: {e}", path.display())),
        }
    }
    bail!(
        "{}: 1000 photos named {base}*.jpg already exist",
        dir.display()
    )
}

#[derive(Debug, Clone)]
pub struct CaptureOptions {
    pub dataset: PathBuf,
    /// Default label; a trigger may carry its own (a button per class).
    pub label: Option<String>,
    pub count: Option<u32>,
    pub run: RunOptions,
}

#[derive(Debug, Default, Clone)]
pub struct CaptureSummary {
    pub saved: Vec<PathBuf>,
    pub extracted: u32,
}

/// Labels must be plain folder names.
pub fn check_label(l: &str) -> Result<()> {
    if l.is_empty() || l.starts_with('.') || l.contains(['/', '\\']) || l == "unknown" {
        bail!(
            "label {l:?}: expected a plain folder name (not empty, no '/', not starting with '.', not \"unknown\")"
        );
    }
    Ok(())
}

/// Extracts a saved photo's features into the cache (optional).
pub type OnSaved<'a> = dyn FnMut(&Path, &[u8]) -> Result<()> + 'a;

pub fn capture(
    rig: &mut Rig,
    sink: &mut dyn FrameSink,
    mut on_saved: Option<&mut OnSaved>,
    opts: &CaptureOptions,
    out: &mut dyn Write,
    stop: &AtomicBool,
) -> Result<CaptureSummary> {
    if let Some(l) = &opts.label {
        check_label(l)?;
    }
    let mut summary = CaptureSummary::default();
    let mut cam = Backoff::new(opts.run.backoff);
    let mut trig_backoff: Vec<Backoff> = rig
        .triggers
        .iter()
        .map(|_| Backoff::new(opts.run.backoff))
        .collect();
    let wants_frames = rig.triggers.iter().any(|t| t.wants_frames());
    let first = opts
        .label
        .clone()
        .unwrap_or_else(|| "press a button".into());
    show_all(
        &mut rig.displays,
        &Screen::Capture {
            label: &first,
            done: 0,
            total: opts.count,
            thumb: None,
        },
    );
    let result = (|| -> Result<()> {
        loop {
            let done = summary.saved.len() as u32;
            if stop.load(Ordering::Relaxed) || opts.count.is_some_and(|c| done >= c) {
                return Ok(());
            }
            if !rig.triggers.is_empty() && rig.triggers.iter().all(|t| t.finished()) {
                return Ok(());
            }
            let now = Instant::now();
            let mut frame = None;
            if wants_frames {
                match grab_with_retry(rig.source.as_mut(), &mut cam, stop, &mut rig.displays)? {
                    Some(f) => frame = Some(f),
                    None => return Ok(()),
                }
            }
            let fired = poll_triggers(&mut rig.triggers, &mut trig_backoff, now, frame.as_ref());
            let Some(ev) = fired.first() else {
                nap(
                    if wants_frames {
                        opts.run.tick
                    } else {
                        idle(&rig.triggers, opts.run.tick)
                    },
                    stop,
                );
                continue;
            };
            let label = match ev.label.clone().or_else(|| opts.label.clone()) {
                Some(l) => l,
                None => {
                    eprintln!(
                        "edgetune: {} fired without a label and no --label was given; skipped",
                        ev.trigger
                    );
                    continue;
                }
            };
            if let Err(e) = check_label(&label) {
                eprintln!("edgetune: {e:#}; skipped");
                continue;
            }
            let frame = match frame {
                Some(f) => f,
                None => {
                    match grab_with_retry(rig.source.as_mut(), &mut cam, stop, &mut rig.displays)? {
                        Some(f) => f,
                        None => return Ok(()),
                    }
                }
            };
            let wall = SystemTime::now();
            let bytes = frame.jpeg()?;
            let dir = opts.dataset.join(&label);
            // a full disk ends the session: nothing more can be saved
            let path = save_bytes(sink, &dir, &super::file_stamp(wall), "", &bytes)
                .with_context(|| format!("{} photos were saved before", summary.saved.len()))?;
            let mut line = json!({
                "time": super::rfc3339(wall), "trigger": ev.trigger, "label": label,
                "saved": path, "n": summary.saved.len() + 1,
            });
            if let Some(f) = on_saved.as_deref_mut() {
                match f(&path, &bytes) {
                    Ok(()) => {
                        summary.extracted += 1;
                        line["extracted"] = json!(true);
                    }
                    Err(e) => eprintln!(
                        "edgetune: {}: feature extraction failed: {e:#}",
                        path.display()
                    ),
                }
            }
            writeln!(out, "{line}")?;
            out.flush()?;
            summary.saved.push(path);
            let thumb = small_thumb(&frame, opts.run.thumb);
            let n = summary.saved.len() as u32;
            show_all(
                &mut rig.displays,
                &Screen::Capture {
                    label: &label,
                    done: n,
                    total: opts.count,
                    thumb: Some(&thumb),
                },
            );
        }
    })();
    shutdown(rig, out);
    result.map(|_| summary)
}
