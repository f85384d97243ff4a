//! The on-disk media cache: transcoded clips named by the hash of their bytes, plus the record of
//! where each clip came from (a URL with its HTTP validators, or a text-to-speech request).
//!
//! Layout under the media directory:
//! - `clips/{id}.ulaw`: 8 kHz mono μ-law, the id being `ME` + 32 hex digits of the SHA-256 of the
//!   bytes, so one recording fetched from two URLs (or uploaded twice) is stored once;
//! - `sources/{key hash}.json`: which clip a URL or speech request gave, and how long it stays fresh;
//! - `tmp/`: files being written. Everything is written there first and renamed into place, so a
//!   crash or a failed transcode never leaves half a clip; the folder is emptied at start.
//!
//! The index lives in memory (rebuilt from the folders at start, oldest-written clips counted as
//! least recently used) so a cache hit touches no disk. Clips are evicted least recently used first whenever the
//! total passes the byte budget.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tempfile::NamedTempFile;

use super::transcode::BYTES_PER_MS;

/// Where a clip came from and when to ask again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Source {
    /// The clip this source gave.
    pub id: String,
    pub etag: Option<String>,
    pub last_modified: Option<String>,
    /// Unix seconds until which the clip is used without asking the origin; `None` = forever
    /// (speech, which cannot change).
    pub fresh_until: Option<i64>,
    /// The origin's `Cache-Control` policy, kept for a 304 that does not repeat it.
    #[serde(default)]
    pub max_age: Option<u64>,
    #[serde(default)]
    pub no_cache: bool,
}

impl Source {
    pub fn is_fresh(&self, now: i64) -> bool {
        self.fresh_until.is_none_or(|until| now < until)
    }
}

/// A clip in the cache.
#[derive(Debug, Clone, Copy)]
struct Clip {
    bytes: u64,
    /// Position in the recency order: higher = used more recently.
    tick: u64,
}

#[derive(Default)]
struct Index {
    clips: HashMap<String, Clip>,
    recency: BTreeMap<u64, String>,
    sources: HashMap<String, Source>,
    next_tick: u64,
    bytes: u64,
}

impl Index {
    fn touch(&mut self, id: &str) -> Option<u64> {
        let tick = self.next_tick;
        let clip = self.clips.get_mut(id)?;
        self.recency.remove(&clip.tick);
        clip.tick = tick;
        self.recency.insert(tick, id.to_string());
        self.next_tick += 1;
        Some(clip.bytes)
    }

    fn insert(&mut self, id: &str, bytes: u64) {
        if self.touch(id).is_some() {
            return;
        }
        let tick = self.next_tick;
        self.next_tick += 1;
        self.clips.insert(id.to_string(), Clip { bytes, tick });
        self.recency.insert(tick, id.to_string());
        self.bytes += bytes;
    }

    /// Removes least recently used clips (never `keep`) until the total fits `budget`; returns the
    /// ids removed.
    fn evict(&mut self, budget: u64, keep: Option<&str>) -> Vec<String> {
        let mut evicted = Vec::new();
        while self.bytes > budget {
            let victim = self
                .recency
                .iter()
                .map(|(tick, id)| (*tick, id.clone()))
                .find(|(_, id)| Some(id.as_str()) != keep);
            let Some((tick, id)) = victim else { break };
            self.recency.remove(&tick);
            if let Some(clip) = self.clips.remove(&id) {
                self.bytes -= clip.bytes;
            }
            evicted.push(id);
        }
        evicted
    }
}

/// Counters behind `GET /v1/Media/Cache`.
#[derive(Default)]
struct Counters {
    hits: AtomicU64,
    misses: AtomicU64,
    fetches: AtomicU64,
    revalidations: AtomicU64,
    evictions: AtomicU64,
}

/// The cache's state, as the statistics endpoint shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CacheStats {
    /// Clips stored.
    pub clips: u64,
    /// Bytes of audio stored.
    pub bytes: u64,
    /// The byte budget; least recently used clips are evicted past it.
    pub budget_bytes: u64,
    /// URL and speech sources remembered.
    pub sources: u64,
    /// Requests answered from the cache without asking the origin.
    pub hits: u64,
    /// Requests that had to fetch, revalidate or synthesize.
    pub misses: u64,
    /// HTTP requests made to origins (revalidations included).
    pub fetches: u64,
    /// Revalidations the origin answered with 304 Not Modified.
    pub revalidations: u64,
    /// Clips evicted to stay within the budget.
    pub evictions: u64,
}

pub struct Cache {
    clips_dir: PathBuf,
    sources_dir: PathBuf,
    tmp_dir: PathBuf,
    budget: u64,
    index: Mutex<Index>,
    counters: Counters,
}

/// The SHA-256 of `text` in hex: how sources are named on disk.
pub fn key_hash(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

impl Cache {
    /// Opens (or creates) the cache under `root` and rebuilds its index from what is on disk.
    pub fn open(root: &Path, budget: u64) -> io::Result<Cache> {
        let cache = Cache {
            clips_dir: root.join("clips"),
            sources_dir: root.join("sources"),
            tmp_dir: root.join("tmp"),
            budget,
            index: Mutex::new(Index::default()),
            counters: Counters::default(),
        };
        for dir in [&cache.clips_dir, &cache.sources_dir, &cache.tmp_dir] {
            fs::create_dir_all(dir)?;
        }
        // Leftovers of writes a crash interrupted: never complete, never referenced.
        for entry in fs::read_dir(&cache.tmp_dir)? {
            let _ = fs::remove_file(entry?.path());
        }
        let mut clips = Vec::new();
        for entry in fs::read_dir(&cache.clips_dir)? {
            let entry = entry?;
            let path = entry.path();
            let Some(id) = path
                .file_name()
                .and_then(|name| name.to_str())
                .and_then(|name| name.strip_suffix(".ulaw"))
            else {
                continue;
            };
            let metadata = entry.metadata()?;
            let used = metadata.modified().unwrap_or(std::time::UNIX_EPOCH);
            clips.push((used, id.to_string(), metadata.len()));
        }
        clips.sort();
        let evicted = {
            let mut index = cache.lock();
            for (_, id, bytes) in &clips {
                index.insert(id, *bytes);
            }
            for entry in fs::read_dir(&cache.sources_dir)? {
                let path = entry?.path();
                let Some(key) = path
                    .file_name()
                    .and_then(|name| name.to_str())
                    .and_then(|name| name.strip_suffix(".json"))
                else {
                    continue;
                };
                let source = fs::read(&path)
                    .ok()
                    .and_then(|bytes| serde_json::from_slice::<Source>(&bytes).ok());
                match source {
                    Some(source) if index.clips.contains_key(&source.id) => {
                        index.sources.insert(key.to_string(), source);
                    }
                    _ => {
                        let _ = fs::remove_file(&path);
                    }
                }
            }
            index.evict(budget, None)
        };
        cache.remove_clips(&evicted);
        Ok(cache)
    }

    fn lock(&self) -> MutexGuard<'_, Index> {
        self.index
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn budget(&self) -> u64 {
        self.budget
    }

    /// A new file in the cache's scratch folder, removed unless it is stored.
    pub fn scratch(&self) -> io::Result<NamedTempFile> {
        NamedTempFile::new_in(&self.tmp_dir)
    }

    pub fn clip_path(&self, id: &str) -> PathBuf {
        self.clips_dir.join(format!("{id}.ulaw"))
    }

    /// Bytes of the clip `id`, marking it used; `None` when it is not (or no longer) cached.
    pub fn clip(&self, id: &str) -> Option<u64> {
        self.lock().touch(id)
    }

    /// The source recorded under `key` whose clip is still cached.
    pub fn source(&self, key: &str) -> Option<Source> {
        let index = self.lock();
        let source = index.sources.get(key)?;
        index.clips.contains_key(&source.id).then(|| source.clone())
    }

    /// A fresh source's clip, marked used: the whole of a cache hit.
    pub fn fresh_clip(&self, key: &str, now: i64) -> Option<(String, u64)> {
        let mut index = self.lock();
        let source = index.sources.get(key)?;
        if !source.is_fresh(now) {
            return None;
        }
        let id = source.id.clone();
        let bytes = index.touch(&id)?;
        Some((id, bytes))
    }

    /// Records (durably) where a clip came from.
    pub fn put_source(&self, key: &str, source: Source) -> io::Result<()> {
        let mut file = self.scratch()?;
        serde_json::to_writer(&mut file, &source)?;
        file.persist(self.sources_dir.join(format!("{key}.json")))
            .map_err(|error| error.error)?;
        self.lock().sources.insert(key.to_string(), source);
        Ok(())
    }

    /// Forgets a source (its origin asked not to be stored).
    pub fn remove_source(&self, key: &str) {
        if self.lock().sources.remove(key).is_some() {
            let _ = fs::remove_file(self.sources_dir.join(format!("{key}.json")));
        }
    }

    /// Moves a completely written clip into the cache under `id` and evicts what no longer fits.
    pub fn store(&self, file: NamedTempFile, id: &str, bytes: u64) -> io::Result<()> {
        if bytes > self.budget {
            return Err(io::Error::other(format!(
                "the clip ({bytes} bytes) is larger than the whole media cache ({} bytes); ask the operator to raise media.cache_bytes",
                self.budget
            )));
        }
        file.persist(self.clip_path(id))
            .map_err(|error| error.error)?;
        let evicted = {
            let mut index = self.lock();
            index.insert(id, bytes);
            index.evict(self.budget, Some(id))
        };
        self.remove_clips(&evicted);
        Ok(())
    }

    fn remove_clips(&self, ids: &[String]) {
        for id in ids {
            let _ = fs::remove_file(self.clip_path(id));
            self.counters.evictions.fetch_add(1, Ordering::Relaxed);
            metrics::counter!("switchboard_media_cache_evictions_total").increment(1);
        }
        let mut index = self.lock();
        if !ids.is_empty() {
            // Sources of evicted clips are forgotten: asking for them again fetches afresh.
            let Index { clips, sources, .. } = &mut *index;
            sources.retain(|_, source| clips.contains_key(&source.id));
        }
        metrics::gauge!("switchboard_media_cache_bytes").set(index.bytes as f64);
    }

    pub fn count_hit(&self) {
        self.counters.hits.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("switchboard_media_cache_hits_total").increment(1);
    }

    pub fn count_miss(&self) {
        self.counters.misses.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("switchboard_media_cache_misses_total").increment(1);
    }

    pub fn count_fetch(&self) {
        self.counters.fetches.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("switchboard_media_fetches_total").increment(1);
    }

    pub fn count_revalidation(&self) {
        self.counters.revalidations.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("switchboard_media_revalidations_total").increment(1);
    }

    pub fn stats(&self) -> CacheStats {
        let index = self.lock();
        CacheStats {
            clips: index.clips.len() as u64,
            bytes: index.bytes,
            budget_bytes: self.budget,
            sources: index.sources.len() as u64,
            hits: self.counters.hits.load(Ordering::Relaxed),
            misses: self.counters.misses.load(Ordering::Relaxed),
            fetches: self.counters.fetches.load(Ordering::Relaxed),
            revalidations: self.counters.revalidations.load(Ordering::Relaxed),
            evictions: self.counters.evictions.load(Ordering::Relaxed),
        }
    }
}

/// Milliseconds a clip of `bytes` μ-law bytes plays for.
pub fn duration_ms(bytes: u64) -> u64 {
    bytes / BYTES_PER_MS
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn store(cache: &Cache, id: &str, bytes: usize) {
        let mut file = cache.scratch().expect("scratch");
        file.write_all(&vec![0xFF; bytes]).expect("write");
        cache.store(file, id, bytes as u64).expect("stored");
    }

    #[test]
    fn the_least_recently_used_clip_goes_first_and_the_index_survives_a_restart() {
        let dir = tempfile::tempdir().expect("dir");
        let cache = Cache::open(dir.path(), 3_000).expect("open");
        store(&cache, "MEa", 1_000);
        store(&cache, "MEb", 1_000);
        store(&cache, "MEc", 1_000);
        assert_eq!(cache.clip("MEa"), Some(1_000));
        store(&cache, "MEd", 1_000);
        assert_eq!(cache.clip("MEb"), None, "b was the least recently used");
        assert!(!cache.clip_path("MEb").exists());
        assert_eq!(cache.stats().bytes, 3_000);
        cache
            .put_source(
                "k",
                Source {
                    id: "MEa".into(),
                    etag: Some("\"1\"".into()),
                    last_modified: None,
                    fresh_until: None,
                    max_age: None,
                    no_cache: false,
                },
            )
            .expect("source");
        drop(cache);

        let cache = Cache::open(dir.path(), 3_000).expect("reopen");
        assert_eq!(cache.stats().clips, 3);
        assert_eq!(cache.fresh_clip("k", 0), Some(("MEa".to_string(), 1_000)));
    }

    #[test]
    fn a_clip_larger_than_the_budget_is_refused_and_leaves_nothing() {
        let dir = tempfile::tempdir().expect("dir");
        let cache = Cache::open(dir.path(), 100).expect("open");
        let mut file = cache.scratch().expect("scratch");
        file.write_all(&[0; 200]).expect("write");
        assert!(cache.store(file, "MEbig", 200).is_err());
        assert_eq!(
            fs::read_dir(dir.path().join("tmp")).expect("tmp").count(),
            0
        );
        assert_eq!(
            fs::read_dir(dir.path().join("clips"))
                .expect("clips")
                .count(),
            0
        );
    }
}
