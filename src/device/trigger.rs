//! Triggers: when to take a picture. Polled by the loop every tick, so
//! several can be combined (`--trigger interval:5s --trigger gpio:17`).

use std::io::BufRead;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, TryRecvError};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use image::{DynamicImage, GrayImage, imageops::FilterType};

use super::frame::Frame;
use super::{check_opts, parse_duration, split_opts};

/// A trigger fired.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Which trigger: `interval`, `motion`, `stdin`, `sigusr1`, `gpio:17`.
    pub trigger: String,
    /// A label carried by the trigger (a class button, a stdin line), used
    /// by `capture` to file the photo.
    pub label: Option<String>,
}

pub trait Trigger {
    fn name(&self) -> String;
    /// Motion triggers look at frames: the loop grabs one each tick for them.
    fn wants_frames(&self) -> bool {
        false
    }
    /// Fired since the last poll? `frame` is this tick's frame, if any.
    fn poll(&mut self, now: Instant, frame: Option<&Frame>) -> Result<Option<Event>>;
    /// When it will next fire on its own (the loop sleeps no longer).
    fn deadline(&self) -> Option<Instant> {
        None
    }
    /// Will never fire again (stdin closed).
    fn finished(&self) -> bool {
        false
    }
}

/// Opens a `--trigger` spec.
pub fn open(spec: &str) -> Result<Box<dyn Trigger>> {
    let (kind, rest) = spec.split_once(':').unwrap_or((spec, ""));
    match kind {
        "interval" => {
            let every = if rest.is_empty() {
                Duration::from_secs(5)
            } else {
                parse_duration(rest)?
            };
            Ok(Box::new(Interval::new(every)))
        }
        "motion" => Ok(Box::new(Motion::parse(rest)?)),
        "stdin" => Ok(Box::new(Stdin::spawn())),
        "sigusr1" | "signal" => Ok(Box::new(Signal::usr1()?)),
        "gpio" | "button" => open_gpio(rest),
        _ => bail!(
            "--trigger {spec:?}: expected interval:DURATION, motion[:THRESHOLD,cooldown=D], stdin, \
             sigusr1 or gpio:PIN[,pull=up|down|off][,edge=falling|rising|both][,debounce=MS][,label=NAME]"
        ),
    }
}

#[cfg(feature = "pi")]
fn open_gpio(rest: &str) -> Result<Box<dyn Trigger>> {
    Ok(Box::new(super::pi::GpioTrigger::parse(rest)?))
}

#[cfg(not(feature = "pi"))]
fn open_gpio(rest: &str) -> Result<Box<dyn Trigger>> {
    GpioSpec::parse(rest)?;
    bail!(
        "gpio:{rest}: this edgetune was built without the `pi` feature (cargo build --features pi)"
    )
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pull {
    Up,
    Down,
    Off,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Edge {
    Falling,
    Rising,
    Both,
}

/// `PIN[,pull=up|down|off][,edge=falling|rising|both][,debounce=30ms][,label=NAME]`.
/// Default: pull-up, falling edge, 30 ms — a button from the pin to GND.
#[derive(Debug, Clone, PartialEq)]
pub struct GpioSpec {
    pub pin: u8,
    pub pull: Pull,
    pub edge: Edge,
    pub debounce: Duration,
    pub label: Option<String>,
}

impl GpioSpec {
    pub fn parse(s: &str) -> Result<GpioSpec> {
        let (pos, opts) = split_opts(s);
        check_opts(s, &opts, &["pull", "edge", "debounce", "label"])?;
        let pin = match pos.first().map(|p| p.parse::<u8>()) {
            Some(Ok(p)) if p <= 27 => p,
            _ => bail!("gpio:{s}: expected a BCM pin number 0-27, e.g. gpio:17"),
        };
        let pull = match opts.get("pull").map(String::as_str).unwrap_or("up") {
            "up" => Pull::Up,
            "down" => Pull::Down,
            "off" | "none" => Pull::Off,
            p => bail!("gpio:{s}: pull={p}: expected up, down or off"),
        };
        let edge = match opts.get("edge").map(String::as_str).unwrap_or("falling") {
            "falling" => Edge::Falling,
            "rising" => Edge::Rising,
            "both" => Edge::Both,
            e => bail!("gpio:{s}: edge={e}: expected falling, rising or both"),
        };
        let debounce = match opts.get("debounce") {
            Some(d) if d.chars().all(|c| c.is_ascii_digit()) => Duration::from_millis(d.parse()?),
            Some(d) => parse_duration(d)?,
            None => Duration::from_millis(30),
        };
        Ok(GpioSpec {
            pin,
            pull,
            edge,
            debounce,
            label: opts.get("label").cloned(),
        })
    }
}

/// Fires immediately, then every `every` (`interval:0` = as fast as possible).
pub struct Interval {
    every: Duration,
    next: Option<Instant>,
}

impl Interval {
    pub fn new(every: Duration) -> Self {
        Interval { every, next: None }
    }
}

impl Trigger for Interval {
    fn name(&self) -> String {
        "interval".into()
    }
    fn poll(&mut self, now: Instant, _: Option<&Frame>) -> Result<Option<Event>> {
        match self.next {
            Some(t) if now < t => Ok(None),
            prev => {
                // keep the cadence, but do not burst after a long classification
                let base = prev.map_or(now, |t| (t + self.every).max(now));
                self.next = Some(if prev.is_some() {
                    base
                } else {
                    now + self.every
                });
                Ok(Some(Event {
                    trigger: "interval".into(),
                    label: None,
                }))
            }
        }
    }
    fn deadline(&self) -> Option<Instant> {
        self.next
    }
}

/// One event per line on stdin; a non-empty line is passed on as a label.
pub struct Stdin {
    rx: Receiver<Option<String>>,
    closed: bool,
}

impl Stdin {
    pub fn spawn() -> Stdin {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::stdin().lock().lines() {
                let Ok(l) = line else { break };
                if tx.send(Some(l)).is_err() {
                    break;
                }
            }
            let _ = tx.send(None);
        });
        Stdin { rx, closed: false }
    }

    /// For tests: events from a channel (None = closed).
    pub fn from_channel(rx: Receiver<Option<String>>) -> Stdin {
        Stdin { rx, closed: false }
    }
}

impl Trigger for Stdin {
    fn name(&self) -> String {
        "stdin".into()
    }
    fn poll(&mut self, _: Instant, _: Option<&Frame>) -> Result<Option<Event>> {
        match self.rx.try_recv() {
            Ok(Some(l)) => {
                let l = l.trim();
                let label = (!l.is_empty()).then(|| l.to_string());
                Ok(Some(Event {
                    trigger: "stdin".into(),
                    label,
                }))
            }
            Ok(None) | Err(TryRecvError::Disconnected) => {
                self.closed = true;
                Ok(None)
            }
            Err(TryRecvError::Empty) => Ok(None),
        }
    }
    fn finished(&self) -> bool {
        self.closed
    }
}

/// `kill -USR1 <pid>` takes a picture (scripts, cron, a web hook).
pub struct Signal {
    flag: Arc<AtomicBool>,
}

impl Signal {
    pub fn usr1() -> Result<Signal> {
        let flag = Arc::new(AtomicBool::new(false));
        signal_hook::flag::register(signal_hook::consts::SIGUSR1, flag.clone())?;
        Ok(Signal { flag })
    }
}

impl Trigger for Signal {
    fn name(&self) -> String {
        "sigusr1".into()
    }
    fn poll(&mut self, _: Instant, _: Option<&Frame>) -> Result<Option<Event>> {
        Ok(self.flag.swap(false, Ordering::Relaxed).then(|| Event {
            trigger: "sigusr1".into(),
            label: None,
        }))
    }
}

/// Frame differencing on a small grayscale copy: cheap enough for every
/// frame on a Pi Zero, and insensitive to sensor noise.
pub struct MotionDetector {
    prev: Option<GrayImage>,
    /// A pixel "changed" when its gray level moved by more than this.
    pub pixel_delta: u8,
}

pub const MOTION_W: u32 = 32;
pub const MOTION_H: u32 = 24;

impl Default for MotionDetector {
    fn default() -> Self {
        MotionDetector {
            prev: None,
            pixel_delta: 25,
        }
    }
}

impl MotionDetector {
    /// Fraction of pixels that changed since the previous frame (None for
    /// the first frame).
    pub fn score(&mut self, img: &DynamicImage) -> Option<f32> {
        let small =
            image::imageops::resize(&img.to_luma8(), MOTION_W, MOTION_H, FilterType::Triangle);
        let score = self.prev.as_ref().map(|p| {
            let changed = p
                .as_raw()
                .iter()
                .zip(small.as_raw())
                .filter(|(a, b)| a.abs_diff(**b) > self.pixel_delta)
                .count();
            changed as f32 / (MOTION_W * MOTION_H) as f32
        });
        self.prev = Some(small);
        score
    }
}

/// `motion[:THRESHOLD][,cooldown=DURATION][,delta=N]`: fires when at least
/// THRESHOLD (default 0.05) of the pixels changed, then rests for the
/// cool-down (default 2s) so one passing bee is one picture.
pub struct Motion {
    det: MotionDetector,
    pub threshold: f32,
    pub cooldown: Duration,
    last: Option<Instant>,
    pub last_score: Option<f32>,
}

impl Motion {
    pub fn new(threshold: f32, cooldown: Duration) -> Motion {
        Motion {
            det: MotionDetector::default(),
            threshold,
            cooldown,
            last: None,
            last_score: None,
        }
    }

    pub fn parse(s: &str) -> Result<Motion> {
        let (pos, opts) = split_opts(s);
        check_opts(s, &opts, &["cooldown", "delta", "threshold"])?;
        let th = pos.first().or(opts.get("threshold"));
        let threshold = match th.map(|t| t.parse::<f32>()) {
            None => 0.05,
            Some(Ok(t)) if (0.0..=1.0).contains(&t) => t,
            _ => bail!(
                "motion:{s}: the threshold is a fraction of changed pixels in [0, 1], e.g. motion:0.05"
            ),
        };
        let cooldown = opts
            .get("cooldown")
            .map(|c| parse_duration(c))
            .transpose()?
            .unwrap_or(Duration::from_secs(2));
        let mut m = Motion::new(threshold, cooldown);
        if let Some(d) = opts.get("delta") {
            m.det.pixel_delta = d
                .parse()
                .map_err(|_| anyhow::anyhow!("motion:{s}: delta is 0-255"))?;
        }
        Ok(m)
    }
}

impl Trigger for Motion {
    fn name(&self) -> String {
        "motion".into()
    }
    fn wants_frames(&self) -> bool {
        true
    }
    fn poll(&mut self, now: Instant, frame: Option<&Frame>) -> Result<Option<Event>> {
        let Some(f) = frame else { return Ok(None) };
        let score = self.det.score(&f.image);
        self.last_score = score;
        let resting = self.last.is_some_and(|t| now < t + self.cooldown);
        if score.is_some_and(|s| s >= self.threshold && s > 0.0) && !resting {
            self.last = Some(now);
            return Ok(Some(Event {
                trigger: "motion".into(),
                label: None,
            }));
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gpio_specs() {
        let g = GpioSpec::parse("17").unwrap();
        assert_eq!(
            (g.pin, g.pull, g.edge, g.debounce),
            (17, Pull::Up, Edge::Falling, Duration::from_millis(30))
        );
        let g = GpioSpec::parse("27,pull=down,edge=rising,debounce=50,label=bees").unwrap();
        assert_eq!(
            (g.pull, g.edge, g.debounce, g.label.as_deref()),
            (
                Pull::Down,
                Edge::Rising,
                Duration::from_millis(50),
                Some("bees")
            )
        );
        assert!(GpioSpec::parse("40").is_err());
        assert!(GpioSpec::parse("17,pul=up").is_err());
    }

    #[test]
    fn interval_fires_then_waits() {
        let mut t = Interval::new(Duration::from_millis(100));
        let now = Instant::now();
        assert!(t.poll(now, None).unwrap().is_some());
        assert!(
            t.poll(now + Duration::from_millis(50), None)
                .unwrap()
                .is_none()
        );
        assert!(
            t.poll(now + Duration::from_millis(100), None)
                .unwrap()
                .is_some()
        );
    }
}
