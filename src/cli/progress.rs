//! Progress display for extraction: an indicatif bar on a terminal, plain
//! lines in logs (and for tests that watch a run), or nothing.

use std::io::IsTerminal;
use std::path::Path;

use anyhow::{Result, bail};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::extract::{Progress, Source};

pub enum Display {
    Bar(ProgressBar),
    Plain(String),
    None,
}

pub fn for_mode(mode: &str, what: &str) -> Result<Display> {
    let mode = match mode {
        "auto" if std::io::stderr().is_terminal() => "bar",
        "auto" => "none",
        m => m,
    };
    Ok(match mode {
        "bar" => {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template(
                    "{prefix} [{bar:30}] {pos}/{len} {per_sec} ETA {eta} {msg}",
                )
                .unwrap()
                .progress_chars("=> "),
            );
            bar.set_prefix(what.to_string());
            Display::Bar(bar)
        }
        "plain" => Display::Plain(what.to_string()),
        "none" => Display::None,
        other => bail!("--progress {other:?}: expected auto, bar, plain or none"),
    })
}

impl Display {
    pub fn as_ref(&self) -> &dyn Progress {
        self
    }

    pub fn finish(&self) {
        if let Display::Bar(b) = self {
            b.finish_and_clear();
        }
    }
}

impl Progress for Display {
    fn start(&self, total: usize) {
        match self {
            Display::Bar(b) => b.set_length(total as u64),
            Display::Plain(what) => eprintln!("{what}: {total} images"),
            Display::None => {}
        }
    }

    fn item(&self, _path: &Path, source: Source) {
        if let Display::Bar(b) = self {
            b.inc(1);
            if source == Source::Skipped {
                b.set_message("(some skipped)");
            }
        }
    }

    fn committed(&self, done: usize, total: usize) {
        if let Display::Plain(what) = self {
            eprintln!("{what}: committed {done}/{total}");
        }
    }
}

/// Per-epoch display for `train`: a bar on a terminal, a line per epoch otherwise.
pub struct EpochBar {
    bar: Option<ProgressBar>,
    lines: bool,
}

pub fn epoch_bar(mode: &str, epochs: usize) -> EpochBar {
    let tty = std::io::stderr().is_terminal();
    match mode {
        "bar" | "auto" if tty || mode == "bar" => {
            let bar =
                ProgressBar::with_draw_target(Some(epochs as u64), ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template("epoch {pos}/{len} [{bar:30}] {msg}")
                    .unwrap()
                    .progress_chars("=> "),
            );
            EpochBar {
                bar: Some(bar),
                lines: false,
            }
        }
        "none" => EpochBar {
            bar: None,
            lines: false,
        },
        _ => EpochBar {
            bar: None,
            lines: true,
        },
    }
}

impl EpochBar {
    pub fn epoch(&self, m: &crate::head::EpochMetrics) {
        let val = match (m.val_loss, m.val_acc) {
            (Some(l), Some(a)) => format!("  val loss {l:.4} acc {a:.4}"),
            _ => String::new(),
        };
        let line = format!(
            "loss {:.4} acc {:.4}{val}  lr {:.2e}{}",
            m.train_loss,
            m.train_acc,
            m.lr,
            if m.improved { " *" } else { "" }
        );
        if let Some(b) = &self.bar {
            b.set_position(m.epoch as u64);
            b.set_message(line.clone());
            b.println(format!("epoch {:>3}/{}  {line}", m.epoch, m.epochs));
        } else if self.lines {
            eprintln!("epoch {:>3}/{}  {line}", m.epoch, m.epochs);
        }
    }

    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}
