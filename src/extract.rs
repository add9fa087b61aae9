//! Turning image files into cached feature vectors, in parallel and
//! resumably: one tract session per worker thread on different images (which
//! scales far better than tract's intra-op threads), one writer committing
//! results to the cache in small transactions, so a kill loses at most the
//! last uncommitted few and a rerun computes only what is missing.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::Result;
use ndarray::Array2;
use serde::Serialize;

use crate::backbone::Backbone;
use crate::cache::{Entry, EntryInfo, FeatureCache, ImageHash, hash_bytes};
use crate::dataset::Dataset;
use crate::preprocess;

#[derive(Debug, Clone)]
pub struct ExtractOptions {
    /// Worker threads, each with its own backbone session.
    pub threads: usize,
    /// Results per cache transaction (also committed at least every second).
    pub commit_every: usize,
    /// Return the feature vectors (training wants them; `extract` only
    /// fills the cache and should not hold thousands of vectors).
    pub keep_features: bool,
}

impl Default for ExtractOptions {
    fn default() -> Self {
        ExtractOptions {
            threads: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            commit_every: 16,
            keep_features: true,
        }
    }
}

/// Where one file's features came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    Extracted,
    Cached,
    Skipped,
}

/// Progress events for a CLI bar or a log.
pub trait Progress: Sync {
    fn start(&self, _total: usize) {}
    fn item(&self, _path: &Path, _source: Source) {}
    fn committed(&self, _done: usize, _total: usize) {}
}

pub struct NoProgress;
impl Progress for NoProgress {}

#[derive(Debug, Clone, Default, Serialize)]
pub struct ExtractReport {
    pub total: usize,
    pub extracted: usize,
    pub cached: usize,
    /// (file, reason): unreadable or undecodable images.
    pub skipped: Vec<(PathBuf, String)>,
    pub seconds: f64,
}

impl ExtractReport {
    pub fn summary(&self) -> String {
        let rate = if self.seconds > 0.0 {
            self.extracted as f64 / self.seconds
        } else {
            0.0
        };
        format!(
            "{} images: {} extracted ({rate:.1} images/s), {} from cache, {} skipped, in {:.2} s",
            self.total,
            self.extracted,
            self.cached,
            self.skipped.len(),
            self.seconds
        )
    }
}

/// One file's result.
#[derive(Debug, Clone)]
pub enum Item {
    Features(Vec<f32>),
    Skipped(String),
}

enum Msg {
    Done {
        index: usize,
        hash: Option<ImageHash>,
        result: Result<Entry, String>,
        fresh: bool,
    },
    Fatal(anyhow::Error),
}

/// Features for `files` (in order), computing and caching what is missing.
/// A bad image is skipped with its reason; a backbone or cache failure is
/// fatal and returned as an error.
pub fn extract(
    backbone: &Backbone,
    cache: &FeatureCache,
    files: &[PathBuf],
    opts: &ExtractOptions,
    progress: &dyn Progress,
) -> Result<(ExtractReport, Vec<Item>)> {
    let t0 = Instant::now();
    progress.start(files.len());
    let mut report = ExtractReport {
        total: files.len(),
        ..Default::default()
    };
    let mut items: Vec<Option<Item>> = vec![None; files.len()];
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let threads = opts.threads.max(1).min(files.len().max(1));
    let (tx, rx) = mpsc::sync_channel::<Msg>(threads * 4);

    std::thread::scope(|scope| -> Result<()> {
        for _ in 0..threads {
            let tx = tx.clone();
            let (next, stop) = (&next, &stop);
            scope.spawn(move || {
                let mut session = None;
                loop {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    if index >= files.len() {
                        return;
                    }
                    let msg = match process_one(backbone, cache, &files[index], &mut session) {
                        Ok((hash, result, fresh)) => Msg::Done {
                            index,
                            hash,
                            result,
                            fresh,
                        },
                        Err(e) => Msg::Fatal(e),
                    };
                    if tx.send(msg).is_err() {
                        return;
                    }
                }
            });
        }
        drop(tx);

        // The writer: batches fresh results into cache transactions.
        let mut pending: Vec<(ImageHash, Result<Entry, String>)> = Vec::new();
        let mut last_commit = Instant::now();
        let mut done = 0usize;
        let mut fatal = None;
        for msg in rx {
            match msg {
                Msg::Fatal(e) => {
                    stop.store(true, Ordering::Relaxed);
                    fatal.get_or_insert(e);
                }
                Msg::Done {
                    index,
                    hash,
                    result,
                    fresh,
                } => {
                    done += 1;
                    let path = &files[index];
                    let source = match (&result, fresh) {
                        (Err(_), _) => Source::Skipped,
                        (Ok(_), true) => Source::Extracted,
                        (Ok(_), false) => Source::Cached,
                    };
                    progress.item(path, source);
                    match &result {
                        Ok(e) => {
                            if fresh {
                                report.extracted += 1
                            } else {
                                report.cached += 1
                            }
                            items[index] = Some(Item::Features(if opts.keep_features {
                                e.features.clone()
                            } else {
                                Vec::new()
                            }));
                        }
                        Err(reason) => {
                            report.skipped.push((path.clone(), reason.clone()));
                            items[index] = Some(Item::Skipped(reason.clone()));
                        }
                    }
                    if let (true, Some(hash)) = (fresh, hash) {
                        pending.push((hash, result));
                    }
                    if pending.len() >= opts.commit_every.max(1)
                        || (!pending.is_empty() && last_commit.elapsed() > Duration::from_secs(1))
                    {
                        if let Err(e) = cache.put_many(&pending) {
                            stop.store(true, Ordering::Relaxed);
                            fatal.get_or_insert(e);
                        }
                        pending.clear();
                        last_commit = Instant::now();
                        progress.committed(done, files.len());
                    }
                }
            }
        }
        if fatal.is_none() {
            cache.put_many(&pending)?;
            progress.committed(done, files.len());
        }
        match fatal {
            Some(e) => Err(e),
            None => Ok(()),
        }
    })?;

    report.skipped.sort();
    report.seconds = t0.elapsed().as_secs_f64();
    let items = items
        .into_iter()
        .map(|i| i.expect("every file processed"))
        .collect();
    Ok((report, items))
}

/// Reads, hashes, looks up and if needed decodes and runs one file.
/// Returns (hash, entry or skip reason, freshly computed?). Errors are fatal.
fn process_one<'b>(
    backbone: &'b Backbone,
    cache: &FeatureCache,
    path: &Path,
    session: &mut Option<crate::backbone::Session<'b>>,
) -> Result<(Option<ImageHash>, Result<Entry, String>, bool)> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) => return Ok((None, Err(format!("cannot read file: {e}")), false)),
    };
    let hash = hash_bytes(&bytes);
    if let Some(known) = cache.lookup(&hash)? {
        return Ok((Some(hash), known, false));
    }
    let img = match preprocess::decode(&bytes) {
        Ok(img) => img,
        Err(e) => return Ok((Some(hash), Err(e.to_string()), true)),
    };
    drop(bytes);
    if session.is_none() {
        *session = Some(backbone.session()?);
    }
    let out = session.as_mut().unwrap().run_image(&img)?;
    let info = EntryInfo {
        width: img.width(),
        height: img.height(),
        name: path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
    };
    Ok((
        Some(hash),
        Ok(Entry {
            features: out.features,
            info,
        }),
        true,
    ))
}

/// A dataset's features as a matrix, with skipped images left out.
pub struct LabelledFeatures {
    pub x: Array2<f32>,
    pub y: Vec<usize>,
    pub paths: Vec<PathBuf>,
    pub labels: Vec<String>,
}

/// Extracts (or loads from cache) every image of a dataset.
pub fn dataset_features(
    backbone: &Backbone,
    cache: &FeatureCache,
    ds: &Dataset,
    opts: &ExtractOptions,
    progress: &dyn Progress,
) -> Result<(ExtractReport, LabelledFeatures)> {
    let files: Vec<PathBuf> = ds.samples.iter().map(|s| s.path.clone()).collect();
    let (report, items) = extract(backbone, cache, &files, opts, progress)?;
    let dim = backbone.feature_dim();
    let mut data = Vec::with_capacity(files.len() * dim);
    let (mut y, mut paths) = (Vec::new(), Vec::new());
    for (sample, item) in ds.samples.iter().zip(items) {
        if let Item::Features(f) = item {
            data.extend_from_slice(&f);
            y.push(sample.label);
            paths.push(sample.path.clone());
        }
    }
    let x = Array2::from_shape_vec((y.len(), dim), data)?;
    Ok((
        report,
        LabelledFeatures {
            x,
            y,
            paths,
            labels: ds.labels.clone(),
        },
    ))
}
