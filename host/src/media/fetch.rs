//! Fetching audio from tenants' web servers: bounded in size, time and redirects, refusing
//! private-network targets unless the operator allows them, and speaking HTTP caching (validators,
//! `Cache-Control`) so unchanged files are not downloaded again.
//!
//! Private targets are refused twice over: a literal IP in the URL (or in a redirect) is checked
//! before connecting, and host names go through a resolver that drops private addresses, so a public
//! name that resolves to 10.0.0.1 cannot be used to reach the operator's internal network.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{
    CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE, ETAG, IF_MODIFIED_SINCE, IF_NONE_MATCH,
    LAST_MODIFIED,
};
use reqwest::{StatusCode, Url};
use tempfile::NamedTempFile;
use tokio::io::AsyncWriteExt;

use super::MediaError;
use super::cache::Source;
use super::transcode::{SourceHint, mime_essence};
use crate::config::MediaSettings;
use crate::net::{PrivateTarget, PublicOnly, is_public};

/// What the origin said about caching its answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Freshness {
    pub etag: Option<String>,
    pub last_modified: Option<String>,
    /// Seconds the answer may be used without asking again.
    pub max_age: Option<u64>,
    /// `no-cache`: ask again (conditionally) before every use.
    pub no_cache: bool,
    /// `no-store`: do not remember the answer at all.
    pub no_store: bool,
    /// Whether the answer had a `Cache-Control` header at all.
    pub cache_control: bool,
}

impl Freshness {
    fn from_headers(headers: &reqwest::header::HeaderMap) -> Freshness {
        let text = |name| {
            headers
                .get(name)
                .and_then(|value: &reqwest::header::HeaderValue| value.to_str().ok())
                .map(str::to_string)
        };
        let mut freshness = Freshness {
            etag: text(ETAG),
            last_modified: text(LAST_MODIFIED),
            ..Freshness::default()
        };
        for directive in headers
            .get_all(CACHE_CONTROL)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
        {
            freshness.cache_control = true;
            let directive = directive.trim().to_ascii_lowercase();
            if directive == "no-cache" {
                freshness.no_cache = true;
            } else if directive == "no-store" {
                freshness.no_store = true;
            } else if let Some(seconds) = directive.strip_prefix("max-age=") {
                freshness.max_age = seconds.trim_matches('"').parse().ok();
            }
        }
        freshness
    }

    /// A 304's freshness: what it says, and for what it leaves out, what the stored answer said
    /// (a 304 need only repeat the headers that changed).
    pub fn updating(self, stored: &Source) -> Freshness {
        let cache_control = self.cache_control;
        Freshness {
            etag: self.etag.or_else(|| stored.etag.clone()),
            last_modified: self.last_modified.or_else(|| stored.last_modified.clone()),
            max_age: if cache_control {
                self.max_age
            } else {
                stored.max_age
            },
            no_cache: if cache_control {
                self.no_cache
            } else {
                stored.no_cache
            },
            no_store: self.no_store,
            cache_control,
        }
    }

    /// The source record of a clip fetched with this freshness.
    pub fn source(self, id: String, now: i64, default_max_age: u64) -> Source {
        Source {
            fresh_until: Some(self.fresh_until(now, default_max_age)),
            id,
            etag: self.etag,
            last_modified: self.last_modified,
            max_age: self.max_age,
            no_cache: self.no_cache,
        }
    }

    /// Unix seconds until which the answer is fresh: `max-age` when given, `default_max_age`
    /// otherwise, and no time at all under `no-cache`.
    pub fn fresh_until(&self, now: i64, default_max_age: u64) -> i64 {
        if self.no_cache {
            return now;
        }
        let age = self.max_age.unwrap_or(default_max_age);
        now.saturating_add(i64::try_from(age).unwrap_or(i64::MAX))
    }
}

/// The origin's answer.
pub enum Fetched {
    /// 304: the cached clip is still current.
    NotModified(Freshness),
    /// 200: the body, downloaded into a scratch file.
    Body {
        file: NamedTempFile,
        hint: SourceHint,
        freshness: Freshness,
    },
}

pub struct Fetcher {
    client: reqwest::Client,
    allow_private: bool,
    max_bytes: u64,
}

/// The literal IP of `url`'s host, if it has one.
fn literal_ip(url: &Url) -> Option<IpAddr> {
    url.host_str()?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok()
}

fn refused_literal(url: &Url, allow_private: bool) -> Option<MediaError> {
    let ip = literal_ip(url)?;
    (!allow_private && !is_public(ip)).then(|| {
        MediaError::refused(format!(
            "{url} points at the private address {ip}; media is only fetched from public addresses unless the operator sets media.allow_private_addresses"
        ))
    })
}

/// Types that are certainly not audio: answering them is refused before the body is read.
fn is_document(content_type: &str) -> bool {
    let mime = mime_essence(content_type);
    mime.starts_with("text/")
        || matches!(
            mime.as_str(),
            "application/xml" | "application/xhtml+xml" | "application/json"
        )
}

impl Fetcher {
    pub fn new(settings: &MediaSettings) -> anyhow::Result<Fetcher> {
        let allow_private = settings.allow_private_addresses;
        let max_redirects = settings.max_redirects as usize;
        let redirect = reqwest::redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() > max_redirects {
                return attempt.error(format!(
                    "more than {max_redirects} redirects; link the audio file itself"
                ));
            }
            if let Some(refusal) = refused_literal(attempt.url(), allow_private) {
                return attempt.error(refusal.message);
            }
            attempt.follow()
        });
        let mut builder = reqwest::Client::builder()
            .redirect(redirect)
            // A proxy would resolve names itself and bypass the address check.
            .no_proxy()
            .connect_timeout(Duration::from_millis(settings.fetch_timeout_ms.min(10_000)))
            .user_agent(concat!("switchboard-media/", env!("CARGO_PKG_VERSION")));
        if !allow_private {
            builder = builder.dns_resolver(Arc::new(PublicOnly));
        }
        Ok(Fetcher {
            client: builder.build()?,
            allow_private,
            max_bytes: settings.max_fetch_bytes,
        })
    }

    /// GETs `url` into `file`, conditionally when `cached` holds validators.
    pub async fn fetch(
        &self,
        url: &Url,
        cached: Option<&Source>,
        file: NamedTempFile,
        timeout: Duration,
    ) -> Result<Fetched, MediaError> {
        if let Some(refusal) = refused_literal(url, self.allow_private) {
            return Err(refusal);
        }
        let mut request = self.client.get(url.clone()).timeout(timeout);
        if let Some(cached) = cached {
            if let Some(etag) = &cached.etag {
                request = request.header(IF_NONE_MATCH, etag);
            }
            if let Some(last_modified) = &cached.last_modified {
                request = request.header(IF_MODIFIED_SINCE, last_modified);
            }
        }
        let mut response = request
            .send()
            .await
            .map_err(|error| self.explain(url, &error, timeout))?;
        let freshness = Freshness::from_headers(response.headers());
        if response.status() == StatusCode::NOT_MODIFIED && cached.is_some() {
            return Ok(Fetched::NotModified(freshness));
        }
        if !response.status().is_success() {
            return Err(MediaError::fetch(format!(
                "{url} answered HTTP {}; make sure the URL serves the audio file",
                response.status()
            )));
        }
        let content_type = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .map(str::to_string);
        if let Some(content_type) = content_type.as_deref().filter(|c| is_document(c)) {
            return Err(MediaError::not_audio(format!(
                "{url} answered with {content_type}, not audio; Play needs a URL of an audio file (WAV, MP3, OGG, FLAC, AIFF, μ-law)"
            )));
        }
        let declared = response
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.parse::<u64>().ok());
        if let Some(declared) = declared.filter(|&declared| declared > self.max_bytes) {
            return Err(self.too_large(url, Some(declared)));
        }
        let writer = file.reopen().map_err(MediaError::internal)?;
        let mut writer = tokio::io::BufWriter::new(tokio::fs::File::from_std(writer));
        let mut received = 0u64;
        loop {
            let chunk = match response.chunk().await {
                Ok(Some(chunk)) => chunk,
                Ok(None) => break,
                Err(error) => return Err(self.explain(url, &error, timeout)),
            };
            received += chunk.len() as u64;
            if received > self.max_bytes {
                return Err(self.too_large(url, None));
            }
            writer
                .write_all(&chunk)
                .await
                .map_err(MediaError::internal)?;
        }
        writer.flush().await.map_err(MediaError::internal)?;
        if let Some(declared) = declared.filter(|&declared| declared != received) {
            return Err(MediaError::fetch(format!(
                "{url} ended after {received} of its {declared} bytes"
            )));
        }
        let extension = url
            .path()
            .rsplit_once('.')
            .map(|(_, extension)| extension.to_ascii_lowercase())
            .filter(|extension| extension.len() <= 5 && !extension.contains('/'));
        Ok(Fetched::Body {
            file,
            hint: SourceHint {
                extension,
                content_type,
            },
            freshness,
        })
    }

    fn too_large(&self, url: &Url, declared: Option<u64>) -> MediaError {
        let size = declared.map_or_else(|| "more".to_string(), |bytes| bytes.to_string());
        MediaError::too_large(format!(
            "{url} is {size} bytes, larger than the limit of {} bytes (media.max_fetch_bytes); shorten or compress the file",
            self.max_bytes
        ))
    }

    fn explain(&self, url: &Url, error: &reqwest::Error, timeout: Duration) -> MediaError {
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
        while let Some(cause) = source {
            if let Some(private) = cause.downcast_ref::<PrivateTarget>() {
                return MediaError::refused(format!(
                    "{url} is not fetched: {private}; media is only fetched from public addresses unless the operator sets media.allow_private_addresses"
                ));
            }
            source = cause.source();
        }
        if error.is_timeout() {
            MediaError::fetch(format!(
                "{url} did not answer within {} ms",
                timeout.as_millis()
            ))
        } else if error.is_redirect() {
            MediaError::fetch(format!("{url} could not be fetched: {error}"))
        } else if error.is_connect() {
            MediaError::fetch(format!(
                "{url} is unreachable: could not connect to {}",
                url.host_str().unwrap_or_default()
            ))
        } else {
            MediaError::fetch(format!("{url} could not be fetched: {error}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_control_directives_are_read() {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            CACHE_CONTROL,
            "public, max-age=60, no-cache".parse().expect("value"),
        );
        headers.insert(ETAG, "\"v1\"".parse().expect("value"));
        let freshness = Freshness::from_headers(&headers);
        assert_eq!(freshness.max_age, Some(60));
        assert!(freshness.no_cache);
        assert_eq!(freshness.etag.as_deref(), Some("\"v1\""));
        assert_eq!(freshness.fresh_until(1_000, 300), 1_000);
        let plain = Freshness::default();
        assert_eq!(plain.fresh_until(1_000, 300), 1_300);
    }
}
