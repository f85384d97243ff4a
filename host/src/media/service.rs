//! The media layer's own HTTP interface. Calls and modules ask for media with HTTP requests
//! (`POST /media/url`, `POST /media/speech`, `GET /media/{id}`) through a [`MediaClient`]; today the
//! requests are answered in-process by this router, without a socket, and the same requests can be
//! sent to the layer running as a separate process later without changing the callers.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{Method, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use tower::ServiceExt;

use super::tts::Speech;
use super::{Media, MediaError, MediaInfo};
use crate::api::error::Code;

/// Largest answer the client reads: a media description or an error, never audio.
const MAX_ANSWER_BYTES: usize = 64 * 1024;

#[derive(Debug, Serialize, Deserialize)]
struct UrlRequest {
    url: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct SpeechRequest {
    text: String,
    voice: Option<String>,
    language: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct ErrorAnswer {
    code: u32,
    message: String,
}

impl IntoResponse for MediaError {
    fn into_response(self) -> Response {
        let answer = ErrorAnswer {
            code: self.code.number(),
            message: self.message,
        };
        (self.code.status(), Json(answer)).into_response()
    }
}

/// The interface's routes.
pub fn router(media: Arc<Media>) -> Router {
    Router::new()
        .route("/media/url", post(resolve_url))
        .route("/media/speech", post(synthesize))
        .route("/media/{id}", get(describe))
        .with_state(media)
}

async fn resolve_url(
    State(media): State<Arc<Media>>,
    Json(request): Json<UrlRequest>,
) -> Result<Json<MediaInfo>, MediaError> {
    media.resolve_url(&request.url).await.map(Json)
}

async fn synthesize(
    State(media): State<Arc<Media>>,
    Json(request): Json<SpeechRequest>,
) -> Result<Json<MediaInfo>, MediaError> {
    let speech = Speech {
        text: request.text,
        voice: request.voice,
        language: request.language,
    };
    media.synthesize(speech).await.map(Json)
}

async fn describe(
    State(media): State<Arc<Media>>,
    Path(id): Path<String>,
) -> Result<Json<MediaInfo>, MediaError> {
    media
        .info(&id)
        .map(Json)
        .ok_or_else(|| MediaError::new(Code::NotFound, format!("no media {id} is cached")))
}

/// Asks the media layer for media over its HTTP interface.
#[derive(Clone)]
pub struct MediaClient {
    service: Router,
}

impl MediaClient {
    /// A client of the layer running in this process.
    pub fn in_process(media: Arc<Media>) -> MediaClient {
        MediaClient {
            service: router(media),
        }
    }

    /// The audio at `url`, fetched (or taken from the cache) and transcoded.
    pub async fn resolve_url(&self, url: &str) -> Result<MediaInfo, MediaError> {
        let body = UrlRequest {
            url: url.to_string(),
        };
        self.send(Method::POST, "/media/url", Some(&body)).await
    }

    /// Speech for `text`, synthesized (or taken from the cache).
    pub async fn synthesize(
        &self,
        text: &str,
        voice: Option<&str>,
        language: Option<&str>,
    ) -> Result<MediaInfo, MediaError> {
        let body = SpeechRequest {
            text: text.to_string(),
            voice: voice.map(str::to_string),
            language: language.map(str::to_string),
        };
        self.send(Method::POST, "/media/speech", Some(&body)).await
    }

    /// The cached clip `id`; `None` when it is not (or no longer) cached.
    pub async fn describe(&self, id: &str) -> Result<Option<MediaInfo>, MediaError> {
        if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Ok(None);
        }
        match self
            .send::<()>(Method::GET, &format!("/media/{id}"), None)
            .await
        {
            Ok(info) => Ok(Some(info)),
            Err(error) if error.code == Code::NotFound => Ok(None),
            Err(error) => Err(error),
        }
    }

    async fn send<T: Serialize>(
        &self,
        method: Method,
        path: &str,
        body: Option<&T>,
    ) -> Result<MediaInfo, MediaError> {
        let body = match body {
            Some(body) => Body::from(serde_json::to_vec(body).map_err(MediaError::internal)?),
            None => Body::empty(),
        };
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header("content-type", "application/json")
            .body(body)
            .map_err(MediaError::internal)?;
        let response = match self.service.clone().oneshot(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        };
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), MAX_ANSWER_BYTES)
            .await
            .map_err(MediaError::internal)?;
        if status == StatusCode::OK {
            return serde_json::from_slice(&bytes).map_err(MediaError::internal);
        }
        let answer: ErrorAnswer = serde_json::from_slice(&bytes)
            .map_err(|_| MediaError::internal(format!("the media layer answered HTTP {status}")))?;
        let code = Code::from_number(answer.code).unwrap_or(Code::Internal);
        Err(MediaError::new(code, answer.message))
    }
}
