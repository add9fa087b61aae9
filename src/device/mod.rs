//! `edgetune run` and `edgetune capture` on a board: the hardware sits
//! behind small traits so the loops run (and are tested) anywhere.
//!
//! - [`frame`]: [`FrameSource`] — dir:, cmd:, the Pi camera, V4L2 webcams.
//! - [`trigger`]: [`Trigger`] — interval, motion, stdin, SIGUSR1, GPIO.
//! - [`screen`]: what a screen shows, drawn with embedded-graphics into any
//!   `DrawTarget` (mono 128×64 OLED layout and a colour layout).
//! - [`display`]: [`Display`] — png:DIR (headless), SSD1306, ST7789/ILI9341.
//! - [`output`]: [`OutputPin`] — a pin per label (LED, relay).
//! - [`classify`]: [`Classifier`] — backbone + head, reloaded on change.
//! - [`runloop`] and [`capture`]: the two loops; [`backoff`]: retries.
//! - [`config`]: the TOML config file.
//! - `pi` (feature `pi`): the rppal-backed implementations.

pub mod backoff;
pub mod capture;
pub mod classify;
pub mod config;
pub mod display;
pub mod frame;
pub mod output;
pub mod runloop;
pub mod screen;
pub mod trigger;

#[cfg(feature = "pi")]
pub mod pi;
#[cfg(all(feature = "v4l2", target_pointer_width = "64"))]
pub mod v4l2;

pub use classify::{Classification, Classifier};
pub use display::Display;
pub use frame::{Frame, FrameSource};
pub use output::OutputPin;
pub use trigger::{Event, Trigger};

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Result, bail};

/// `500ms`, `2s`, `1.5s`, `3m`, or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| c.is_ascii_alphabetic()) {
        Some(i) => (&s[..i], &s[i..]),
        None => (s, "s"),
    };
    let v: f64 = match num.trim().parse() {
        Ok(v) if v >= 0.0 && f64::is_finite(v) => v,
        _ => bail!("{s:?}: expected a duration like 500ms, 2s or 1m"),
    };
    let secs = match unit {
        "ms" => v / 1e3,
        "s" => v,
        "m" | "min" => v * 60.0,
        _ => bail!("{s:?}: unknown unit {unit:?} (ms, s or m)"),
    };
    Ok(Duration::from_secs_f64(secs))
}

/// Splits `a,b,key=value,...` into positional parts and options.
pub fn split_opts(s: &str) -> (Vec<String>, BTreeMap<String, String>) {
    let mut pos = Vec::new();
    let mut opts = BTreeMap::new();
    for part in s.split(',').filter(|p| !p.is_empty()) {
        match part.split_once('=') {
            Some((k, v)) => {
                opts.insert(k.trim().to_string(), v.trim().to_string());
            }
            None => pos.push(part.trim().to_string()),
        }
    }
    (pos, opts)
}

/// Rejects options a spec does not know (typos should not pass silently).
pub fn check_opts(spec: &str, opts: &BTreeMap<String, String>, known: &[&str]) -> Result<()> {
    for k in opts.keys() {
        if !known.contains(&k.as_str()) {
            bail!(
                "{spec:?}: unknown option {k:?} (known: {})",
                known.join(", ")
            );
        }
    }
    Ok(())
}

/// Milliseconds since the Unix epoch.
pub fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// (year, month, day, hour, minute, second, millisecond) in UTC.
fn civil(t: SystemTime) -> (i64, u32, u32, u32, u32, u32, u32) {
    let ms = unix_ms(t) as i64;
    let (days, rem) = (ms.div_euclid(86_400_000), ms.rem_euclid(86_400_000));
    // Howard Hinnant's days-to-civil
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + if m <= 2 { 1 } else { 0 };
    let s = (rem / 1000) as u32;
    (y, m, d, s / 3600, s / 60 % 60, s % 60, (rem % 1000) as u32)
}

/// `2024-05-01T12:34:56.789Z`.
pub fn rfc3339(t: SystemTime) -> String {
    let (y, mo, d, h, mi, s, ms) = civil(t);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{ms:03}Z")
}

/// `20240501-123456-789`: sortable and safe in file names.
pub fn file_stamp(t: SystemTime) -> String {
    let (y, mo, d, h, mi, s, ms) = civil(t);
    format!("{y:04}{mo:02}{d:02}-{h:02}{mi:02}{s:02}-{ms:03}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert!(parse_duration("fast").is_err());
        assert!(parse_duration("3h").is_err());
    }

    #[test]
    fn times() {
        let t = UNIX_EPOCH + Duration::from_millis(1_714_566_896_789);
        assert_eq!(rfc3339(t), "2024-05-01T12:34:56.789Z");
        assert_eq!(file_stamp(t), "20240501-123456-789");
    }
}
