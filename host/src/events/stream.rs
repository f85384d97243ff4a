//! Live stream subscribers: `GET /v1/Channels/{Sid}/Stream` as Server-Sent Events, or as a
//! WebSocket when the request asks to upgrade.
//!
//! A stream starts live, or after the sequence number in `Last-Event-ID` (or `LastEventId=`),
//! replaying the missed events from the log within the channel's retention. It then takes events
//! from the channel's in-memory hub. A stream that stops reading only fills its own buffers: the
//! hub never waits for it, and when it reads again it finds it fell behind and catches up from the
//! log, so it still receives every event once, in order.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRequestParts, Path, Request, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use bytes::{Bytes, BytesMut};
use tokio::sync::{broadcast, mpsc};

use super::{Events, LiveChannel, Outgoing, channel_events_after};
use crate::api::auth::Tenant;
use crate::api::error::{ApiError, ApiResult};
use crate::app::AppState;

/// Events a stream's feeder hands over before waiting for the connection to take them.
const HANDOFF: usize = 256;
/// A comment line this often keeps idle connections (and the proxies between) open.
const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// Events written to a connection in one piece when several are waiting.
const COALESCE: usize = 64;

#[utoipa::path(get, path = "/v1/Channels/{Sid}/Stream", tag = "events", security(("account" = [])),
    params(("Sid" = String, Path, description = "The channel's sid or unique name"),
        ("Last-Event-ID" = Option<i64>, Header, description = "Resume after this sequence number"),
        ("LastEventId" = Option<i64>, Query, description = "Resume after this sequence number (for clients that cannot set headers)")),
    responses((status = 200, description = "text/event-stream of CloudEvents (id = sequence), or a WebSocket of CloudEvent JSON messages when upgraded", content_type = "text/event-stream"),
        (status = 404, body = crate::api::error::ErrorBody)))]
pub async fn stream(
    State(state): State<AppState>,
    Path(sid): Path<String>,
    request: Request,
) -> Response {
    let (mut parts, _) = request.into_parts();
    let account = match Tenant::from_request_parts(&mut parts, &state).await {
        Ok(Tenant(account)) => account,
        Err(unauthorized) => return unauthorized.into_response(),
    };
    open(state, sid, account.sid, parts)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

async fn open(
    state: AppState,
    sid: String,
    account_sid: String,
    mut parts: axum::http::request::Parts,
) -> ApiResult<Response> {
    let live = state
        .events
        .channel(&account_sid, &sid)
        .ok_or_else(|| ApiError::not_found(&sid))?;
    let from_header = parts
        .headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let from_query = parts.uri.query().and_then(|query| {
        serde_urlencoded::from_str::<Vec<(String, String)>>(query)
            .ok()?
            .into_iter()
            .find(|(k, _)| k == "LastEventId")
            .map(|(_, v)| v)
    });
    let after = match from_header.or(from_query) {
        Some(text) if !text.trim().is_empty() => {
            Some(text.trim().parse::<i64>().map_err(|_| {
                ApiError::invalid(format!(
                    "Last-Event-ID must be the sequence number of an event, not {text:?}"
                ))
            })?)
        }
        _ => None,
    };
    let wants_websocket = parts
        .headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    let (tx, rx) = mpsc::channel(HANDOFF);
    let events = state.events.clone();
    tokio::spawn(feed(events.clone(), live, after, tx));
    if wants_websocket {
        let upgrade = WebSocketUpgrade::from_request_parts(&mut parts, &state)
            .await
            .map_err(|rejection| ApiError::invalid(rejection.body_text()))?;
        return Ok(upgrade.on_upgrade(move |socket| send_messages(socket, rx, events)));
    }
    let mut response = Body::from_stream(sse_frames(rx)).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(response)
}

/// Feeds one stream: the replay after `after`, then the live events, catching up from the log
/// whenever the hub outran it. Ends when the connection goes away or the host stops.
async fn feed(
    events: Events,
    live: Arc<LiveChannel>,
    after: Option<i64>,
    tx: mpsc::Sender<Arc<Outgoing>>,
) {
    let mut stopping = events.stopping();
    // Subscribe before replaying, so nothing committed meanwhile falls between the two.
    let mut hub = live.hub.subscribe();
    let mut last = 0;
    if let Some(after) = after {
        match replay(&events, &live, after, &tx).await {
            Some(sent) => last = sent,
            None => return,
        }
    }
    let mut last_sent_ms: Option<i64> = None;
    loop {
        let received = tokio::select! {
            received = hub.recv() => received,
            _ = stopping.changed() => return,
            _ = tx.closed() => return,
        };
        match received {
            Ok(outgoing) => {
                if outgoing.sequence <= last {
                    continue;
                }
                if !pace(&events, &live, &mut last_sent_ms).await {
                    return;
                }
                last = outgoing.sequence;
                if tx.send(outgoing).await.is_err() {
                    return;
                }
            }
            Err(broadcast::error::RecvError::Lagged(_)) => {
                metrics::counter!("switchboard_event_stream_catch_ups_total").increment(1);
                match replay(&events, &live, last, &tx).await {
                    Some(sent) => last = sent,
                    None => return,
                }
            }
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

/// Waits out the channel's MaxDeliveryRate; `false` when the host is stopping.
async fn pace(events: &Events, live: &LiveChannel, last_sent_ms: &mut Option<i64>) -> bool {
    let (config, _) = live.current();
    if let Some(rate) = config.max_delivery_rate.filter(|r| *r > 0) {
        if let Some(last) = *last_sent_ms {
            let wait = last + 1_000 / rate - events.now();
            if wait > 0 {
                let mut stopping = events.stopping();
                tokio::select! {
                    _ = events.inner.clock.sleep_ms(wait) => {}
                    _ = stopping.changed() => return false,
                }
            }
        }
        *last_sent_ms = Some(events.now());
    }
    true
}

/// Sends the channel's events after `after` from the log, within its retention; answers the last
/// sequence number sent (or passed over), `None` when the stream is gone.
async fn replay(
    events: &Events,
    live: &LiveChannel,
    mut after: i64,
    tx: &mpsc::Sender<Arc<Outgoing>>,
) -> Option<i64> {
    let mut last_sent_ms: Option<i64> = None;
    loop {
        let (config, selector) = live.current();
        let horizon = events.now() - config.retention_seconds.saturating_mul(1000);
        let page = match channel_events_after(
            events.db(),
            &config.account_sid,
            &config.sid,
            after,
            500,
        )
        .await
        {
            Ok(page) => page,
            Err(error) => {
                tracing::warn!(%error, channel = %config.sid, "stream replay could not read the log");
                return Some(after);
            }
        };
        if page.is_empty() {
            return Some(after);
        }
        for event in &page {
            after = event.sequence;
            if event.time_ms < horizon || !selector.matches(&event.candidate()) {
                continue;
            }
            if !pace(events, live, &mut last_sent_ms).await {
                return None;
            }
            tx.send(Arc::new(Outgoing::render(event))).await.ok()?;
        }
    }
}

/// The SSE body: a comment to open, then frames, several at a time when they queue up, and a
/// keep-alive comment when nothing happens.
fn sse_frames(
    rx: mpsc::Receiver<Arc<Outgoing>>,
) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> {
    let opening = futures::stream::once(async { Ok(Bytes::from_static(b": connected\n\n")) });
    let frames = futures::stream::unfold(rx, |mut rx| async move {
        let first = match tokio::time::timeout(KEEP_ALIVE, rx.recv()).await {
            Ok(Some(first)) => first,
            Ok(None) => return None,
            Err(_) => return Some((Ok(Bytes::from_static(b": keep-alive\n\n")), rx)),
        };
        let mut more = Vec::new();
        while more.len() < COALESCE {
            match rx.try_recv() {
                Ok(next) => more.push(next),
                Err(_) => break,
            }
        }
        if more.is_empty() {
            return Some((Ok(first.sse.clone()), rx));
        }
        let mut chunk = BytesMut::with_capacity(first.sse.len() * (more.len() + 1));
        chunk.extend_from_slice(&first.sse);
        for next in &more {
            chunk.extend_from_slice(&next.sse);
        }
        Some((Ok(chunk.freeze()), rx))
    });
    futures::StreamExt::chain(opening, frames)
}

/// The WebSocket form: one text message per event (its CloudEvent JSON).
async fn send_messages(
    mut socket: WebSocket,
    mut rx: mpsc::Receiver<Arc<Outgoing>>,
    events: Events,
) {
    let mut stopping = events.stopping();
    loop {
        tokio::select! {
            next = rx.recv() => {
                let Some(outgoing) = next else { break };
                let text = String::from_utf8_lossy(&outgoing.json).into_owned();
                if socket.send(Message::Text(text.into())).await.is_err() {
                    return;
                }
            }
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => {}
            },
            _ = stopping.changed() => break,
        }
    }
    let _ = socket.send(Message::Close(None)).await;
}
