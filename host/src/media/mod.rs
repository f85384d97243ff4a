//! Media that calls play: every `<Play>` URL and every `<Say>` text becomes a telephony-ready clip
//! (8 kHz mono G.711 μ-law) in an on-disk cache, with a persistent, content-addressed address
//! `/v1/Media/{id}` and an exact duration.
//!
//! - [`fetch`]: bounded HTTP fetching with caching validators and the private-address refusal;
//! - [`transcode`]: streaming decode (symphonia) → downmix → resample (rubato) → μ-law;
//! - [`tts`]: the speech engine trait and its espeak-ng implementation;
//! - [`cache`]: clips on disk, the in-memory index, LRU eviction under a byte budget;
//! - [`service`]: the layer's own HTTP interface, through which calls ask for media;
//! - [`api`]: the public `/v1/Media` resources.
//!
//! Concurrent requests for the same URL or text share one fetch (single flight): the first starts
//! the work as a task of its own, so it completes (and is cached) even if that caller hangs up, and
//! everyone who asks meanwhile waits for the same result.

pub mod api;
pub mod cache;
pub mod fetch;
pub mod service;
pub mod transcode;
pub mod tts;

use std::collections::HashMap;
use std::future::Future;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tempfile::NamedTempFile;

use crate::api::error::Code;
use crate::config::MediaSettings;
use cache::{Cache, Source, key_hash};
use fetch::{Fetched, Fetcher};
use transcode::SourceHint;
use tts::{Speech, SpeechEngine};

pub use cache::CacheStats;
pub use service::MediaClient;

/// A clip ready for the telephone network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MediaInfo {
    /// `ME` + 32 hex digits of the SHA-256 of the μ-law bytes.
    pub id: String,
    /// Its persistent address.
    pub url: String,
    pub duration_ms: u64,
    /// Bytes of 8 kHz μ-law.
    pub bytes: u64,
}

impl MediaInfo {
    fn new(id: String, bytes: u64) -> MediaInfo {
        MediaInfo {
            url: format!("/v1/Media/{id}"),
            id,
            duration_ms: cache::duration_ms(bytes),
            bytes,
        }
    }
}

/// Why media could not be made ready, as an entry of the error table plus what went wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct MediaError {
    pub code: Code,
    pub message: String,
}

impl MediaError {
    pub fn new(code: Code, message: impl Into<String>) -> MediaError {
        MediaError {
            code,
            message: message.into(),
        }
    }

    pub fn invalid(message: impl Into<String>) -> MediaError {
        MediaError::new(Code::InvalidParameter, message)
    }

    pub fn fetch(message: impl Into<String>) -> MediaError {
        MediaError::new(Code::MediaFetchFailed, message)
    }

    pub fn refused(message: impl Into<String>) -> MediaError {
        MediaError::new(Code::MediaAddressRefused, message)
    }

    pub fn too_large(message: impl Into<String>) -> MediaError {
        MediaError::new(Code::MediaTooLarge, message)
    }

    pub fn not_audio(message: impl Into<String>) -> MediaError {
        MediaError::new(Code::MediaNotAudio, message)
    }

    pub fn no_speech(message: impl Into<String>) -> MediaError {
        MediaError::new(Code::SpeechUnavailable, message)
    }

    pub fn speech(message: impl Into<String>) -> MediaError {
        MediaError::new(Code::SpeechFailed, message)
    }

    pub fn internal(error: impl std::fmt::Display) -> MediaError {
        MediaError::new(
            Code::Internal,
            format!("media could not be processed: {error}"),
        )
    }
}

type Flight = Shared<BoxFuture<'static, Result<MediaInfo, MediaError>>>;

/// The media layer.
pub struct Media {
    cache: Cache,
    /// `owners/{clip}/{account}` marks who uploaded a clip. A clip made from a URL or a text is
    /// anyone's who names that URL or text; audio a tenant uploaded is that tenant's alone.
    owners_dir: std::path::PathBuf,
    fetcher: Fetcher,
    speech: Option<Box<dyn SpeechEngine>>,
    settings: MediaSettings,
    flights: Arc<Mutex<HashMap<String, Flight>>>,
    /// Permits for CPU-bound work (a synthesis, a transcoding): callers beyond them wait their
    /// turn instead of all taking the cores from the host's calls at once.
    jobs: Arc<tokio::sync::Semaphore>,
}

fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs() as i64)
}

/// Hashes what passes through, to name a clip by its bytes once it is written.
struct Hashing<W> {
    inner: W,
    hasher: Sha256,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let written = self.inner.write(bytes)?;
        self.hasher.update(&bytes[..written]);
        Ok(written)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

impl Media {
    /// Opens the cache under `data_dir/media` and looks for a speech engine.
    pub fn open(settings: &MediaSettings, data_dir: &std::path::Path) -> anyhow::Result<Media> {
        let cache = Cache::open(&data_dir.join("media"), settings.cache_bytes)?;
        let speech = tts::Espeak::detect(
            &settings.tts_command,
            Duration::from_millis(settings.tts_timeout_ms),
        )
        .map(|engine| Box::new(engine) as Box<dyn SpeechEngine>);
        if speech.is_none() {
            tracing::warn!(
                command = %settings.tts_command,
                "no text-to-speech engine found: <Say> will fail until espeak-ng is installed"
            );
        }
        let owners_dir = data_dir.join("media").join("owners");
        std::fs::create_dir_all(&owners_dir)?;
        Ok(Media {
            cache,
            owners_dir,
            fetcher: Fetcher::new(settings)?,
            speech,
            settings: settings.clone(),
            jobs: Arc::new(tokio::sync::Semaphore::new(
                match settings.max_concurrent_jobs {
                    0 => std::thread::available_parallelism().map_or(1, |cores| cores.get()),
                    jobs => jobs,
                },
            )),
            flights: Arc::default(),
        })
    }

    pub fn stats(&self) -> CacheStats {
        self.cache.stats()
    }

    /// The clip `id`, if cached.
    pub fn info(&self, id: &str) -> Option<MediaInfo> {
        let bytes = self.cache.clip(id)?;
        Some(MediaInfo::new(id.to_string(), bytes))
    }

    /// Where clip `id` is stored.
    pub fn clip_path(&self, id: &str) -> std::path::PathBuf {
        self.cache.clip_path(id)
    }

    pub fn settings(&self) -> &MediaSettings {
        &self.settings
    }

    /// The audio at an http(s) URL as a cached clip: from the cache while fresh, else fetched (or
    /// revalidated) and transcoded.
    pub async fn resolve_url(self: &Arc<Self>, url: &str) -> Result<MediaInfo, MediaError> {
        let parsed = reqwest::Url::parse(url).map_err(|error| {
            MediaError::invalid(format!("{url:?} is not an absolute URL: {error}"))
        })?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(MediaError::invalid(format!(
                "{url:?} is not an http(s) URL; Play fetches audio over HTTP"
            )));
        }
        let key = key_hash(&format!("url\0{parsed}"));
        if let Some(info) = self.hit(&key) {
            return Ok(info);
        }
        let this = Arc::clone(self);
        let flight_key = key.clone();
        self.single_flight(flight_key, async move { this.fetch_url(parsed, key).await })
            .await
    }

    /// Speech for `speech` as a cached clip.
    pub async fn synthesize(self: &Arc<Self>, speech: Speech) -> Result<MediaInfo, MediaError> {
        let Some(engine) = self.speech.as_deref() else {
            return Err(MediaError::no_speech(format!(
                "no text-to-speech engine is installed: install espeak-ng (apt-get install espeak-ng) or set media.tts_command to its path (now {:?})",
                self.settings.tts_command
            )));
        };
        let characters = speech.text.chars().count();
        if characters == 0 {
            return Err(MediaError::invalid("there is no text to say"));
        }
        if characters > self.settings.max_speech_characters {
            return Err(MediaError::invalid(format!(
                "the text has {characters} characters; at most {} are spoken at once (media.max_speech_characters)",
                self.settings.max_speech_characters
            )));
        }
        let voice = engine.voice(&speech)?;
        let key = key_hash(&format!(
            "speech\0{}\0{}\0{}\0{voice}\0{}",
            engine.name(),
            speech.voice.as_deref().unwrap_or_default(),
            speech.language.as_deref().unwrap_or_default(),
            speech.text
        ));
        if let Some(info) = self.hit(&key) {
            return Ok(info);
        }
        let this = Arc::clone(self);
        self.single_flight(key.clone(), async move {
            this.speak(&speech.text, &voice, key).await
        })
        .await
    }

    /// Audio a tenant sends, stored as a clip readable by that tenant only.
    pub async fn upload(
        &self,
        account_sid: &str,
        file: NamedTempFile,
        hint: SourceHint,
    ) -> Result<MediaInfo, MediaError> {
        self.cache.count_miss();
        let info = self.transcode_and_store(file, hint).await?;
        let owners = self.owners_dir.join(&info.id);
        std::fs::create_dir_all(&owners).map_err(MediaError::internal)?;
        std::fs::File::create(owners.join(account_sid)).map_err(MediaError::internal)?;
        Ok(info)
    }

    /// Whether `account_sid` may read clip `id` through the API: any clip but another tenant's
    /// upload.
    pub fn may_read(&self, id: &str, account_sid: &str) -> bool {
        let owners = self.owners_dir.join(id);
        !owners.exists() || owners.join(account_sid).exists()
    }

    /// A scratch file in the cache, for bodies on their way in.
    pub fn scratch(&self) -> Result<NamedTempFile, MediaError> {
        self.cache.scratch().map_err(MediaError::internal)
    }

    fn hit(&self, key: &str) -> Option<MediaInfo> {
        let (id, bytes) = self.cache.fresh_clip(key, now_unix())?;
        self.cache.count_hit();
        Some(MediaInfo::new(id, bytes))
    }

    /// Runs `work` once for `key` however many callers ask at the same time.
    async fn single_flight(
        &self,
        key: String,
        work: impl Future<Output = Result<MediaInfo, MediaError>> + Send + 'static,
    ) -> Result<MediaInfo, MediaError> {
        let flight = {
            let mut flights = self
                .flights
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            match flights.get(&key) {
                Some(flight) => flight.clone(),
                None => {
                    let task = tokio::spawn(work);
                    let flight = async move {
                        task.await
                            .unwrap_or_else(|error| Err(MediaError::internal(error)))
                    }
                    .boxed()
                    .shared();
                    flights.insert(key.clone(), flight.clone());
                    // The flight retires itself once its work is done, even when every caller
                    // stopped waiting (a dequeued call, say); later callers find the cache. Only
                    // this flight: a newer one for the same key may have started since.
                    let all = Arc::clone(&self.flights);
                    let done = flight.clone();
                    tokio::spawn(async move {
                        let _ = done.clone().await;
                        let mut flights =
                            all.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                        if flights
                            .get(&key)
                            .is_some_and(|current| current.ptr_eq(&done))
                        {
                            flights.remove(&key);
                        }
                    });
                    flight
                }
            }
        };
        flight.await
    }

    async fn fetch_url(&self, url: reqwest::Url, key: String) -> Result<MediaInfo, MediaError> {
        // A flight that finished just before this one started may have filled the cache.
        if let Some(info) = self.hit(&key) {
            return Ok(info);
        }
        self.cache.count_miss();
        let cached = self.cache.source(&key);
        let scratch = self.scratch()?;
        self.cache.count_fetch();
        let timeout = Duration::from_millis(self.settings.fetch_timeout_ms);
        let fetched = self
            .fetcher
            .fetch(&url, cached.as_ref(), scratch, timeout)
            .await;
        let now = now_unix();
        let default_age = self.settings.default_max_age_seconds;
        match fetched? {
            Fetched::NotModified(freshness) => {
                let Some(cached) = cached else {
                    return Err(MediaError::fetch(format!(
                        "{url} answered 304 Not Modified to an unconditional request"
                    )));
                };
                self.cache.count_revalidation();
                let bytes = self
                    .cache
                    .clip(&cached.id)
                    .ok_or_else(|| MediaError::internal("the revalidated clip was evicted"))?;
                let id = cached.id.clone();
                let source = freshness
                    .updating(&cached)
                    .source(id.clone(), now, default_age);
                self.cache
                    .put_source(&key, source)
                    .map_err(MediaError::internal)?;
                Ok(MediaInfo::new(id, bytes))
            }
            Fetched::Body {
                file,
                hint,
                freshness,
            } => {
                let info = self.transcode_and_store(file, hint).await?;
                if freshness.no_store {
                    self.cache.remove_source(&key);
                } else {
                    let source = freshness.source(info.id.clone(), now, default_age);
                    self.cache
                        .put_source(&key, source)
                        .map_err(MediaError::internal)?;
                }
                Ok(info)
            }
        }
    }

    async fn speak(&self, text: &str, voice: &str, key: String) -> Result<MediaInfo, MediaError> {
        if let Some(info) = self.hit(&key) {
            return Ok(info);
        }
        self.cache.count_miss();
        let engine = self
            .speech
            .as_deref()
            .ok_or_else(|| MediaError::no_speech("no text-to-speech engine is installed"))?;
        let scratch = self.scratch()?;
        {
            let _turn = self.job_turn().await?;
            engine.synthesize(text, voice, scratch.path()).await?;
        }
        let hint = SourceHint {
            extension: Some("wav".into()),
            content_type: None,
        };
        let info = self.transcode_and_store(scratch, hint).await?;
        let source = Source {
            id: info.id.clone(),
            etag: None,
            last_modified: None,
            fresh_until: None,
            max_age: None,
            no_cache: false,
        };
        self.cache
            .put_source(&key, source)
            .map_err(MediaError::internal)?;
        Ok(info)
    }

    /// Waits for a permit to run a synthesis or a transcoding. The permit is owned so that a
    /// blocking job keeps it until the job ends, even when whoever asked has stopped waiting.
    async fn job_turn(&self) -> Result<tokio::sync::OwnedSemaphorePermit, MediaError> {
        self.jobs
            .clone()
            .acquire_owned()
            .await
            .map_err(MediaError::internal)
    }

    /// Transcodes `input` (off the async threads) into a scratch file, names it by its hash and
    /// moves it into the cache. On any failure both scratch files are removed.
    async fn transcode_and_store(
        &self,
        input: NamedTempFile,
        hint: SourceHint,
    ) -> Result<MediaInfo, MediaError> {
        let output = self.scratch()?;
        let turn = self.job_turn().await?;
        let (output, id, bytes) = tokio::task::spawn_blocking(move || {
            let _turn = turn;
            let source = input.reopen().map_err(MediaError::internal)?;
            let writer = output.reopen().map_err(MediaError::internal)?;
            let mut hashing = Hashing {
                inner: std::io::BufWriter::with_capacity(64 * 1024, writer),
                hasher: Sha256::new(),
            };
            let bytes = transcode::transcode(Box::new(source), &hint, &mut hashing)?;
            hashing.flush().map_err(MediaError::internal)?;
            let digest = hex::encode(hashing.hasher.finalize());
            drop(input);
            Ok::<_, MediaError>((output, format!("ME{}", &digest[..32]), bytes))
        })
        .await
        .map_err(MediaError::internal)??;
        if bytes > self.cache.budget() {
            return Err(MediaError::too_large(format!(
                "the audio is {} ms long, more than the whole media cache holds ({} bytes); ask the operator to raise media.cache_bytes",
                cache::duration_ms(bytes),
                self.cache.budget()
            )));
        }
        self.cache
            .store(output, &id, bytes)
            .map_err(MediaError::internal)?;
        Ok(MediaInfo::new(id, bytes))
    }
}

/// A mono 16-bit PCM WAV file of `samples` silent samples at `rate` Hz: test media.
pub fn silent_wav(rate: u32, samples: u32) -> Vec<u8> {
    let mut wav = transcode::pcm_wav_header(rate, 1, samples);
    wav.resize(44 + samples as usize * 2, 0);
    wav
}
