//! The on-disk feature cache: a redb database (ACID, crash-safe, pure Rust).
//!
//! Key: backbone fingerprint (16 bytes) ++ sha256 of the image file (32).
//! Changing the model or its preprocessing changes the fingerprint, so stale
//! features can never be served. Images that could not be decoded are
//! remembered with their reason, so a rerun reports them without decoding.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use redb::{Database, ReadableTableMetadata, TableDefinition};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

const FEATURES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("features_v1");
const FAILURES: TableDefinition<&[u8], &str> = TableDefinition::new("failures_v1");

/// redb's in-memory page cache.
const CACHE_BYTES: usize = 16 << 20;

/// Value layout version (first byte of each value); little-endian floats.
const VALUE_VERSION: u8 = 1;

pub type ImageHash = [u8; 32];

pub fn hash_bytes(bytes: &[u8]) -> ImageHash {
    Sha256::digest(bytes).into()
}

/// What is kept with each vector so a report can name its source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EntryInfo {
    pub width: u32,
    pub height: u32,
    /// File name when it was extracted (the key is the content, not the name).
    pub name: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub features: Vec<f32>,
    pub info: EntryInfo,
}

pub struct FeatureCache {
    db: Database,
    path: PathBuf,
    fingerprint: [u8; 16],
}

/// `$EDGETUNE_CACHE`, else `~/.cache/edgetune/features.redb`.
pub fn default_cache_path() -> PathBuf {
    if let Some(p) = std::env::var_os("EDGETUNE_CACHE") {
        return PathBuf::from(p);
    }
    dirs::cache_dir()
        .unwrap_or_else(|| PathBuf::from(".cache"))
        .join("edgetune")
        .join("features.redb")
}

fn fingerprint_bytes(fp: &str) -> Result<[u8; 16]> {
    if fp.len() != 32 {
        bail!("backbone fingerprint {fp:?} is not 32 hex digits");
    }
    let mut out = [0u8; 16];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(&fp[2 * i..2 * i + 2], 16)
            .with_context(|| format!("backbone fingerprint {fp:?} is not hex"))?;
    }
    Ok(out)
}

impl FeatureCache {
    /// Opens (or creates) the cache for one backbone fingerprint.
    pub fn open(path: &Path, fingerprint: &str) -> Result<FeatureCache> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("{}: cannot create cache folder", dir.display()))?;
        }
        // redb's default page cache is 1 GiB; a board has less, and
        // extraction writes each page once
        let db = redb::Builder::new()
            .set_cache_size(CACHE_BYTES)
            .create(path)
            .map_err(|e| match e {
                redb::DatabaseError::DatabaseAlreadyOpen => anyhow::anyhow!(
                    "{}: feature cache is in use by another edgetune process",
                    path.display()
                ),
                other => anyhow::anyhow!("{}: cannot open feature cache: {other}", path.display()),
            })?;
        // create the tables up front so readers never see them missing
        let tx = db.begin_write()?;
        tx.open_table(FEATURES)?;
        tx.open_table(FAILURES)?;
        tx.commit()?;
        Ok(FeatureCache {
            db,
            path: path.to_path_buf(),
            fingerprint: fingerprint_bytes(fingerprint)?,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn key(&self, image: &ImageHash) -> [u8; 48] {
        let mut k = [0u8; 48];
        k[..16].copy_from_slice(&self.fingerprint);
        k[16..].copy_from_slice(image);
        k
    }

    /// What the cache knows of an image, in one read transaction: its
    /// vector, the reason it could not be used, or nothing.
    pub fn lookup(&self, image: &ImageHash) -> Result<Option<Result<Entry, String>>> {
        let tx = self.db.begin_read()?;
        let key = self.key(image);
        if let Some(v) = tx.open_table(FEATURES)?.get(key.as_slice())? {
            let entry = decode_value(v.value())
                .with_context(|| format!("{}: corrupt cache entry", self.path.display()))?;
            return Ok(Some(Ok(entry)));
        }
        let failure = tx.open_table(FAILURES)?.get(key.as_slice())?;
        Ok(failure.map(|v| Err(v.value().to_string())))
    }

    pub fn get(&self, image: &ImageHash) -> Result<Option<Entry>> {
        Ok(self.lookup(image)?.and_then(Result::ok))
    }

    pub fn failure(&self, image: &ImageHash) -> Result<Option<String>> {
        Ok(self.lookup(image)?.and_then(Result::err))
    }

    /// Writes a batch of results in one durable transaction.
    pub fn put_many(&self, items: &[(ImageHash, Result<Entry, String>)]) -> Result<()> {
        if items.is_empty() {
            return Ok(());
        }
        let tx = self.db.begin_write()?;
        {
            let mut features = tx.open_table(FEATURES)?;
            let mut failures = tx.open_table(FAILURES)?;
            for (hash, item) in items {
                let key = self.key(hash);
                match item {
                    Ok(entry) => {
                        features.insert(key.as_slice(), encode_value(entry).as_slice())?;
                    }
                    Err(reason) => {
                        failures.insert(key.as_slice(), reason.as_str())?;
                    }
                }
            }
        }
        tx.commit()
            .with_context(|| format!("{}: cannot commit to cache", self.path.display()))?;
        Ok(())
    }

    pub fn put(&self, image: &ImageHash, entry: &Entry) -> Result<()> {
        self.put_many(&[(*image, Ok(entry.clone()))])
    }

    /// Entries for this backbone and for all backbones, and the file size.
    pub fn stats(&self) -> Result<CacheStats> {
        let tx = self.db.begin_read()?;
        let table = tx.open_table(FEATURES)?;
        let all = table.len()?;
        let mut mine = 0u64;
        let lo = self.key(&[0u8; 32]);
        let hi = self.key(&[0xffu8; 32]);
        for item in table.range(lo.as_slice()..=hi.as_slice())? {
            item?;
            mine += 1;
        }
        let failures = tx.open_table(FAILURES)?.len()?;
        let bytes = std::fs::metadata(&self.path)
            .map(|m| disk_usage(&m))
            .unwrap_or(0);
        Ok(CacheStats {
            entries_this_backbone: mine,
            entries_all: all,
            failures,
            bytes,
        })
    }
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct CacheStats {
    pub entries_this_backbone: u64,
    pub entries_all: u64,
    pub failures: u64,
    pub bytes: u64,
}

/// Bytes the file occupies on disk (redb files are sparse after growth).
fn disk_usage(m: &std::fs::Metadata) -> u64 {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        (m.blocks() * 512).min(m.len())
    }
    #[cfg(not(unix))]
    m.len()
}

fn encode_value(e: &Entry) -> Vec<u8> {
    let meta = serde_json::to_vec(&e.info).expect("entry info serialises");
    let mut v = Vec::with_capacity(5 + 4 * e.features.len() + meta.len());
    v.push(VALUE_VERSION);
    v.extend_from_slice(&(e.features.len() as u32).to_le_bytes());
    for f in &e.features {
        v.extend_from_slice(&f.to_le_bytes());
    }
    v.extend_from_slice(&meta);
    v
}

fn decode_value(v: &[u8]) -> Result<Entry> {
    if v.first() != Some(&VALUE_VERSION) {
        bail!("unknown cache value version {:?}", v.first());
    }
    if v.len() < 5 {
        bail!("cache value too short");
    }
    let dim = u32::from_le_bytes(v[1..5].try_into().unwrap()) as usize;
    let end = 5 + 4 * dim;
    if v.len() < end {
        bail!("cache value holds fewer than {dim} floats");
    }
    let features = v[5..end]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    let info = serde_json::from_slice(&v[end..]).context("cache value metadata")?;
    Ok(Entry { features, info })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_fingerprint_isolation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.redb");
        let fp_a = "00112233445566778899aabbccddeeff";
        let fp_b = "ffeeddccbbaa99887766554433221100";
        let h = hash_bytes(b"image");
        let e = Entry {
            features: vec![1.0, -2.5, f32::MIN_POSITIVE],
            info: EntryInfo {
                width: 3,
                height: 4,
                name: "a b.jpg".into(),
            },
        };
        {
            let c = FeatureCache::open(&path, fp_a).unwrap();
            c.put(&h, &e).unwrap();
            c.put_many(&[(hash_bytes(b"bad"), Err("corrupt".into()))])
                .unwrap();
            assert_eq!(c.get(&h).unwrap(), Some(e.clone()));
            assert_eq!(
                c.failure(&hash_bytes(b"bad")).unwrap().as_deref(),
                Some("corrupt")
            );
        }
        let c = FeatureCache::open(&path, fp_b).unwrap();
        assert_eq!(
            c.get(&h).unwrap(),
            None,
            "another backbone must not see these features"
        );
        let s = c.stats().unwrap();
        assert_eq!((s.entries_this_backbone, s.entries_all), (0, 1));
    }

    #[test]
    fn second_writer_gets_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.redb");
        let fp = "00112233445566778899aabbccddeeff";
        let _a = FeatureCache::open(&path, fp).unwrap();
        let err = FeatureCache::open(&path, fp).err().unwrap().to_string();
        assert!(err.contains("in use"), "{err}");
    }
}
