//! Output pins per label: an LED or relay switched on when its label wins
//! above a threshold, and off again after a hold time.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};

use super::{check_opts, parse_duration, split_opts};

pub trait OutputPin {
    fn name(&self) -> String;
    fn set(&mut self, on: bool) -> Result<()>;
}

/// Records what it was told (tests) and optionally logs it (`log:NAME`,
/// for trying a config without wiring).
#[derive(Clone, Default)]
pub struct FakePin {
    pub name: String,
    pub log: bool,
    pub history: Arc<Mutex<Vec<bool>>>,
}

impl OutputPin for FakePin {
    fn name(&self) -> String {
        self.name.clone()
    }
    fn set(&mut self, on: bool) -> Result<()> {
        if self.log {
            eprintln!(
                "edgetune: output {} {}",
                self.name,
                if on { "on" } else { "off" }
            );
        }
        self.history.lock().unwrap().push(on);
        Ok(())
    }
}

pub struct LabelOutput {
    pub label: String,
    pub pin: Box<dyn OutputPin>,
    pub threshold: f32,
    pub hold: Duration,
    on_until: Option<Instant>,
}

/// `LABEL=gpio:PIN[,threshold=0.8][,hold=2s][,active=low]` or `LABEL=log:NAME`.
pub fn parse(spec: &str) -> Result<LabelOutput> {
    let Some((label, rest)) = spec.split_once('=') else {
        bail!("--output {spec:?}: expected LABEL=gpio:PIN[,threshold=0.8][,hold=2s][,active=low]");
    };
    let (kind, pinspec) = rest.split_once(':').unwrap_or((rest, ""));
    let (pos, opts) = split_opts(pinspec);
    check_opts(spec, &opts, &["threshold", "hold", "active"])?;
    let threshold = match opts.get("threshold").map(|t| t.parse::<f32>()) {
        None => 0.0,
        Some(Ok(t)) if (0.0..=1.0).contains(&t) => t,
        _ => bail!("--output {spec:?}: threshold is a probability in [0, 1]"),
    };
    let hold = opts
        .get("hold")
        .map(|h| parse_duration(h))
        .transpose()?
        .unwrap_or(Duration::from_secs(2));
    let active_low = match opts.get("active").map(String::as_str) {
        None | Some("high") => false,
        Some("low") => true,
        Some(a) => bail!("--output {spec:?}: active={a}: expected high or low"),
    };
    let pin: Box<dyn OutputPin> = match kind {
        "log" => Box::new(FakePin {
            name: pos.first().cloned().unwrap_or(label.to_string()),
            log: true,
            ..Default::default()
        }),
        "gpio" => open_gpio(
            spec,
            pos.first().map(String::as_str).unwrap_or(""),
            active_low,
        )?,
        _ => bail!("--output {spec:?}: expected gpio:PIN or log:NAME after `{label}=`"),
    };
    Ok(LabelOutput {
        label: label.to_string(),
        pin,
        threshold,
        hold,
        on_until: None,
    })
}

#[cfg(feature = "pi")]
fn open_gpio(spec: &str, pin: &str, active_low: bool) -> Result<Box<dyn OutputPin>> {
    match pin.parse::<u8>() {
        Ok(p) if p <= 27 => Ok(Box::new(super::pi::GpioOutput::new(p, active_low))),
        _ => bail!("--output {spec:?}: expected a BCM pin number 0-27"),
    }
}

#[cfg(not(feature = "pi"))]
fn open_gpio(spec: &str, _: &str, _: bool) -> Result<Box<dyn OutputPin>> {
    bail!(
        "--output {spec:?}: this edgetune was built without the `pi` feature (cargo build --features pi)"
    )
}

impl LabelOutput {
    pub fn new(label: &str, pin: Box<dyn OutputPin>, threshold: f32, hold: Duration) -> Self {
        LabelOutput {
            label: label.into(),
            pin,
            threshold,
            hold,
            on_until: None,
        }
    }
}

/// All label outputs; pin errors are logged, never fatal (a relay is not
/// worth stopping the classifier for).
#[derive(Default)]
pub struct Outputs(pub Vec<LabelOutput>);

impl Outputs {
    /// A classification happened: switch on the winner's pins (if above
    /// their threshold), switch off the others.
    pub fn on_result(&mut self, label: &str, p: f32, now: Instant) {
        for o in &mut self.0 {
            let win = o.label == label && p >= o.threshold;
            if win {
                if o.on_until.is_none() {
                    set(o, true);
                }
                o.on_until = Some(now + o.hold);
            } else if o.on_until.is_some() {
                set(o, false);
                o.on_until = None;
            }
        }
    }

    /// Switch off pins whose hold time is over.
    pub fn tick(&mut self, now: Instant) {
        for o in &mut self.0 {
            if o.on_until.is_some_and(|t| now >= t) {
                set(o, false);
                o.on_until = None;
            }
        }
    }

    /// Everything off (on exit).
    pub fn release(&mut self) {
        for o in &mut self.0 {
            set(o, false);
            o.on_until = None;
        }
    }
}

fn set(o: &mut LabelOutput, on: bool) {
    if let Err(e) = o.pin.set(on) {
        eprintln!("edgetune: output {} ({}): {e:#}", o.pin.name(), o.label);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn on_above_threshold_off_after_hold() {
        let pin = FakePin::default();
        let h = pin.history.clone();
        let mut outs = Outputs(vec![LabelOutput::new(
            "bees",
            Box::new(pin),
            0.8,
            Duration::from_millis(100),
        )]);
        let t = Instant::now();
        outs.on_result("bees", 0.5, t);
        assert!(h.lock().unwrap().is_empty());
        outs.on_result("bees", 0.9, t);
        outs.on_result("bees", 0.95, t); // still on: no second switch
        assert_eq!(*h.lock().unwrap(), vec![true]);
        outs.tick(t + Duration::from_millis(50));
        outs.tick(t + Duration::from_millis(100));
        assert_eq!(*h.lock().unwrap(), vec![true, false]);
        outs.on_result("bees", 0.9, t);
        outs.on_result("ants", 0.9, t);
        assert_eq!(*h.lock().unwrap(), vec![true, false, true, false]);
    }

    #[test]
    fn specs() {
        assert!(parse("bees=log:led").is_ok());
        assert!(parse("bees").is_err());
        assert!(parse("bees=log:led,threshold=2").is_err());
    }
}
