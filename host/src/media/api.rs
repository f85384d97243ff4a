//! `/v1/Media`: tenants upload audio, anyone holding an account fetches clips by their persistent
//! address, and the operator reads the cache's statistics.
//!
//! Clips are shared by every account: an id is the hash of the audio itself, so knowing it means
//! already having the audio, and storing one recording once whoever uses it keeps the cache small.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use futures::StreamExt;
use serde::Deserialize;
use tokio::io::AsyncWriteExt;

use super::transcode::{self, SourceHint};
use super::tts::Speech;
use super::{CacheStats, MediaError, MediaInfo};
use crate::api::ApiQuery;
use crate::api::auth::{Operator, Tenant};
use crate::api::error::{ApiError, ApiResult, Code};
use crate::app::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/Media", axum::routing::post(upload_media))
        .route("/v1/Media/Cache", get(cache_statistics))
        .route("/v1/Media/{Id}", get(fetch_media))
}

impl From<MediaError> for ApiError {
    fn from(error: MediaError) -> ApiError {
        ApiError::new(error.code, error.message)
    }
}

/// What a form-encoded `POST /v1/Media` asks for: the audio at `Url`, or `Text` spoken.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct MediaForm {
    /// An http(s) URL of audio to fetch, transcode and cache.
    url: Option<String>,
    /// Text to synthesize.
    text: Option<String>,
    /// `man`, `woman` or `alice` (with `Text`).
    voice: Option<String>,
    /// A language tag such as `en-US` (with `Text`).
    language: Option<String>,
}

/// Makes media telephony-ready and answers its persistent address and duration. The body is
/// either audio (any supported format, named by its `Content-Type`; answered 201), or a form with
/// `Url` (audio to fetch and cache, as `<Play>` does) or `Text` (speech, as `<Say>` does; both
/// answered 200).
#[utoipa::path(post, path = "/v1/Media", tag = "media", security(("account" = [])),
    request_body(description = "Audio (WAV, MP3, OGG/Vorbis, FLAC, AIFF or raw 8 kHz mu-law as audio/basic), or a form with Url or Text",
        content((Vec<u8> = "audio/*"), (MediaForm = "application/x-www-form-urlencoded"))),
    responses((status = 201, body = MediaInfo), (status = 200, body = MediaInfo),
        (status = 400, body = crate::api::error::ErrorBody), (status = 403, body = crate::api::error::ErrorBody),
        (status = 413, body = crate::api::error::ErrorBody), (status = 422, body = crate::api::error::ErrorBody),
        (status = 502, body = crate::api::error::ErrorBody), (status = 503, body = crate::api::error::ErrorBody)))]
pub async fn upload_media(
    Tenant(account): Tenant,
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .map(str::to_string);
    if content_type
        .as_deref()
        .map(transcode::mime_essence)
        .as_deref()
        == Some("application/x-www-form-urlencoded")
    {
        return resolve(&state, body).await;
    }
    let limit = state.media.settings().max_upload_bytes;
    let file = state.media.scratch()?;
    let writer = file.reopen().map_err(MediaError::internal)?;
    let mut writer = tokio::io::BufWriter::new(tokio::fs::File::from_std(writer));
    let mut received = 0u64;
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk
            .map_err(|error| ApiError::invalid(format!("the body could not be read: {error}")))?;
        received += chunk.len() as u64;
        if received > limit {
            return Err(ApiError::new(
                Code::MediaTooLarge,
                format!(
                    "the upload is larger than the limit of {limit} bytes (media.max_upload_bytes)"
                ),
            ));
        }
        writer
            .write_all(&chunk)
            .await
            .map_err(MediaError::internal)?;
    }
    writer.flush().await.map_err(MediaError::internal)?;
    if received == 0 {
        return Err(ApiError::invalid(
            "the body is empty; send the audio file as the request body",
        ));
    }
    let hint = SourceHint {
        extension: None,
        content_type,
    };
    let info = state.media.upload(&account.sid, file, hint).await?;
    Ok((StatusCode::CREATED, Json(info)).into_response())
}

/// The form variant of `POST /v1/Media`.
async fn resolve(state: &AppState, body: Body) -> ApiResult<Response> {
    let bytes = axum::body::to_bytes(body, 256 * 1024)
        .await
        .map_err(|error| ApiError::invalid(format!("the form could not be read: {error}")))?;
    let form: MediaForm = serde_urlencoded::from_bytes(&bytes)
        .map_err(|error| ApiError::invalid(format!("the form is not valid: {error}")))?;
    let info = match (form.url, form.text) {
        (Some(url), None) => state.media.resolve_url(&url).await?,
        (None, Some(text)) => {
            let speech = Speech {
                text,
                voice: form.voice,
                language: form.language,
            };
            state.media.synthesize(speech).await?
        }
        _ => {
            return Err(ApiError::invalid(
                "give either Url (audio to fetch) or Text (speech), not both",
            ));
        }
    };
    Ok(Json(info).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct FetchParams {
    /// `basic` (default: raw μ-law, `audio/basic`), `alaw` (raw A-law) or `wav` (μ-law in WAV).
    format: Option<String>,
}

/// The clip's audio: 8 kHz mono G.711, raw (`audio/basic`, or A-law with `Format=alaw`) or in a
/// WAV file (`Format=wav`). Clips are immutable, so they may be cached forever.
#[utoipa::path(get, path = "/v1/Media/{Id}", tag = "media", security(("account" = [])),
    params(("Id" = String, Path), ("Format" = Option<String>, Query, description = "basic, alaw or wav")),
    responses((status = 200, content_type = "audio/basic", body = Vec<u8>),
        (status = 404, body = crate::api::error::ErrorBody)))]
pub async fn fetch_media(
    Tenant(account): Tenant,
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiQuery(params): ApiQuery<FetchParams>,
) -> ApiResult<Response> {
    let not_found = || ApiError::not_found(format!("/v1/Media/{id}"));
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(not_found());
    }
    state.media.info(&id).ok_or_else(not_found)?;
    if !state.media.may_read(&id, &account.sid) {
        return Err(not_found());
    }
    let audio = tokio::fs::read(state.media.clip_path(&id))
        .await
        .map_err(|_| not_found())?;
    let length = u32::try_from(audio.len()).map_err(MediaError::internal)?;
    let (content_type, body) = match params.format.as_deref().unwrap_or("basic") {
        "basic" | "ulaw" | "mulaw" => ("audio/basic", audio),
        "alaw" => ("audio/x-alaw-basic", transcode::ulaw_to_alaw(&audio)),
        "wav" => {
            let mut wav = transcode::g711_wav_header(length, 7);
            wav.extend_from_slice(&audio);
            ("audio/wav", wav)
        }
        other => {
            return Err(ApiError::invalid(format!(
                "Format {other:?} is not one of basic, alaw, wav"
            )));
        }
    };
    Ok((
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
        ],
        body,
    )
        .into_response())
}

/// The media cache: clips and bytes stored against the budget, hits, misses, fetches,
/// revalidations and evictions since start.
#[utoipa::path(get, path = "/v1/Media/Cache", tag = "media", security(("operator" = [])),
    responses((status = 200, body = CacheStats), (status = 401, body = crate::api::error::ErrorBody)))]
pub async fn cache_statistics(
    _operator: Operator,
    State(state): State<AppState>,
) -> Json<CacheStats> {
    Json(state.media.stats())
}
