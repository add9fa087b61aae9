//! Raspberry Pi hardware through rppal (feature `pi`): GPIO buttons,
//! output pins, an SSD1306 OLED on I²C and ST7789/ILI9341 panels on SPI.
//! Everything opens lazily and reports errors in words, so `run` can log
//! and retry (a board booting, a user not yet in the `gpio` group).

use std::sync::mpsc::{Receiver, TryRecvError};
use std::time::Instant;

use anyhow::{Result, anyhow, bail};
use embedded_graphics::pixelcolor::{BinaryColor, Rgb565};
use embedded_graphics::prelude::*;
use rppal::gpio::{Gpio, InputPin, Level};

use super::display::Display;
use super::frame::Frame;
use super::output::OutputPin;
use super::screen::{Screen, draw_color, draw_mono};
use super::trigger::{Edge, Event, GpioSpec, Pull, Trigger};
use super::{check_opts, split_opts};

/// rppal's errors with the fix next to them.
pub fn gpio_error(e: rppal::gpio::Error) -> anyhow::Error {
    use rppal::gpio::Error as E;
    match e {
        E::UnknownModel => {
            anyhow!("GPIO: not a Raspberry Pi (unknown model): GPIO, buttons and OLEDs need a Pi")
        }
        E::PermissionDenied(p) => anyhow!(
            "GPIO: permission denied on {p}: add the user to the `gpio` group (sudo adduser $USER gpio) and log in again"
        ),
        E::PinUsed(p) => anyhow!("GPIO{p}: pin already in use (by another trigger or output?)"),
        E::PinNotAvailable(p) => anyhow!("GPIO{p}: no such pin on this board"),
        E::Io(io) if io.kind() == std::io::ErrorKind::NotFound => {
            anyhow!("GPIO: /dev/gpiomem or /dev/gpiochip0 not found (not a Pi, or GPIO disabled)")
        }
        other => anyhow!("GPIO: {other}"),
    }
}

/// A button (or any digital input) on a GPIO pin, with pull, edge and
/// debounce handled by rppal's interrupt thread.
pub struct GpioTrigger {
    spec: GpioSpec,
    pin: Option<(InputPin, Receiver<()>)>,
}

impl GpioTrigger {
    pub fn parse(s: &str) -> Result<GpioTrigger> {
        Ok(GpioTrigger {
            spec: GpioSpec::parse(s)?,
            pin: None,
        })
    }

    fn open(&self) -> Result<(InputPin, Receiver<()>)> {
        let s = &self.spec;
        let pin = Gpio::new()
            .map_err(gpio_error)?
            .get(s.pin)
            .map_err(gpio_error)?;
        let mut input = match s.pull {
            Pull::Up => pin.into_input_pullup(),
            Pull::Down => pin.into_input_pulldown(),
            Pull::Off => pin.into_input(),
        };
        let edge = match s.edge {
            Edge::Falling => rppal::gpio::Trigger::FallingEdge,
            Edge::Rising => rppal::gpio::Trigger::RisingEdge,
            Edge::Both => rppal::gpio::Trigger::Both,
        };
        let (tx, rx) = std::sync::mpsc::channel();
        input
            .set_async_interrupt(edge, Some(s.debounce), move |_| {
                let _ = tx.send(());
            })
            .map_err(gpio_error)?;
        Ok((input, rx))
    }
}

impl Trigger for GpioTrigger {
    fn name(&self) -> String {
        format!("gpio:{}", self.spec.pin)
    }
    fn poll(&mut self, _: Instant, _: Option<&Frame>) -> Result<Option<Event>> {
        if self.pin.is_none() {
            self.pin = Some(self.open()?);
        }
        let (_, rx) = self.pin.as_ref().unwrap();
        match rx.try_recv() {
            Ok(()) => Ok(Some(Event {
                trigger: self.name(),
                label: self.spec.label.clone(),
            })),
            Err(TryRecvError::Empty) => Ok(None),
            Err(TryRecvError::Disconnected) => {
                self.pin = None; // reopen next poll
                bail!("GPIO{}: interrupt thread stopped", self.spec.pin)
            }
        }
    }
}

/// An output pin; rppal puts it back as it found it when dropped.
pub struct GpioOutput {
    pin_no: u8,
    active_low: bool,
    pin: Option<rppal::gpio::OutputPin>,
}

impl GpioOutput {
    pub fn new(pin: u8, active_low: bool) -> Self {
        GpioOutput {
            pin_no: pin,
            active_low,
            pin: None,
        }
    }
}

impl OutputPin for GpioOutput {
    fn name(&self) -> String {
        format!("gpio:{}", self.pin_no)
    }
    fn set(&mut self, on: bool) -> Result<()> {
        if self.pin.is_none() {
            let p = Gpio::new()
                .map_err(gpio_error)?
                .get(self.pin_no)
                .map_err(gpio_error)?;
            self.pin = Some(if self.active_low {
                p.into_output_high()
            } else {
                p.into_output_low()
            });
        }
        let level = if on != self.active_low {
            Level::High
        } else {
            Level::Low
        };
        self.pin.as_mut().unwrap().write(level);
        Ok(())
    }
}

/// A hardware display as two closures over its driver (the driver types
/// are long generic names; nothing else needs them).
type ShowFn = Box<dyn FnMut(&Screen) -> Result<()>>;
type ClearFn = Box<dyn FnMut() -> Result<()>>;

struct DriverDisplay {
    name: String,
    show: ShowFn,
    clear: ClearFn,
}

impl Display for DriverDisplay {
    fn name(&self) -> String {
        self.name.clone()
    }
    fn show(&mut self, s: &Screen) -> Result<()> {
        (self.show)(s)
    }
    fn clear(&mut self) -> Result<()> {
        (self.clear)()
    }
}

pub fn open_display(kind: &str, rest: &str) -> Result<Box<dyn Display>> {
    match kind {
        "oled" | "ssd1306" => open_ssd1306(rest),
        _ => open_mipi(kind, rest),
    }
}

/// `oled[:bus=1,addr=0x3c]` — the common 0.96" 128×64 I²C module on I²C-1
/// (SDA GPIO2 pin 3, SCL GPIO3 pin 5).
fn open_ssd1306(rest: &str) -> Result<Box<dyn Display>> {
    use ssd1306::prelude::*;
    use ssd1306::{I2CDisplayInterface, Ssd1306};
    let (_, opts) = split_opts(rest);
    check_opts(rest, &opts, &["bus", "addr"])?;
    let bus: u8 = opts
        .get("bus")
        .map_or(Ok(1), |b| b.parse())
        .map_err(|_| anyhow!("oled: bus is a number, e.g. 1"))?;
    let addr = match opts.get("addr") {
        Some(a) => u8::from_str_radix(a.trim_start_matches("0x"), 16)
            .map_err(|_| anyhow!("oled: addr is hex, e.g. 0x3c"))?,
        None => 0x3c,
    };
    let i2c = rppal::i2c::I2c::with_bus(bus).map_err(|e| match e {
        rppal::i2c::Error::Io(io) if io.kind() == std::io::ErrorKind::NotFound => {
            anyhow!("oled: /dev/i2c-{bus} not found: enable I2C (sudo raspi-config → Interface Options → I2C)")
        }
        rppal::i2c::Error::Io(io) if io.kind() == std::io::ErrorKind::PermissionDenied => {
            anyhow!("oled: permission denied on /dev/i2c-{bus}: add the user to the `i2c` group")
        }
        e => anyhow!("oled: I2C bus {bus}: {e}"),
    })?;
    let iface = I2CDisplayInterface::new_custom_address(i2c, addr);
    let mut d = Ssd1306::new(iface, DisplaySize128x64, DisplayRotation::Rotate0)
        .into_buffered_graphics_mode();
    d.init().map_err(|e| anyhow!("oled: no SSD1306 answering at 0x{addr:02x} on I2C-{bus} ({e:?}); check wiring and `i2cdetect -y {bus}`"))?;
    let d = std::rc::Rc::new(std::cell::RefCell::new(d));
    let d2 = d.clone();
    Ok(Box::new(DriverDisplay {
        name: format!("oled:i2c-{bus}@0x{addr:02x}"),
        show: Box::new(move |s| {
            let mut d = d.borrow_mut();
            draw_mono(&mut *d, s).map_err(|e| anyhow!("oled: {e:?}"))?;
            d.flush().map_err(|e| anyhow!("oled: {e:?}"))
        }),
        clear: Box::new(move || {
            let mut d = d2.borrow_mut();
            d.clear(BinaryColor::Off)
                .map_err(|e| anyhow!("oled: {e:?}"))?;
            d.flush().map_err(|e| anyhow!("oled: {e:?}"))
        }),
    }))
}

/// `st7789[:dc=25,rst=27,bl=18,spi=0,cs=0,size=240x240,mhz=40]` and
/// `ili9341[:...]` (size 320x240).
fn open_mipi(kind: &str, rest: &str) -> Result<Box<dyn Display>> {
    use mipidsi::interface::SpiInterface;
    use mipidsi::options::ColorInversion;
    use rppal::spi::{Bus, Mode, SimpleHalSpiDevice, SlaveSelect, Spi};
    let (_, opts) = split_opts(rest);
    check_opts(
        rest,
        &opts,
        &["dc", "rst", "bl", "spi", "cs", "size", "mhz", "invert"],
    )?;
    let num = |k: &str, d: u32| -> Result<u32> {
        opts.get(k).map_or(Ok(d), |v| {
            v.parse()
                .map_err(|_| anyhow!("{kind}: {k}={v}: expected a number"))
        })
    };
    let (dw, dh) = if kind == "st7789" {
        (240, 240)
    } else {
        (320, 240)
    };
    let (w, h) = match opts.get("size") {
        Some(s) => s
            .split_once('x')
            .and_then(|(w, h)| Some((w.parse::<u16>().ok()?, h.parse::<u16>().ok()?)))
            .ok_or_else(|| anyhow!("{kind}: size={s}: expected WxH"))?,
        None => (dw, dh),
    };
    let bus = match num("spi", 0)? {
        0 => Bus::Spi0,
        1 => Bus::Spi1,
        b => bail!("{kind}: spi={b}: expected 0 or 1"),
    };
    let ss = match num("cs", 0)? {
        0 => SlaveSelect::Ss0,
        1 => SlaveSelect::Ss1,
        c => bail!("{kind}: cs={c}: expected 0 or 1"),
    };
    let spi = Spi::new(bus, ss, num("mhz", 40)? * 1_000_000, Mode::Mode0).map_err(|e| match e {
        rppal::spi::Error::Io(io) if io.kind() == std::io::ErrorKind::NotFound => {
            anyhow!("{kind}: /dev/spidev{}.{} not found: enable SPI (sudo raspi-config → Interface Options → SPI)", num("spi", 0).unwrap_or(0), num("cs", 0).unwrap_or(0))
        }
        e => anyhow!("{kind}: SPI: {e}"),
    })?;
    let gpio = Gpio::new().map_err(gpio_error)?;
    let out = |n: u32| -> Result<rppal::gpio::OutputPin> {
        Ok(gpio.get(n as u8).map_err(gpio_error)?.into_output())
    };
    let dc = out(num("dc", 25)?)?;
    let rst = out(num("rst", 27)?)?;
    let bl = match opts.get("bl") {
        Some(_) => {
            let mut p = out(num("bl", 18)?)?;
            p.set_high();
            Some(p)
        }
        None => None,
    };
    // the driver keeps a reference to its transfer buffer for its lifetime
    let buffer: &'static mut [u8] = Box::leak(vec![0u8; 4096].into_boxed_slice());
    let di = SpiInterface::new(SimpleHalSpiDevice::new(spi), dc, buffer);
    let mut delay = rppal::hal::Delay::new();
    let invert = if opts.get("invert").is_some_and(|v| v == "0" || v == "no") {
        ColorInversion::Normal
    } else if kind == "st7789" {
        ColorInversion::Inverted // most ST7789 modules need it
    } else {
        ColorInversion::Normal
    };
    macro_rules! finish {
        ($model:expr) => {{
            let d = mipidsi::Builder::new($model, di)
                .display_size(w, h)
                .invert_colors(invert)
                .reset_pin(rst)
                .init(&mut delay)
                .map_err(|e| anyhow!("{kind}: init failed: {e:?}"))?;
            let d = std::rc::Rc::new(std::cell::RefCell::new((d, bl)));
            let d2 = d.clone();
            Box::new(DriverDisplay {
                name: format!("{kind}:{w}x{h}"),
                show: Box::new(move |s| {
                    draw_color(&mut d.borrow_mut().0, s).map_err(|e| anyhow!("{e:?}"))
                }),
                clear: Box::new(move || {
                    let mut g = d2.borrow_mut();
                    g.0.clear(Rgb565::BLACK).map_err(|e| anyhow!("{e:?}"))?;
                    if let Some(b) = g.1.as_mut() {
                        b.set_low();
                    }
                    Ok(())
                }),
            }) as Box<dyn Display>
        }};
    }
    Ok(if kind == "st7789" {
        finish!(mipidsi::models::ST7789)
    } else {
        finish!(mipidsi::models::ILI9341Rgb565)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // Off a Pi these open nothing but must fail with words, not panic.
    #[test]
    fn off_board_errors_are_clear() {
        let mut t = GpioTrigger::parse("17").unwrap();
        let e = t.poll(Instant::now(), None).err().unwrap().to_string();
        assert!(e.contains("GPIO"), "{e}");
        let mut o = GpioOutput::new(18, false);
        assert!(o.set(true).err().unwrap().to_string().contains("GPIO"));
        let e = open_display("oled", "").err().unwrap().to_string();
        assert!(e.contains("oled"), "{e}");
        let e = open_display("st7789", "").err().unwrap().to_string();
        assert!(e.contains("st7789"), "{e}");
    }
}
