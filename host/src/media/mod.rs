//! Media that calls play. For now this answers one question, how long an audio URL plays, by
//! fetching the file once, decoding it with symphonia and remembering the answer per URL. The media
//! layer (caching the audio itself, transcoding for telephony, text-to-speech) grows from here.

use std::collections::HashMap;
use std::io::Cursor;
use std::sync::Mutex;

use symphonia::core::formats::FormatOptions;
use symphonia::core::io::MediaSourceStream;
use symphonia::core::meta::MetadataOptions;
use symphonia::core::probe::Hint;

/// Largest audio file fetched to learn its length.
const MAX_MEDIA_BYTES: usize = 16 * 1024 * 1024;
/// URLs whose length is remembered; past this the memory starts over.
const REMEMBERED_URLS: usize = 10_000;

/// Lengths of audio URLs, fetched and decoded on first use.
pub struct Media {
    http: reqwest::Client,
    durations: Mutex<HashMap<String, Option<i64>>>,
}

impl Media {
    pub fn new(http: reqwest::Client) -> Self {
        Media {
            http,
            durations: Mutex::new(HashMap::new()),
        }
    }

    fn remembered(&self) -> std::sync::MutexGuard<'_, HashMap<String, Option<i64>>> {
        self.durations
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Milliseconds `url` plays for; `None` when it cannot be fetched or decoded (the call then
    /// moves on at once, and the timeline shows no duration).
    pub async fn duration_ms(&self, url: &str) -> Option<i64> {
        if let Some(known) = self.remembered().get(url) {
            return *known;
        }
        let duration = self.fetch_duration(url).await;
        let mut remembered = self.remembered();
        if remembered.len() >= REMEMBERED_URLS {
            remembered.clear();
        }
        remembered.insert(url.to_string(), duration);
        duration
    }

    async fn fetch_duration(&self, url: &str) -> Option<i64> {
        let parsed = reqwest::Url::parse(url).ok()?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return None;
        }
        let mut response = self.http.get(parsed.clone()).send().await.ok()?;
        if !response.status().is_success() {
            tracing::info!(%url, status = %response.status(), "media could not be fetched");
            return None;
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = response.chunk().await.ok()? {
            if bytes.len() + chunk.len() > MAX_MEDIA_BYTES {
                tracing::info!(%url, "media is larger than {MAX_MEDIA_BYTES} bytes");
                return None;
            }
            bytes.extend_from_slice(&chunk);
        }
        let extension = parsed
            .path()
            .rsplit_once('.')
            .map(|(_, ext)| ext.to_ascii_lowercase());
        tokio::task::spawn_blocking(move || decoded_duration_ms(bytes, extension.as_deref()))
            .await
            .ok()
            .flatten()
    }
}

/// Decodes the container's header (and, when it does not state a length, its packets) to find how
/// long the audio plays.
pub fn decoded_duration_ms(bytes: Vec<u8>, extension: Option<&str>) -> Option<i64> {
    let mut hint = Hint::new();
    if let Some(extension) = extension {
        hint.with_extension(extension);
    }
    let source = MediaSourceStream::new(Box::new(Cursor::new(bytes)), Default::default());
    let probed = symphonia::default::get_probe()
        .format(
            &hint,
            source,
            &FormatOptions::default(),
            &MetadataOptions::default(),
        )
        .ok()?;
    let mut format = probed.format;
    let track = format.default_track()?;
    let track_id = track.id;
    let params = track.codec_params.clone();
    if let (Some(frames), Some(rate)) = (params.n_frames, params.sample_rate)
        && rate > 0
    {
        return Some((frames.saturating_mul(1000) / u64::from(rate)) as i64);
    }
    // No length in the header (e.g. MP3 without a Xing frame): add up the packets.
    let time_base = params.time_base?;
    let mut units: u64 = 0;
    while let Ok(packet) = format.next_packet() {
        if packet.track_id() == track_id {
            units = units.saturating_add(packet.dur);
        }
    }
    let time = time_base.calc_time(units);
    Some((time.seconds as f64 * 1000.0 + time.frac * 1000.0) as i64)
}

/// A mono 16-bit PCM WAV file of `samples` silent samples at `rate` Hz: test media.
pub fn silent_wav(rate: u32, samples: u32) -> Vec<u8> {
    let data_len = samples * 2;
    let mut wav = Vec::with_capacity(44 + data_len as usize);
    wav.extend_from_slice(b"RIFF");
    wav.extend_from_slice(&(36 + data_len).to_le_bytes());
    wav.extend_from_slice(b"WAVEfmt ");
    wav.extend_from_slice(&16u32.to_le_bytes());
    wav.extend_from_slice(&1u16.to_le_bytes());
    wav.extend_from_slice(&1u16.to_le_bytes());
    wav.extend_from_slice(&rate.to_le_bytes());
    wav.extend_from_slice(&(rate * 2).to_le_bytes());
    wav.extend_from_slice(&2u16.to_le_bytes());
    wav.extend_from_slice(&16u16.to_le_bytes());
    wav.extend_from_slice(b"data");
    wav.extend_from_slice(&data_len.to_le_bytes());
    wav.resize(44 + data_len as usize, 0);
    wav
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wav_file_plays_for_its_samples_over_its_rate() {
        assert_eq!(
            decoded_duration_ms(silent_wav(8_000, 12_000), Some("wav")),
            Some(1_500)
        );
        assert_eq!(
            decoded_duration_ms(silent_wav(16_000, 4_000), None),
            Some(250)
        );
    }

    #[test]
    fn what_is_not_audio_has_no_duration() {
        assert_eq!(
            decoded_duration_ms(b"<Response/>".to_vec(), Some("wav")),
            None
        );
        assert_eq!(decoded_duration_ms(Vec::new(), None), None);
    }
}
