//! Any supported audio file in, 8 kHz mono G.711 μ-law out, as a stream: packets are decoded one at
//! a time, downmixed, resampled in fixed chunks and written out at once, so a 40-minute file costs
//! no more memory than a 4-second one.
//!
//! Resampling uses rubato's synchronous FFT resampler: the ratio between the source rate and 8 kHz
//! is fixed, and for a fixed ratio it is both the fastest and the cleanest of rubato's resamplers
//! (its anti-aliasing filter keeps what is above 4 kHz out of the telephone band).

use std::io::{self, Read, Write};

use audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Fft, FixedSync, Indexing, Resampler};
use symphonia::core::audio::SampleBuffer;
use symphonia::core::codecs::{CODEC_TYPE_NULL, DecoderOptions};
use symphonia::core::errors::Error as DecodeError;
use symphonia::core::formats::FormatOptions;
use symphonia::core::io::{MediaSource, MediaSourceStream};
use symphonia::core::meta::MetadataOptions;
use symphonia::core::probe::Hint;

use super::MediaError;

/// The telephone network's sample rate.
pub const RATE: u32 = 8_000;
/// μ-law bytes per millisecond of telephony audio.
pub const BYTES_PER_MS: u64 = (RATE / 1000) as u64;

/// Frames the resampler takes per call: large enough that the FFT's fixed costs vanish, small
/// enough that a chunk of any source rate fits in a few hundred kilobytes.
const RESAMPLER_CHUNK: usize = 4_096;

/// What the source is, as far as its name and content type tell.
#[derive(Debug, Clone, Default)]
pub struct SourceHint {
    pub extension: Option<String>,
    pub content_type: Option<String>,
}

impl SourceHint {
    /// Headerless 8 kHz μ-law (`audio/basic`, `.ul`, `.ulaw`): already in the telephony format.
    pub fn is_raw_mulaw(&self) -> bool {
        let mime = self.content_type.as_deref().map(mime_essence);
        matches!(
            mime.as_deref(),
            Some("audio/basic" | "audio/x-mulaw" | "audio/mulaw" | "audio/pcmu")
        ) || matches!(
            self.extension.as_deref(),
            Some("ul" | "ulaw" | "mulaw" | "pcmu")
        )
    }
}

/// `text/html; charset=utf-8` → `text/html`.
pub fn mime_essence(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

/// Transcodes `source` into μ-law bytes written to `out`; returns how many were written (one per
/// 8 kHz sample). Fails when the source is not audio, is truncated, or holds no samples.
pub fn transcode(
    source: Box<dyn MediaSource>,
    hint: &SourceHint,
    out: &mut dyn Write,
) -> Result<u64, MediaError> {
    if hint.is_raw_mulaw() {
        return copy_raw(source, out);
    }
    let mut probe_hint = Hint::new();
    if let Some(extension) = &hint.extension {
        probe_hint.with_extension(extension);
    }
    if let Some(content_type) = &hint.content_type {
        probe_hint.mime_type(&mime_essence(content_type));
    }
    let stream = MediaSourceStream::new(source, Default::default());
    let probed = symphonia::default::get_probe()
        .format(
            &probe_hint,
            stream,
            // Gapless: trims the encoder delay and padding MP3 files declare, so the clip is as
            // long as what was encoded.
            &FormatOptions {
                enable_gapless: true,
                ..FormatOptions::default()
            },
            &MetadataOptions::default(),
        )
        .map_err(|error| {
            MediaError::not_audio(format!(
                "the file is not audio in a supported format (WAV, MP3, OGG/Vorbis, FLAC, AIFF or raw μ-law): {error}"
            ))
        })?;
    let mut format = probed.format;
    let track = format
        .tracks()
        .iter()
        .find(|track| track.codec_params.codec != CODEC_TYPE_NULL)
        .ok_or_else(|| MediaError::not_audio("the file has no audio track"))?;
    let track_id = track.id;
    let promised_frames = track.codec_params.n_frames;
    let mut decoder = symphonia::default::get_codecs()
        .make(&track.codec_params, &DecoderOptions::default())
        .map_err(|error| {
            MediaError::not_audio(format!("the audio codec is not supported: {error}"))
        })?;

    let mut sink: Option<Sink<'_>> = None;
    let mut samples: Option<SampleBuffer<f32>> = None;
    let mut mono = Vec::new();
    let mut source_rate = 0;
    loop {
        let packet = match format.next_packet() {
            Ok(packet) => packet,
            Err(DecodeError::IoError(error)) if error.kind() == io::ErrorKind::UnexpectedEof => {
                break;
            }
            Err(DecodeError::ResetRequired) => break,
            Err(error) => {
                return Err(MediaError::not_audio(format!(
                    "the audio could not be read: {error}"
                )));
            }
        };
        if packet.track_id() != track_id {
            continue;
        }
        let decoded = match decoder.decode(&packet) {
            Ok(decoded) => decoded,
            // A damaged frame (common in MP3 streams) is skipped, as players do.
            Err(DecodeError::DecodeError(_)) => continue,
            Err(error) => {
                return Err(MediaError::not_audio(format!(
                    "the audio could not be decoded: {error}"
                )));
            }
        };
        let spec = *decoded.spec();
        let channels = spec.channels.count().max(1);
        if sink.is_none() {
            source_rate = spec.rate;
            sink = Some(Sink::new(spec.rate, out)?);
        }
        let buffer = match &mut samples {
            Some(buffer) if buffer.capacity() >= decoded.capacity() * channels => buffer,
            _ => samples.insert(SampleBuffer::new(decoded.capacity() as u64, spec)),
        };
        buffer.copy_interleaved_ref(decoded);
        downmix(buffer.samples(), channels, &mut mono);
        if let Some(sink) = sink.as_mut() {
            sink.push(&mono)?;
        }
    }
    let Some(sink) = sink else {
        return Err(MediaError::not_audio("the file holds no audio samples"));
    };
    let decoded_frames = sink.frames_in;
    if let Some(promised) = promised_frames {
        // A tenth of a second of slack covers encoder padding and gapless trimming.
        let slack = u64::from(source_rate / 10);
        if decoded_frames + slack < promised {
            return Err(MediaError::not_audio(format!(
                "the file is truncated: its header promises {} ms of audio but only {} ms are present",
                promised * 1000 / u64::from(source_rate.max(1)),
                decoded_frames * 1000 / u64::from(source_rate.max(1)),
            )));
        }
    }
    if decoded_frames == 0 {
        return Err(MediaError::not_audio("the file holds no audio samples"));
    }
    sink.finish()
}

/// Raw μ-law needs no decoding: it is copied as it is.
fn copy_raw(mut source: Box<dyn MediaSource>, out: &mut dyn Write) -> Result<u64, MediaError> {
    let mut buffer = vec![0u8; 64 * 1024];
    let mut written = 0u64;
    loop {
        let read = match source.read(&mut buffer) {
            Ok(0) => break,
            Ok(read) => read,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(MediaError::internal(error)),
        };
        out.write_all(&buffer[..read])
            .map_err(MediaError::internal)?;
        written += read as u64;
    }
    if written == 0 {
        return Err(MediaError::not_audio("the file holds no audio samples"));
    }
    Ok(written)
}

/// Averages the channels of interleaved `samples` into `mono` (replacing its contents).
fn downmix(samples: &[f32], channels: usize, mono: &mut Vec<f32>) {
    mono.clear();
    if channels == 1 {
        mono.extend_from_slice(samples);
        return;
    }
    let scale = 1.0 / channels as f32;
    mono.extend(
        samples
            .chunks_exact(channels)
            .map(|frame| frame.iter().sum::<f32>() * scale),
    );
}

/// Resamples mono audio to 8 kHz and writes it as μ-law.
struct Sink<'w> {
    /// `None` when the source is already at 8 kHz.
    resampler: Option<Fft<f32>>,
    rate: u32,
    /// Source frames waiting for a full resampler chunk.
    pending: Vec<f32>,
    /// Frames before this many output frames are the resampler's delay, not audio.
    delay_left: usize,
    output: Vec<f32>,
    encoded: Vec<u8>,
    frames_in: u64,
    written: u64,
    out: &'w mut dyn Write,
}

impl<'w> Sink<'w> {
    fn new(rate: u32, out: &'w mut dyn Write) -> Result<Self, MediaError> {
        if rate == 0 {
            return Err(MediaError::not_audio("the file states a sample rate of 0"));
        }
        let resampler = if rate == RATE {
            None
        } else {
            Some(
                Fft::<f32>::new(
                    rate as usize,
                    RATE as usize,
                    RESAMPLER_CHUNK,
                    1,
                    FixedSync::Input,
                )
                .map_err(|error| {
                    MediaError::not_audio(format!(
                        "audio at {rate} Hz cannot be resampled: {error}"
                    ))
                })?,
            )
        };
        let (delay_left, output) = match &resampler {
            Some(resampler) => (
                resampler.output_delay(),
                vec![0.0; resampler.output_frames_max()],
            ),
            None => (0, Vec::new()),
        };
        Ok(Sink {
            resampler,
            rate,
            pending: Vec::new(),
            delay_left,
            output,
            encoded: Vec::new(),
            frames_in: 0,
            written: 0,
            out,
        })
    }

    fn push(&mut self, mono: &[f32]) -> Result<(), MediaError> {
        self.frames_in += mono.len() as u64;
        let Some(resampler) = self.resampler.as_mut() else {
            return write_ulaw(mono, &mut self.encoded, self.out, &mut self.written, None);
        };
        self.pending.extend_from_slice(mono);
        let mut start = 0;
        loop {
            let needed = resampler.input_frames_next();
            if self.pending.len() - start < needed {
                break;
            }
            let produced = resample(
                resampler,
                &self.pending[start..start + needed],
                None,
                &mut self.output,
            )?;
            start += needed;
            let audio = skip_delay(&self.output[..produced], &mut self.delay_left);
            write_ulaw(audio, &mut self.encoded, self.out, &mut self.written, None)?;
        }
        self.pending.drain(..start);
        Ok(())
    }

    /// Flushes what the resampler still holds and returns the μ-law bytes written: exactly the
    /// source's length at 8 kHz.
    fn finish(mut self) -> Result<u64, MediaError> {
        let expected =
            (self.frames_in * u64::from(RATE) + u64::from(self.rate) / 2) / u64::from(self.rate);
        if let Some(resampler) = self.resampler.as_mut() {
            let mut partial = std::mem::take(&mut self.pending);
            let needed = resampler.input_frames_next();
            let valid = partial.len();
            partial.resize(needed.max(valid), 0.0);
            let mut valid = Some(valid);
            // The last partial chunk, then silence until the delayed tail is out.
            while self.written < expected {
                let produced = resample(resampler, &partial, valid, &mut self.output)?;
                if valid.take().is_some() {
                    partial.iter_mut().for_each(|sample| *sample = 0.0);
                }
                let audio = skip_delay(&self.output[..produced], &mut self.delay_left);
                write_ulaw(
                    audio,
                    &mut self.encoded,
                    self.out,
                    &mut self.written,
                    Some(expected),
                )?;
            }
        }
        self.out.flush().map_err(MediaError::internal)?;
        if self.written == 0 {
            return Err(MediaError::not_audio(
                "the audio is shorter than one 8 kHz sample",
            ));
        }
        Ok(self.written)
    }
}

fn resample(
    resampler: &mut Fft<f32>,
    input: &[f32],
    partial_len: Option<usize>,
    output: &mut [f32],
) -> Result<usize, MediaError> {
    let frames_in = input.len();
    let frames_out = output.len();
    let input = InterleavedSlice::new(input, 1, frames_in).map_err(MediaError::internal)?;
    let mut output =
        InterleavedSlice::new_mut(output, 1, frames_out).map_err(MediaError::internal)?;
    let indexing = Indexing {
        partial_len,
        ..Indexing::default()
    };
    let (_, produced) = resampler
        .process_into_buffer(&input, &mut output, Some(&indexing))
        .map_err(MediaError::internal)?;
    Ok(produced)
}

fn skip_delay<'a>(samples: &'a [f32], delay_left: &mut usize) -> &'a [f32] {
    let skip = (*delay_left).min(samples.len());
    *delay_left -= skip;
    &samples[skip..]
}

/// Encodes and writes `samples`, stopping at `limit` bytes written in all when given.
fn write_ulaw(
    samples: &[f32],
    encoded: &mut Vec<u8>,
    out: &mut dyn Write,
    written: &mut u64,
    limit: Option<u64>,
) -> Result<(), MediaError> {
    let take = match limit {
        Some(limit) => samples
            .len()
            .min(usize::try_from(limit.saturating_sub(*written)).unwrap_or(usize::MAX)),
        None => samples.len(),
    };
    encoded.clear();
    encoded.extend(samples[..take].iter().map(|&sample| f32_to_ulaw(sample)));
    out.write_all(encoded).map_err(MediaError::internal)?;
    *written += take as u64;
    Ok(())
}

fn f32_to_i16(sample: f32) -> i16 {
    (sample * 32_767.0).clamp(-32_768.0, 32_767.0) as i16
}

fn f32_to_ulaw(sample: f32) -> u8 {
    linear_to_ulaw(f32_to_i16(sample))
}

/// G.711 μ-law encoding of one 16-bit sample.
pub fn linear_to_ulaw(sample: i16) -> u8 {
    const BIAS: i32 = 0x84;
    const CLIP: i32 = 32_635;
    let value = i32::from(sample);
    let sign = if value < 0 { 0x80 } else { 0 };
    let magnitude = value.abs().min(CLIP) + BIAS;
    let exponent = (31 - (magnitude as u32).leading_zeros()).saturating_sub(7);
    let mantissa = (magnitude >> (exponent + 3)) & 0x0F;
    !(sign | ((exponent as i32) << 4) | mantissa) as u8
}

/// G.711 μ-law decoding of one byte.
pub const fn ulaw_to_linear(byte: u8) -> i16 {
    const BIAS: i32 = 0x84;
    let byte = !byte;
    let exponent = (byte >> 4) & 0x07;
    let mantissa = (byte & 0x0F) as i32;
    let magnitude = (((mantissa << 3) + BIAS) << exponent) - BIAS;
    if byte & 0x80 != 0 {
        -magnitude as i16
    } else {
        magnitude as i16
    }
}

/// G.711 A-law encoding of one 16-bit sample.
pub fn linear_to_alaw(sample: i16) -> u8 {
    let value = i32::from(sample) >> 3;
    let (mask, magnitude) = if value >= 0 {
        (0xD5, value)
    } else {
        (0x55, -value - 1)
    };
    let segment = (0..8)
        .find(|&segment| magnitude <= (0x1F << segment))
        .unwrap_or(8);
    if segment >= 8 {
        return (0x7F ^ mask) as u8;
    }
    let mantissa = if segment < 2 {
        (magnitude >> 1) & 0x0F
    } else {
        (magnitude >> segment) & 0x0F
    };
    (((segment << 4) | mantissa) ^ mask) as u8
}

/// μ-law bytes as A-law, for endpoints that speak PCMA.
pub fn ulaw_to_alaw(bytes: &[u8]) -> Vec<u8> {
    bytes
        .iter()
        .map(|&byte| linear_to_alaw(ulaw_to_linear(byte)))
        .collect()
}

/// A WAV header for `data_len` bytes of 8 kHz mono G.711 (`format` 7 = μ-law, 6 = A-law), with the
/// `fact` chunk that non-PCM WAV files carry.
pub fn g711_wav_header(data_len: u32, format: u16) -> Vec<u8> {
    let mut header = Vec::with_capacity(58);
    header.extend_from_slice(b"RIFF");
    header.extend_from_slice(&(50 + data_len).to_le_bytes());
    header.extend_from_slice(b"WAVEfmt ");
    header.extend_from_slice(&18u32.to_le_bytes());
    header.extend_from_slice(&format.to_le_bytes());
    header.extend_from_slice(&1u16.to_le_bytes());
    header.extend_from_slice(&RATE.to_le_bytes());
    header.extend_from_slice(&RATE.to_le_bytes());
    header.extend_from_slice(&1u16.to_le_bytes());
    header.extend_from_slice(&8u16.to_le_bytes());
    header.extend_from_slice(&0u16.to_le_bytes());
    header.extend_from_slice(b"fact");
    header.extend_from_slice(&4u32.to_le_bytes());
    header.extend_from_slice(&data_len.to_le_bytes());
    header.extend_from_slice(b"data");
    header.extend_from_slice(&data_len.to_le_bytes());
    header
}

/// A 16-bit PCM WAV file of a sine tone: `channels` channels at `rate` Hz for `frames` frames.
/// Test and benchmark material.
pub fn tone_wav(rate: u32, channels: u16, frames: u32, frequency: f32) -> Vec<u8> {
    let mut wav = pcm_wav_header(rate, channels, frames);
    let step = std::f32::consts::TAU * frequency / rate as f32;
    for frame in 0..frames {
        let sample = f32_to_i16((frame as f32 * step).sin() * 0.5);
        for _ in 0..channels {
            wav.extend_from_slice(&sample.to_le_bytes());
        }
    }
    wav
}

/// The 44-byte header of a 16-bit PCM WAV file.
pub fn pcm_wav_header(rate: u32, channels: u16, frames: u32) -> Vec<u8> {
    let block = u32::from(channels) * 2;
    let data_len = frames.saturating_mul(block);
    let mut wav = Vec::with_capacity(44 + data_len as usize);
    wav.extend_from_slice(b"RIFF");
    wav.extend_from_slice(&36u32.saturating_add(data_len).to_le_bytes());
    wav.extend_from_slice(b"WAVEfmt ");
    wav.extend_from_slice(&16u32.to_le_bytes());
    wav.extend_from_slice(&1u16.to_le_bytes());
    wav.extend_from_slice(&channels.to_le_bytes());
    wav.extend_from_slice(&rate.to_le_bytes());
    wav.extend_from_slice(&(rate * block).to_le_bytes());
    wav.extend_from_slice(&(block as u16).to_le_bytes());
    wav.extend_from_slice(&16u16.to_le_bytes());
    wav.extend_from_slice(b"data");
    wav.extend_from_slice(&data_len.to_le_bytes());
    wav
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use super::*;

    fn run(bytes: Vec<u8>, extension: &str) -> Result<Vec<u8>, MediaError> {
        let mut out = Vec::new();
        let hint = SourceHint {
            extension: Some(extension.into()),
            content_type: None,
        };
        transcode(Box::new(Cursor::new(bytes)), &hint, &mut out)?;
        Ok(out)
    }

    #[test]
    fn stereo_cd_audio_becomes_8_khz_mono_of_the_same_length() {
        let out = run(tone_wav(44_100, 2, 44_100 * 3 / 2, 440.0), "wav").expect("transcoded");
        assert_eq!(out.len(), 12_000);
        // A tone, not silence: the μ-law bytes vary.
        assert!(out.iter().any(|&byte| byte != out[0]));
    }

    #[test]
    fn audio_at_8_khz_is_only_encoded() {
        let out = run(tone_wav(8_000, 1, 4_000, 300.0), "wav").expect("transcoded");
        assert_eq!(out.len(), 4_000);
    }

    #[test]
    fn a_truncated_wav_is_refused() {
        let mut wav = tone_wav(16_000, 1, 16_000, 440.0);
        wav.truncate(wav.len() / 2);
        let error = run(wav, "wav").expect_err("truncated");
        assert!(error.message.contains("truncated"), "{error}");
    }

    #[test]
    fn html_is_not_audio() {
        let error =
            run(b"<html><body>Not found</body></html>".to_vec(), "wav").expect_err("not audio");
        assert!(error.message.contains("not audio"), "{error}");
    }

    #[test]
    fn g711_matches_the_reference_values() {
        assert_eq!(linear_to_ulaw(0), 0xFF);
        assert_eq!(linear_to_ulaw(-1), 0x7F);
        assert_eq!(linear_to_ulaw(i16::MAX), 0x80);
        assert_eq!(linear_to_ulaw(i16::MIN), 0x00);
        assert_eq!(linear_to_alaw(0), 0xD5);
        assert_eq!(linear_to_alaw(i16::MAX), 0xAA);
        assert_eq!(linear_to_alaw(i16::MIN), 0x2A);
        for byte in 0..=255u8 {
            let linear = ulaw_to_linear(byte);
            // Every code decodes to a value that encodes back to it (0x7F and 0xFF are both 0).
            let again = linear_to_ulaw(linear);
            assert!(
                again == byte || linear == 0,
                "{byte:#x} -> {linear} -> {again:#x}"
            );
        }
    }
}
