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
use axum::extract::ws::{Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRequestParts, Path, Request, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use bytes::{Bytes, BytesMut};
use tokio::sync::{broadcast, watch};

use super::{Events, LiveChannel, channel_events_after};
use crate::api::auth::Tenant;
use crate::api::error::{ApiError, ApiResult};
use crate::app::AppState;

/// Events taken for one write to a connection at most.
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

/// Events rendered once for every stream of a channel, in the order they go out: their SSE
/// frames joined in one buffer, so a stream that takes the whole run writes it as it is, and where
/// each event's frame and CloudEvent JSON lie in it.
#[derive(Debug, Default)]
pub struct Run {
    frames: Bytes,
    events: Vec<Rendered>,
}

/// Where one event of a [`Run`] lies in its buffer.
#[derive(Debug)]
struct Rendered {
    sequence: i64,
    /// Where its SSE frame starts; it ends where the next event's starts.
    frame: usize,
    /// Its CloudEvent JSON, the frame's `data:` line.
    json: std::ops::Range<usize>,
}

impl Run {
    pub fn len(&self) -> usize {
        self.events.len()
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    fn sequence(&self, index: usize) -> i64 {
        self.events[index].sequence
    }

    /// The index of the first event newer than `last`.
    fn after(&self, last: i64) -> usize {
        self.events.partition_point(|event| event.sequence <= last)
    }

    /// The SSE frames of events `from..to`, without copying.
    fn frames(&self, from: usize, to: usize) -> Bytes {
        let end = self
            .events
            .get(to)
            .map_or(self.frames.len(), |event| event.frame);
        self.frames.slice(self.events[from].frame..end)
    }

    /// The CloudEvent JSON of one event, without copying.
    fn json(&self, index: usize) -> Bytes {
        self.frames.slice(self.events[index].json.clone())
    }
}

/// A [`Run`] being put together, one event at a time.
#[derive(Default)]
pub struct RunBuilder {
    frames: BytesMut,
    events: Vec<Rendered>,
}

impl RunBuilder {
    /// Appends an event already rendered by [`render_frame`] (`frame`, with its JSON at `json`).
    pub fn push(&mut self, sequence: i64, frame: &[u8], json: std::ops::Range<usize>) {
        let start = self.frames.len();
        self.frames.extend_from_slice(frame);
        self.events.push(Rendered {
            sequence,
            frame: start,
            json: start + json.start..start + json.end,
        });
    }

    pub fn len(&self) -> usize {
        self.events.len()
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// The run so far; the builder starts afresh.
    pub fn finish(&mut self) -> Run {
        Run {
            frames: std::mem::take(&mut self.frames).freeze(),
            events: std::mem::take(&mut self.events),
        }
    }
}

/// Writes an event's SSE frame (`id:` its sequence, `event:` its type, `data:` its CloudEvent
/// JSON) into `frame`, and answers where the JSON lies in it.
pub fn render_frame(event: &super::Event, frame: &mut Vec<u8>) -> std::ops::Range<usize> {
    use std::io::Write;
    frame.clear();
    // Writing into a Vec cannot fail.
    let _ = write!(
        frame,
        "id: {}\nevent: {}\ndata: ",
        event.sequence, event.event_type
    );
    let start = frame.len();
    let _ = serde_json::to_writer(&mut *frame, &event.cloud_event());
    let json = start..frame.len();
    frame.extend_from_slice(b"\n\n");
    json
}

/// Events of one run that a stream sends together: `run`'s events `from..to`.
struct Piece {
    run: Arc<Run>,
    from: usize,
    to: usize,
}

impl Piece {
    fn len(&self) -> usize {
        self.to - self.from
    }

    fn newest(&self) -> i64 {
        self.run.sequence(self.to - 1)
    }

    /// The first `n` events, and the rest if any are left.
    fn split(self, n: usize) -> (Piece, Option<Piece>) {
        if n >= self.len() {
            return (self, None);
        }
        let middle = self.from + n;
        let rest = Piece {
            run: self.run.clone(),
            from: middle,
            to: self.to,
        };
        (Piece { to: middle, ..self }, Some(rest))
    }
}

/// One stream's position in its channel: where it is in the log and its receiver on the hub.
pub struct Follower {
    events: Events,
    live: Arc<LiveChannel>,
    hub: broadcast::Receiver<Arc<Run>>,
    stopping: watch::Receiver<bool>,
    /// The newest sequence number taken (sent, passed over, or held).
    last: i64,
    /// Events taken from the hub and not yet sent, sent before anything else: what is left of a
    /// run when the channel's MaxDeliveryRate lets out one event at a time.
    held: Option<Piece>,
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
            held: None,
            catching_up: after.is_some(),
            last_sent_ms: None,
        }
    }

    /// The next events to send, oldest first; an empty batch after [`KEEP_ALIVE`] of silence;
    /// `None` when the host stops.
    async fn next_batch(&mut self) -> Option<Vec<Piece>> {
        loop {
            let paced = self.live.current().0.max_delivery_rate.is_some();
            if let Some(held) = self.held.take() {
                let (now, rest) = held.split(if paced { 1 } else { usize::MAX });
                self.held = rest;
                return self.paced(vec![now]).await;
            }
            if self.catching_up {
                match self.read_log().await {
                    Some(Some(piece)) => return self.paced(vec![piece]).await,
                    Some(None) => self.catching_up = false,
                    None => return None,
                }
            }
            let received = tokio::select! {
                received = self.hub.recv() => received,
                _ = tokio::time::sleep(KEEP_ALIVE) => return Some(Vec::new()),
                _ = self.stopping.changed() => return None,
            };
            let first = match received {
                Ok(run) => Some(run),
                Err(broadcast::error::RecvError::Lagged(_)) => None,
                Err(broadcast::error::RecvError::Closed) => return None,
            };
            let limit = if paced { 1 } else { BATCH };
            let (mut batch, behind) = take_live(&mut self.hub, first, &mut self.last, limit);
            if behind {
                self.fell_behind();
            }
            if paced && let Some(piece) = batch.pop() {
                let (now, rest) = piece.split(1);
                self.held = rest;
                batch = vec![now];
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

    /// Up to a page of the channel's events after `last` from the log, within its retention (one
    /// event when paced); `last` moves past what was read. `Some(None)` when the log has nothing
    /// newer.
    async fn read_log(&mut self) -> Option<Option<Piece>> {
        let (config, selector) = self.live.current();
        let horizon = self.events.now() - config.retention_seconds.saturating_mul(1000);
        let paced = config.max_delivery_rate.is_some();
        let mut frame = Vec::new();
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
                    return Some(None);
                }
            };
            if page.is_empty() {
                return Some(None);
            }
            let mut run = RunBuilder::default();
            for event in &page {
                if event.time_ms >= horizon && selector.matches(&event.candidate()) {
                    let json = render_frame(event, &mut frame);
                    run.push(event.sequence, &frame, json);
                }
                self.last = event.sequence;
                if paced && !run.is_empty() {
                    break;
                }
            }
            if !run.is_empty() {
                let run = Arc::new(run.finish());
                let to = run.len();
                return Some(Some(Piece { run, from: 0, to }));
            }
        }
    }

    /// Waits out the channel's MaxDeliveryRate before handing over `batch` (one event when paced).
    async fn paced(&mut self, batch: Vec<Piece>) -> Option<Vec<Piece>> {
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

/// Takes runs from the hub after `first` (what the stream's wait received; `None` when that wait
/// found it had fallen behind) until at least `limit` events are taken: the events newer than
/// `last`, with `last` moved to the newest, and whether the stream fell behind. Falling behind
/// ends the batch: the events taken before it are contiguous and are sent, and the log is read
/// after them, so none is sent twice.
fn take_live(
    hub: &mut broadcast::Receiver<Arc<Run>>,
    first: Option<Arc<Run>>,
    last: &mut i64,
    limit: usize,
) -> (Vec<Piece>, bool) {
    let mut behind = first.is_none();
    let mut batch = Vec::new();
    let mut taken = 0;
    let mut next = first;
    loop {
        if let Some(run) = next.take() {
            let (from, to) = (run.after(*last), run.len());
            if from < to {
                let piece = Piece { run, from, to };
                *last = piece.newest();
                taken += piece.len();
                batch.push(piece);
            }
        }
        if behind || taken >= limit {
            break;
        }
        match hub.try_recv() {
            Ok(run) => next = Some(run),
            Err(broadcast::error::TryRecvError::Lagged(_)) => behind = true,
            Err(_) => break,
        }
    }
    (batch, behind)
}

/// The SSE body: a comment to open, then each batch's frames, and a keep-alive comment when
/// nothing happens. A batch's pieces go out as they are, slices of runs that every stream of the
/// channel shares: hyper writes them together with one vectored write, so nothing is copied per
/// stream.
fn sse_frames(follower: Follower) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> {
    use futures::StreamExt;
    let opening = futures::stream::once(async { Ok(Bytes::from_static(b": connected\n\n")) });
    let frames = futures::stream::unfold(follower, |mut follower| async move {
        let batch = follower.next_batch().await?;
        let chunks: Vec<Bytes> = if batch.is_empty() {
            vec![Bytes::from_static(b": keep-alive\n\n")]
        } else {
            batch
                .iter()
                .map(|piece| piece.run.frames(piece.from, piece.to))
                .collect()
        };
        Some((chunks, follower))
    })
    .flat_map(|chunks| futures::stream::iter(chunks.into_iter().map(Ok)));
    opening.chain(frames)
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
                for piece in batch {
                    for index in piece.from..piece.to {
                        // The JSON was written by serde_json, so it is UTF-8.
                        let Ok(text) = Utf8Bytes::try_from(piece.run.json(index)) else {
                            continue;
                        };
                        if sink.send(Message::Text(text)).await.is_err() {
                            return;
                        }
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

    /// A run of the given sequence numbers, each frame its number and a newline.
    fn run(sequences: std::ops::RangeInclusive<i64>) -> Arc<Run> {
        let mut builder = RunBuilder::default();
        for sequence in sequences {
            let frame = format!("{sequence}\n");
            let json = 0..frame.len() - 1;
            builder.push(sequence, frame.as_bytes(), json);
        }
        Arc::new(builder.finish())
    }

    fn sequences(batch: &[Piece]) -> Vec<i64> {
        batch
            .iter()
            .flat_map(|piece| (piece.from..piece.to).map(|i| piece.run.sequence(i)))
            .collect()
    }

    fn text(bytes: Bytes) -> String {
        String::from_utf8(bytes.to_vec()).expect("text")
    }

    #[test]
    fn a_run_gives_any_stretch_of_its_frames_and_each_events_json() {
        let run = run(8..=11);
        assert_eq!(text(run.frames(0, 4)), "8\n9\n10\n11\n");
        assert_eq!(text(run.frames(1, 3)), "9\n10\n");
        assert_eq!(text(run.frames(3, 4)), "11\n");
        assert_eq!(text(run.json(2)), "10");
        assert_eq!((run.after(7), run.after(9), run.after(11)), (0, 2, 4));
    }

    #[test]
    fn a_rendered_frame_is_an_sse_event_whose_data_is_its_cloud_event() {
        let event = super::super::Event {
            sid: "EV1".into(),
            sequence: 42,
            account_sid: "AC1".into(),
            event_type: "task.created".into(),
            source: "/v1/Workspaces/WS1".into(),
            subject: None,
            time: "2026-01-01T00:00:00Z".into(),
            data: serde_json::json!({"note": "two\nlines"}),
            channel_sid: None,
            time_ms: 0,
        };
        let mut frame = Vec::new();
        let json = render_frame(&event, &mut frame);
        let frame = String::from_utf8(frame).expect("text");
        assert!(frame.starts_with("id: 42\nevent: task.created\ndata: {"));
        assert!(frame.ends_with("}\n\n"));
        assert_eq!(frame.matches('\n').count(), 4, "the data is one line");
        let cloud: serde_json::Value = serde_json::from_str(&frame[json]).expect("JSON");
        assert_eq!(cloud["sequence"], "42");
        assert_eq!(cloud["data"]["note"], "two\nlines");
    }

    #[tokio::test]
    async fn a_stream_that_falls_behind_mid_batch_resumes_after_what_it_sent() {
        let (hub, mut receiver) = broadcast::channel(4);
        for sequence in 1..=2 {
            hub.send(run(sequence * 2 - 1..=sequence * 2))
                .expect("a receiver");
        }
        let first = receiver.recv().await.expect("the first run");
        for sequence in 3..=8 {
            hub.send(run(sequence * 2 - 1..=sequence * 2))
                .expect("a receiver");
        }
        let mut last = 0;
        let (batch, behind) = take_live(&mut receiver, Some(first), &mut last, BATCH);
        assert_eq!(sequences(&batch), vec![1, 2]);
        assert!(
            behind,
            "runs 2 to 4 were overwritten before they were taken"
        );
        assert_eq!(
            last, 2,
            "the log is read after the events sent, not before them"
        );
    }

    #[tokio::test]
    async fn events_already_sent_are_passed_over_and_a_batch_stops_at_its_limit() {
        let (hub, mut receiver) = broadcast::channel(16);
        hub.send(run(1..=3)).expect("a receiver");
        hub.send(run(4..=7)).expect("a receiver");
        hub.send(run(8..=9)).expect("a receiver");
        let mut last = 5;
        let first = receiver.recv().await.expect("a run");
        let (batch, behind) = take_live(&mut receiver, Some(first), &mut last, 1);
        assert_eq!(
            (sequences(&batch), behind, last),
            (vec![6, 7], false, 7),
            "the first run is passed over whole, the second from 6; the limit stops there"
        );
        let first = receiver.recv().await.expect("a run");
        let (batch, _) = take_live(&mut receiver, Some(first), &mut last, BATCH);
        assert_eq!((sequences(&batch), last), (vec![8, 9], 9));

        let (batch, behind) = take_live(&mut receiver, None, &mut last, BATCH);
        assert_eq!((batch.len(), behind, last), (0, true, 9));
    }

    #[test]
    fn a_piece_splits_into_its_first_events_and_the_rest() {
        let piece = Piece {
            run: run(1..=4),
            from: 1,
            to: 4,
        };
        let (first, rest) = piece.split(1);
        let rest = rest.expect("two events are left");
        assert_eq!(sequences(&[first]), vec![2]);
        assert_eq!(sequences(std::slice::from_ref(&rest)), vec![3, 4]);
        let (all, none) = rest.split(5);
        assert_eq!((sequences(&[all]), none.is_none()), (vec![3, 4], true));
    }
}
