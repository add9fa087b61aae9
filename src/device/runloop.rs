//! The `run` loop: trigger → frame → backbone → head → JSON line, display,
//! output pins. Device failures are logged and retried with back-off.

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Result, anyhow};
use serde_json::json;

use super::backoff::{Backoff, BackoffPolicy};
use super::classify::Classifier;
use super::display::Display;
use super::frame::{Frame, FrameSource};
use super::output::Outputs;
use super::screen::Screen;
use super::trigger::{Event, Trigger};

/// The devices a loop drives.
pub struct Rig {
    pub source: Box<dyn FrameSource>,
    pub triggers: Vec<Box<dyn Trigger>>,
    pub displays: Vec<Box<dyn Display>>,
    pub outputs: Outputs,
}

#[derive(Debug, Clone)]
pub struct RunOptions {
    pub top_k: usize,
    /// Below this probability the result is "unknown".
    pub threshold: f32,
    pub save_frames: Option<PathBuf>,
    pub backoff: BackoffPolicy,
    /// Stop after this many classifications.
    pub max_frames: Option<u64>,
    /// How often triggers are polled.
    pub tick: Duration,
    /// Thumbnail size kept for colour displays (longest side).
    pub thumb: u32,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            top_k: 3,
            threshold: 0.0,
            save_frames: None,
            backoff: BackoffPolicy::default(),
            max_frames: None,
            tick: Duration::from_millis(20),
            thumb: 240,
        }
    }
}

#[derive(Debug, Default, Clone)]
pub struct RunSummary {
    pub classified: u64,
    pub failures: u64,
    pub total_ms: f64,
}

/// Sleeps up to `d`, waking early on stop.
pub fn nap(d: Duration, stop: &AtomicBool) {
    let end = Instant::now() + d;
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        if now >= end {
            break;
        }
        std::thread::sleep((end - now).min(Duration::from_millis(20)));
    }
}

/// Grabs a frame, retrying with back-off. Ok(None): the source ended or we
/// were stopped.
pub fn grab_with_retry(
    source: &mut dyn FrameSource,
    backoff: &mut Backoff,
    stop: &AtomicBool,
    displays: &mut [Box<dyn Display>],
) -> Result<Option<Frame>> {
    loop {
        if stop.load(Ordering::Relaxed) {
            return Ok(None);
        }
        match source.grab() {
            Ok(f) => {
                backoff.ok();
                return Ok(f);
            }
            Err(e) => {
                show_all(displays, &Screen::Message(&format!("camera error\n{e:#}")));
                match backoff.fail(&format!("camera {}", source.name()), &e, Instant::now()) {
                    Some(d) => nap(d, stop),
                    None => {
                        return Err(e.context(format!(
                            "giving up after {} camera failures",
                            backoff.failures
                        )));
                    }
                }
            }
        }
    }
}

pub fn show_all(displays: &mut [Box<dyn Display>], s: &Screen) {
    for d in displays {
        if let Err(e) = d.show(s) {
            eprintln!("edgetune: display {}: {e:#}", d.name());
        }
    }
}

/// Polls every trigger (skipping those backing off after an error).
pub fn poll_triggers(
    triggers: &mut [Box<dyn Trigger>],
    backoffs: &mut [Backoff],
    now: Instant,
    frame: Option<&Frame>,
) -> Vec<Event> {
    let mut fired = Vec::new();
    for (t, b) in triggers.iter_mut().zip(backoffs.iter_mut()) {
        if b.waiting(now) {
            continue;
        }
        match t.poll(now, frame) {
            Ok(Some(e)) => {
                b.ok();
                fired.push(e);
            }
            Ok(None) => b.ok(),
            Err(e) => {
                // a trigger never gives up: the others keep working
                let mut policy = b.policy;
                policy.max_failures = None;
                b.policy = policy;
                b.fail(&format!("trigger {}", t.name()), &e, now);
            }
        }
    }
    fired
}

/// Time until the next trigger deadline, at most one tick.
pub fn idle(triggers: &[Box<dyn Trigger>], tick: Duration) -> Duration {
    let now = Instant::now();
    triggers
        .iter()
        .filter_map(|t| t.deadline())
        .map(|d| d.saturating_duration_since(now))
        .fold(tick, Duration::min)
}

pub fn small_thumb(f: &Frame, side: u32) -> image::RgbImage {
    f.image.thumbnail(side, side).to_rgb8()
}

pub fn run(
    rig: &mut Rig,
    clf: &mut dyn Classifier,
    opts: &RunOptions,
    out: &mut dyn Write,
    stop: &AtomicBool,
) -> Result<RunSummary> {
    let mut summary = RunSummary::default();
    let mut cam = Backoff::new(opts.backoff);
    let mut trig_backoff: Vec<Backoff> = rig
        .triggers
        .iter()
        .map(|_| Backoff::new(opts.backoff))
        .collect();
    let wants_frames = rig.triggers.iter().any(|t| t.wants_frames());
    show_all(
        &mut rig.displays,
        &Screen::Message(&format!("edgetune\n{}\nwaiting...", rig.source.name())),
    );
    let result = (|| -> Result<()> {
        loop {
            if stop.load(Ordering::Relaxed)
                || opts.max_frames.is_some_and(|m| summary.classified >= m)
            {
                return Ok(());
            }
            let now = Instant::now();
            rig.outputs.tick(now);
            if !rig.triggers.is_empty() && rig.triggers.iter().all(|t| t.finished()) {
                return Ok(());
            }
            // motion needs a frame every tick; that frame is the one classified
            let mut frame = None;
            let t_cap = Instant::now();
            if wants_frames {
                match grab_with_retry(rig.source.as_mut(), &mut cam, stop, &mut rig.displays)? {
                    Some(f) => frame = Some(f),
                    None => return Ok(()),
                }
            }
            let mut capture_ms = t_cap.elapsed().as_secs_f64() * 1e3;
            let fired = poll_triggers(&mut rig.triggers, &mut trig_backoff, now, frame.as_ref());
            if fired.is_empty() {
                nap(
                    if wants_frames {
                        opts.tick
                    } else {
                        idle(&rig.triggers, opts.tick)
                    },
                    stop,
                );
                continue;
            }
            let t0 = Instant::now();
            let frame = match frame {
                Some(f) => f,
                None => {
                    match grab_with_retry(rig.source.as_mut(), &mut cam, stop, &mut rig.displays) {
                        Ok(Some(f)) => {
                            capture_ms = t0.elapsed().as_secs_f64() * 1e3;
                            f
                        }
                        Ok(None) => return Ok(()),
                        Err(e) => return Err(e),
                    }
                }
            };
            let trigger = fired
                .iter()
                .map(|e| e.trigger.as_str())
                .collect::<Vec<_>>()
                .join("+");
            clf.refresh();
            let c = match clf.classify(&frame.image) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("edgetune: {}: cannot classify: {e:#}", frame.name);
                    summary.failures += 1;
                    continue;
                }
            };
            let labels = clf.labels();
            let top = crate::metrics::top_k(&c.probs, opts.top_k.max(1).min(labels.len()));
            let (best, p) = top
                .first()
                .map(|&(i, p)| (labels[i].as_str(), p))
                .ok_or_else(|| anyhow!("head has no labels"))?;
            let label = if p >= opts.threshold { best } else { "unknown" };
            let total_ms = capture_ms + c.backbone_ms + c.head_ms;
            let wall = SystemTime::now();
            let saved = match &opts.save_frames {
                Some(dir) => match super::capture::save_new(
                    &mut super::capture::FsSink,
                    dir,
                    &super::file_stamp(wall),
                    label,
                    &frame,
                ) {
                    Ok(p) => Some(p),
                    Err(e) => {
                        eprintln!("edgetune: --save-frames: {e:#}");
                        None
                    }
                },
                None => None,
            };
            let mut line = json!({
                "time": super::rfc3339(wall),
                "unix_ms": super::unix_ms(wall),
                "trigger": trigger,
                "frame": frame.name,
                "label": label,
                "probability": p,
                "top": top.iter().map(|&(i, p)| json!({"label": labels[i], "probability": p})).collect::<Vec<_>>(),
                "ms": {"capture": capture_ms, "backbone": c.backbone_ms, "head": c.head_ms, "total": total_ms},
            });
            if let Some(s) = saved {
                line["saved"] = json!(s);
            }
            writeln!(out, "{line}")?;
            out.flush()?;
            rig.outputs.on_result(label, p, Instant::now());
            let needs_thumb = rig.displays.iter().any(|_| true);
            let thumb = needs_thumb.then(|| small_thumb(&frame, opts.thumb));
            let screen = Screen::Result {
                label,
                confidence: p,
                latency_ms: total_ms,
                thumb: thumb.as_ref(),
            };
            show_all(&mut rig.displays, &screen);
            summary.classified += 1;
            summary.total_ms += total_ms;
        }
    })();
    shutdown(rig, out);
    result.map(|_| summary)
}

/// Pins off, screens blank, output flushed.
pub fn shutdown(rig: &mut Rig, out: &mut dyn Write) {
    rig.outputs.release();
    for d in &mut rig.displays {
        if let Err(e) = d.clear() {
            eprintln!("edgetune: display {}: {e:#}", d.name());
        }
    }
    let _ = out.flush();
}
