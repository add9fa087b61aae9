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
