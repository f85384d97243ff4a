//! Live stream subscribers: `GET /v1/Channels/{Sid}/Stream` as Server-Sent Events, or as a
//! WebSocket when the request asks to upgrade.
//!
//! A stream starts live, or after the sequence number in `Last-Event-ID` (or `LastEventId=`),
//! replaying the missed events from the log within the channel's retention. It then takes events
//! from the channel's in-memory hub. The connection pulls: each time it can write, it takes every
//! event waiting for it, so a busy channel costs one wake-up and one write per batch, and no task
//! or buffer of its own. A stream that stops reading is simply not polled: the hub never waits for
//! it, and when it reads again it finds it fell behind and catches up from the log, so it still
//! receives every event once, in order.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRequestParts, Path, Request, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use bytes::{Bytes, BytesMut};
use tokio::sync::{broadcast, watch};

use super::{Events, LiveChannel, Outgoing, channel_events_after};
use crate::api::auth::Tenant;
use crate::api::error::{ApiError, ApiResult};
use crate::app::AppState;

/// Events written to a connection in one piece at most.
const BATCH: usize = 256;
/// A comment line this often keeps idle connections (and the proxies between) open.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

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
    let follower = Follower::new(state.events.clone(), live, after);
    if wants_websocket {
        let upgrade = WebSocketUpgrade::from_request_parts(&mut parts, &state)
            .await
            .map_err(|rejection| ApiError::invalid(rejection.body_text()))?;
        return Ok(upgrade.on_upgrade(move |socket| send_messages(socket, follower)));
    }
    let mut response = Body::from_stream(sse_frames(follower)).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(response)
}

/// One stream's position in its channel: where it is in the log and its receiver on the hub.
pub struct Follower {
    events: Events,
    live: Arc<LiveChannel>,
    hub: broadcast::Receiver<Arc<Outgoing>>,
    stopping: watch::Receiver<bool>,
    /// The last sequence number sent (or passed over).
    last: i64,
    /// Read the log after `last` before taking from the hub again.
    catching_up: bool,
    last_sent_ms: Option<i64>,
}

impl Follower {
    fn new(events: Events, live: Arc<LiveChannel>, after: Option<i64>) -> Follower {
        // Subscribed before any replay, so nothing committed meanwhile falls between the two.
        let hub = live.hub.subscribe();
        Follower {
            stopping: events.stopping(),
            events,
            live,
            hub,
            last: after.unwrap_or(0),
            catching_up: after.is_some(),
            last_sent_ms: None,
        }
    }

    /// The next events to send, oldest first; an empty batch after [`KEEP_ALIVE`] of silence;
    /// `None` when the host stops.
    async fn next_batch(&mut self) -> Option<Vec<Arc<Outgoing>>> {
        loop {
            if self.catching_up {
                match self.read_log().await {
                    Some(batch) if !batch.is_empty() => return self.paced(batch).await,
                    Some(_) => self.catching_up = false,
                    None => return None,
                }
            }
            let received = tokio::select! {
                received = self.hub.recv() => received,
                _ = tokio::time::sleep(KEEP_ALIVE) => return Some(Vec::new()),
                _ = self.stopping.changed() => return None,
            };
            let first = match received {
                Ok(outgoing) => Some(outgoing),
                Err(broadcast::error::RecvError::Lagged(_)) => None,
                Err(broadcast::error::RecvError::Closed) => return None,
            };
            let limit = if self.live.current().0.max_delivery_rate.is_some() {
                1
            } else {
                BATCH
            };
            let (batch, behind) = take_live(&mut self.hub, first, &mut self.last, limit);
            if behind {
                self.fell_behind();
            }
            if !batch.is_empty() {
                return self.paced(batch).await;
            }
        }
    }

    /// The hub dropped events this stream had not taken: read them from the log instead.
    fn fell_behind(&mut self) {
        metrics::counter!("switchboard_event_stream_catch_ups_total").increment(1);
        self.catching_up = true;
    }

    /// Up to a page of the channel's events after `last` from the log, within its retention;
    /// `last` moves past what was read. Empty when the log has nothing newer.
    async fn read_log(&mut self) -> Option<Vec<Arc<Outgoing>>> {
        let (config, selector) = self.live.current();
        let horizon = self.events.now() - config.retention_seconds.saturating_mul(1000);
        let paced = config.max_delivery_rate.is_some();
        loop {
            let page = match channel_events_after(
                self.events.db(),
                &config.account_sid,
                &config.sid,
                self.last,
                BATCH as i64,
            )
            .await
            {
                Ok(page) => page,
                Err(error) => {
                    tracing::warn!(%error, channel = %config.sid, "a stream could not read the log");
                    return Some(Vec::new());
                }
            };
            if page.is_empty() {
                return Some(Vec::new());
            }
            let mut batch = Vec::new();
            for event in &page {
                if event.time_ms >= horizon && selector.matches(&event.candidate()) {
                    batch.push(Arc::new(Outgoing::render(event)));
                }
                self.last = event.sequence;
                if paced && !batch.is_empty() {
                    break;
                }
            }
            if !batch.is_empty() {
                return Some(batch);
            }
        }
    }

    /// Waits out the channel's MaxDeliveryRate before handing over `batch` (one event when paced).
    async fn paced(&mut self, batch: Vec<Arc<Outgoing>>) -> Option<Vec<Arc<Outgoing>>> {
        let (config, _) = self.live.current();
        if let Some(rate) = config.max_delivery_rate.filter(|r| *r > 0) {
            if let Some(last) = self.last_sent_ms {
                let wait = last + 1_000 / rate - self.events.now();
                if wait > 0 {
                    tokio::select! {
                        _ = self.events.inner.clock.sleep_ms(wait) => {}
                        _ = self.stopping.changed() => return None,
                    }
                }
            }
            self.last_sent_ms = Some(self.events.now());
        }
        Some(batch)
    }
}

/// Takes up to `limit` events from the hub after `first` (what the stream's wait received; `None`
/// when that wait found it had fallen behind): the events newer than `last`, with `last` moved to
/// the newest, and whether the stream fell behind. Falling behind ends the batch: the events taken
/// before it are contiguous and are sent, and the log is read after them, so none is sent twice.
fn take_live(
    hub: &mut broadcast::Receiver<Arc<Outgoing>>,
    first: Option<Arc<Outgoing>>,
    last: &mut i64,
    limit: usize,
) -> (Vec<Arc<Outgoing>>, bool) {
    let mut behind = first.is_none();
    let mut batch: Vec<Arc<Outgoing>> = first.into_iter().collect();
    while !behind && batch.len() < limit {
        match hub.try_recv() {
            Ok(outgoing) => batch.push(outgoing),
            Err(broadcast::error::TryRecvError::Lagged(_)) => behind = true,
            Err(_) => break,
        }
    }
    let after = *last;
    batch.retain(|outgoing| outgoing.sequence > after);
    if let Some(newest) = batch.last() {
        *last = newest.sequence;
    }
    (batch, behind)
}

/// The SSE body: a comment to open, then each batch of frames as one piece, and a keep-alive
/// comment when nothing happens.
fn sse_frames(follower: Follower) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> {
    let opening = futures::stream::once(async { Ok(Bytes::from_static(b": connected\n\n")) });
    let frames = futures::stream::unfold(follower, |mut follower| async move {
        let batch = follower.next_batch().await?;
        let chunk = match batch.as_slice() {
            [] => Bytes::from_static(b": keep-alive\n\n"),
            [single] => single.sse.clone(),
            _ => {
                let size = batch.iter().map(|o| o.sse.len()).sum();
                let mut chunk = BytesMut::with_capacity(size);
                for outgoing in &batch {
                    chunk.extend_from_slice(&outgoing.sse);
                }
                chunk.freeze()
            }
        };
        Some((Ok(chunk), follower))
    });
    futures::StreamExt::chain(opening, frames)
}

/// The WebSocket form: one text message per event (its CloudEvent JSON). What the client sends
/// is read apart and only watched for the close, so it never interrupts taking a batch.
async fn send_messages(socket: WebSocket, mut follower: Follower) {
    use futures::{SinkExt, StreamExt};
    let (mut sink, mut incoming) = socket.split();
    let closed = async move {
        while let Some(Ok(message)) = incoming.next().await {
            if matches!(message, Message::Close(_)) {
                break;
            }
        }
    };
    tokio::pin!(closed);
    loop {
        tokio::select! {
            next = follower.next_batch() => {
                let Some(batch) = next else { break };
                for outgoing in batch {
                    let text = String::from_utf8_lossy(&outgoing.json).into_owned();
                    if sink.send(Message::Text(text.into())).await.is_err() {
                        return;
                    }
                }
            }
            _ = &mut closed => return,
        }
    }
    let _ = sink.send(Message::Close(None)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outgoing(sequence: i64) -> Arc<Outgoing> {
        Arc::new(Outgoing {
            sequence,
            time_ms: 0,
            sse: Bytes::new(),
            json: Bytes::new(),
        })
    }

    fn sequences(batch: &[Arc<Outgoing>]) -> Vec<i64> {
        batch.iter().map(|o| o.sequence).collect()
    }

    #[tokio::test]
    async fn a_stream_that_falls_behind_mid_batch_resumes_after_what_it_sent() {
        let (hub, mut receiver) = broadcast::channel(4);
        for sequence in 1..=2 {
            hub.send(outgoing(sequence)).expect("a receiver");
        }
        let first = receiver.recv().await.expect("the first event");
        for sequence in 3..=8 {
            hub.send(outgoing(sequence)).expect("a receiver");
        }
        let mut last = 0;
        let (batch, behind) = take_live(&mut receiver, Some(first), &mut last, BATCH);
        assert_eq!(sequences(&batch), vec![1]);
        assert!(
            behind,
            "events 2 to 4 were overwritten before they were taken"
        );
        assert_eq!(
            last, 1,
            "the log is read after the event sent, not before it"
        );
    }

    #[tokio::test]
    async fn events_already_sent_are_passed_over_and_a_paced_stream_takes_one() {
        let (hub, mut receiver) = broadcast::channel(16);
        for sequence in 3..=7 {
            hub.send(outgoing(sequence)).expect("a receiver");
        }
        let mut last = 4;
        let first = receiver.recv().await.expect("an event");
        let (batch, behind) = take_live(&mut receiver, Some(first), &mut last, BATCH);
        assert_eq!((sequences(&batch), behind, last), (vec![5, 6, 7], false, 7));

        for sequence in 8..=9 {
            hub.send(outgoing(sequence)).expect("a receiver");
        }
        let first = receiver.recv().await.expect("an event");
        let (batch, _) = take_live(&mut receiver, Some(first), &mut last, 1);
        assert_eq!((sequences(&batch), last), (vec![8], 8));

        let (batch, behind) = take_live(&mut receiver, None, &mut last, BATCH);
        assert_eq!((batch.len(), behind, last), (0, true, 8));
    }
}
