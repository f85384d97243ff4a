//! Delivery to one durable subscriber: in sequence order, at least once, with retries.
//!
//! The subscriber's task reads the log after its cursor, passes over what its channel does not
//! select, and delivers the rest one at a time: the next event waits until the previous one
//! succeeded, so order holds through failures. A failure waits out the retry schedule on the
//! host's clock and tries the same event again; a 410, or the configured run of failures, disables
//! the subscriber. The cursor is saved after each success, so a restart resumes after the last
//! event known delivered (and may repeat the one in flight: at least once, never skipped).

use std::net::IpAddr;
use std::sync::Arc;

use serde_json::json;
use tokio::sync::Notify;

use super::subscribers::{Status, Subscriber, Target, signature};
use super::{Event, Events, LiveChannel, NewEvent, channel_events_after};
use crate::modules::ModuleUri;
use crate::net::is_public;
use crate::runtime::bindings::types;

/// Events read per query while catching up.
const PAGE: i64 = 200;

/// Why an attempt failed.
pub struct Failed {
    pub message: String,
    /// The target asked never to be called again (HTTP 410 Gone).
    pub gone: bool,
}

impl Failed {
    fn new(message: impl Into<String>) -> Failed {
        Failed {
            message: message.into(),
            gone: false,
        }
    }
}

pub async fn run(
    events: Events,
    channel: Arc<LiveChannel>,
    mut subscriber: Subscriber,
    wake: Arc<Notify>,
) {
    let mut stopping = events.stopping();
    let mut last_delivery_ms: Option<i64> = None;
    loop {
        let page = match channel_events_after(
            events.db(),
            &subscriber.account_sid,
            &subscriber.channel_sid,
            subscriber.cursor,
            PAGE,
        )
        .await
        {
            Ok(page) => page,
            Err(error) => {
                tracing::warn!(%error, subscriber = %subscriber.sid, "could not read the event log");
                Vec::new()
            }
        };
        if page.is_empty() {
            tokio::select! {
                _ = wake.notified() => {}
                // A safety net for wake-ups lost to an error above.
                _ = tokio::time::sleep(std::time::Duration::from_secs(5)) => {}
                _ = stopping.changed() => return,
            }
            continue;
        }
        let mut passed_over = false;
        for event in &page {
            let (config, selector) = channel.current();
            if !selector.matches(&event.candidate()) {
                subscriber.cursor = event.sequence;
                passed_over = true;
                continue;
            }
            if let Some(rate) = config.max_delivery_rate.filter(|r| *r > 0) {
                let interval = 1_000 / rate;
                if let Some(last) = last_delivery_ms {
                    let wait = last + interval - events.now();
                    if wait > 0 {
                        tokio::select! {
                            _ = events.inner.clock.sleep_ms(wait) => {}
                            _ = stopping.changed() => return,
                        }
                    }
                }
            }
            loop {
                let outcome = events.deliver(&subscriber, event).await;
                let now = events.now();
                last_delivery_ms = Some(now);
                subscriber.date_updated = now;
                match outcome {
                    Ok(()) => {
                        subscriber.cursor = event.sequence;
                        subscriber.last_success = Some(now);
                        subscriber.consecutive_failures = 0;
                        subscriber.delivered_count += 1;
                        passed_over = false;
                        metrics::counter!("switchboard_event_deliveries_total", "outcome" => "ok")
                            .increment(1);
                        events.inner.writer.submit(vec![subscriber.upsert()]);
                        break;
                    }
                    Err(failed) => {
                        metrics::counter!("switchboard_event_deliveries_total", "outcome" => "failed")
                            .increment(1);
                        subscriber.consecutive_failures += 1;
                        subscriber.last_error = Some(failed.message.clone());
                        subscriber.last_error_time = Some(now);
                        let limit = i64::from(events.settings().disable_after_failures.max(1));
                        let reason = if failed.gone {
                            Some("the target answered 410 Gone".to_string())
                        } else if subscriber.consecutive_failures >= limit {
                            Some(format!("{limit} deliveries in a row failed"))
                        } else {
                            None
                        };
                        if let Some(reason) = reason {
                            disable(&events, &mut subscriber, reason).await;
                            return;
                        }
                        events.inner.writer.submit(vec![subscriber.upsert()]);
                        let wait = events.retry_delay(subscriber.consecutive_failures);
                        tokio::select! {
                            _ = events.inner.clock.sleep_ms(wait) => {}
                            _ = stopping.changed() => return,
                        }
                    }
                }
            }
        }
        if passed_over {
            events.inner.writer.submit(vec![subscriber.upsert()]);
        }
    }
}

/// Stops delivering to a subscriber and announces it in the log.
async fn disable(events: &Events, subscriber: &mut Subscriber, reason: String) {
    tracing::info!(subscriber = %subscriber.sid, %reason, "event subscriber disabled");
    subscriber.status = Status::Disabled;
    subscriber.status_reason = Some(reason.clone());
    let announcement = NewEvent {
        account_sid: &subscriber.account_sid,
        event_type: "subscriber.disabled",
        source: format!("/v1/Channels/{}", subscriber.channel_sid),
        subject: Some(&subscriber.sid),
        time_ms: events.now(),
        data: json!({
            "subscriber_sid": subscriber.sid,
            "channel_sid": subscriber.channel_sid,
            "reason": reason,
            "last_error": subscriber.last_error,
            "cursor": subscriber.cursor,
        }),
    }
    .statement();
    let committed = events
        .inner
        .writer
        .submit(vec![subscriber.upsert(), announcement]);
    if let Err(error) = committed.wait().await {
        tracing::warn!(%error, subscriber = %subscriber.sid, "disabled state not saved");
    }
}

impl Events {
    /// How long to wait before retry number `failures` (1 = the first retry).
    fn retry_delay(&self, failures: i64) -> i64 {
        let schedule = &self.settings().retry_schedule_ms;
        let index = usize::try_from(failures.saturating_sub(1)).unwrap_or(0);
        let base = schedule
            .get(index)
            .or(schedule.last())
            .copied()
            .unwrap_or(5_000);
        let base = i64::try_from(base).unwrap_or(i64::MAX);
        // Up to a tenth more, so subscribers that failed together do not retry in lockstep.
        base.saturating_add(rand::random_range(0..=base / 10))
    }

    async fn deliver(&self, subscriber: &Subscriber, event: &Event) -> Result<(), Failed> {
        match &subscriber.target {
            Target::Webhook { url, secret } => self.deliver_webhook(url, secret, event).await,
            Target::Module { uri } => {
                self.deliver_to_module(&subscriber.account_sid, uri, event)
                    .await
            }
        }
    }

    /// One signed POST of the event in CloudEvents structured mode.
    /// The target was checked when the subscriber was made; a name that now resolves to an
    /// internal address is refused by the client's resolver when it connects.
    async fn deliver_webhook(&self, url: &str, secret: &str, event: &Event) -> Result<(), Failed> {
        let body = event.cloud_event().to_string();
        let timestamp = self.now() / 1000;
        let response = self
            .inner
            .http
            .post(url)
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/cloudevents+json; charset=utf-8",
            )
            .header("webhook-id", &event.sid)
            .header("webhook-timestamp", timestamp.to_string())
            .header(
                "webhook-signature",
                signature(secret, &event.sid, timestamp, body.as_bytes()),
            )
            .body(body)
            .send()
            .await
            .map_err(|error| {
                Failed::new(if error.is_timeout() {
                    format!(
                        "the webhook did not answer within {} ms",
                        self.settings().webhook_timeout_ms
                    )
                } else {
                    format!("the webhook could not be reached: {error}")
                })
            })?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        Err(Failed {
            message: format!("the webhook answered {status}"),
            gone: status == reqwest::StatusCode::GONE,
        })
    }

    async fn deliver_to_module(
        &self,
        account_sid: &str,
        uri: &str,
        event: &Event,
    ) -> Result<(), Failed> {
        let modules = self
            .inner
            .modules
            .get()
            .ok_or_else(|| Failed::new("modules are not available on this host"))?;
        let parsed = match ModuleUri::parse(uri) {
            Some(Ok(parsed)) => parsed,
            _ => return Err(Failed::new(format!("{uri:?} is not a module URI"))),
        };
        let account = modules
            .accounts
            .get(account_sid)
            .await
            .map_err(|e| Failed::new(e.to_string()))?
            .ok_or_else(|| Failed::new("the account is gone"))?;
        let module = modules
            .registry
            .resolve(account_sid, &parsed)
            .await
            .map_err(|e| Failed::new(e.to_string()))?
            .ok_or_else(|| Failed::new(format!("no module {uri} in this account")))?;
        let target = modules
            .registry
            .target(&account, &module)
            .await
            .map_err(|e| Failed::new(e.message))?;
        let wit = types::Event {
            id: event.sid.clone(),
            sequence: u64::try_from(event.sequence).unwrap_or(0),
            account_sid: account_sid.to_string(),
            type_: event.event_type.clone(),
            source: event.source.clone(),
            time: event.time.clone(),
            data: event.data.to_string(),
        };
        modules
            .runtime
            .on_event(&target, &wit)
            .await
            .result
            .map_err(|failure| {
                Failed::new(format!("{}: {}", failure.outcome.as_str(), failure.message))
            })
    }
}

/// Refuses webhook targets that are not http(s), and (unless the operator allows them) targets
/// that resolve to loopback, private, link-local or otherwise internal addresses.
pub async fn check_target(url: &str, allow_private: bool) -> Result<(), String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("{url:?} is not a URL: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(format!("{url:?} must be an http or https URL"));
    }
    let host = parsed
        .host_str()
        .ok_or_else(|| format!("{url:?} names no host"))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    if allow_private {
        return Ok(());
    }
    let port = parsed.port_or_known_default().unwrap_or(80);
    let addresses: Vec<IpAddr> = match host.parse::<IpAddr>() {
        Ok(ip) => vec![ip],
        Err(_) => tokio::net::lookup_host((host.as_str(), port))
            .await
            .map_err(|e| format!("the host of {url:?} could not be resolved: {e}"))?
            .map(|a| a.ip())
            .collect(),
    };
    match addresses.iter().find(|ip| !is_public(**ip)) {
        Some(ip) => Err(format!(
            "{url:?} resolves to the internal address {ip}; webhooks may only target public addresses (the operator can allow private ones with events.allow_private_targets)"
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn internal_targets_are_refused_unless_allowed() {
        for url in [
            "http://127.0.0.1:9/hook",
            "http://10.1.2.3/hook",
            "http://192.168.0.1/hook",
            "http://169.254.169.254/latest/meta-data",
            "http://[::1]/hook",
            "http://[fd00::1]/hook",
            "http://localhost/hook",
        ] {
            let refused = check_target(url, false).await.unwrap_err();
            assert!(refused.contains("internal address"), "{url}: {refused}");
            assert!(check_target(url, true).await.is_ok(), "{url}");
        }
        assert!(
            check_target("http://93.184.215.14/hook", false)
                .await
                .is_ok()
        );
        assert!(check_target("ftp://93.184.215.14/x", true).await.is_err());
    }
}
