//! What the API admits under load, before a request changes anything. Two limits guard the one
//! writer every host shares:
//!
//! - **the host's backlog**: while `database.max_waiting_changes` state changes wait for the
//!   database, tenants' new writes are turned away (503, Retry-After);
//! - **each account's share**: an account may have `accounts.max_concurrent_writes` requests
//!   that may write (module invocations among them) in progress on a host at once; one more is
//!   turned away (429). Most writes are answered once committed, so a tenant sending requests as
//!   fast as they are answered cannot fill the backlog alone. Work a request starts and leaves
//!   running (a call placed, a redirect) writes later and is not counted here.
//!
//! Reads (GET, HEAD, OPTIONS) go on under both, and so do the operator's requests
//! (`Authorization: Bearer`), so that an operator can suspend the account flooding the host.
//! Plain tower layers rather than `axum::middleware::from_fn`, which boxes every request's
//! service and future: this runs on every request of the host.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use axum::extract::Request;
use axum::response::{IntoResponse, Response};

use super::auth;
use super::error::{ApiError, Code};
use crate::store::batch::Writer;

/// Admits tenants' writes against the writer's backlog and each account's share.
#[derive(Clone)]
pub struct AdmissionLayer {
    writer: Writer,
    max_waiting_changes: usize,
    writes: Arc<AccountWrites>,
}

impl AdmissionLayer {
    pub fn new(writer: Writer, max_waiting_changes: usize, max_concurrent_writes: usize) -> Self {
        AdmissionLayer {
            writer,
            max_waiting_changes,
            writes: Arc::new(AccountWrites {
                limit: max_concurrent_writes,
                in_progress: Mutex::new(HashMap::new()),
            }),
        }
    }
}

impl<S> tower::Layer<S> for AdmissionLayer {
    type Service = Admission<S>;

    fn layer(&self, inner: S) -> Admission<S> {
        Admission {
            inner,
            layer: self.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Admission<S> {
    inner: S,
    layer: AdmissionLayer,
}

impl<S> tower::Service<Request> for Admission<S>
where
    S: tower::Service<Request, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future =
        futures::future::Either<Counted<S::Future>, std::future::Ready<Result<Response, S::Error>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request) -> Self::Future {
        if request.method().is_safe() || auth::bearer_token(request.headers()).is_some() {
            return futures::future::Either::Left(Counted {
                inner: self.inner.call(request),
                ticket: None,
            });
        }
        let backlog = self.layer.writer.backlog();
        let limit = self.layer.max_waiting_changes;
        if backlog >= limit {
            return futures::future::Either::Right(std::future::ready(Ok(writes_refused(
                backlog, limit,
            ))));
        }
        // The account is known once the request authenticates: the tenant extractor takes its
        // share through the ticket, which this layer holds until the answer is made.
        let ticket = WriteTicket(Arc::new(Held {
            writes: self.layer.writes.clone(),
            account_sid: Mutex::new(None),
        }));
        request.extensions_mut().insert(ticket.clone());
        futures::future::Either::Left(Counted {
            inner: self.inner.call(request),
            ticket: Some(ticket),
        })
    }
}

pin_project_lite::pin_project! {
    /// The inner service's answer, with the write's ticket kept until it is made.
    pub struct Counted<F> {
        #[pin]
        inner: F,
        ticket: Option<WriteTicket>,
    }
}

impl<F: Future> Future for Counted<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        self.project().inner.poll(cx)
    }
}

fn writes_refused(backlog: usize, limit: usize) -> Response {
    metrics::counter!("switchboard_writes_shed_total").increment(1);
    ApiError::new(
        Code::Unavailable,
        format!(
            "The database is behind: {backlog} changes wait to be saved (database.max_waiting_changes is {limit}). Nothing was changed; retry in a moment."
        ),
    )
    .into_response()
}

/// Writes in progress per account on this host.
struct AccountWrites {
    limit: usize,
    in_progress: Mutex<HashMap<String, usize>>,
}

impl AccountWrites {
    fn counts(&self) -> std::sync::MutexGuard<'_, HashMap<String, usize>> {
        self.in_progress
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A write request's place among its account's writes in progress, taken once the request has
/// authenticated ([`WriteTicket::admit`]) and given back when the answer is made.
#[derive(Clone)]
pub struct WriteTicket(Arc<Held>);

struct Held {
    writes: Arc<AccountWrites>,
    account_sid: Mutex<Option<String>>,
}

impl WriteTicket {
    /// Counts this write against `account_sid`'s share, or refuses it (429) when the account
    /// already has as many writes in progress as it may.
    pub fn admit(&self, account_sid: &str) -> Result<(), ApiError> {
        let mut held = self
            .0
            .account_sid
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if held.is_some() {
            return Ok(());
        }
        let limit = self.0.writes.limit;
        let mut counts = self.0.writes.counts();
        let in_progress = counts.get(account_sid).copied().unwrap_or(0);
        if in_progress >= limit {
            metrics::counter!("switchboard_account_writes_refused_total").increment(1);
            return Err(ApiError::new(
                Code::Busy,
                format!(
                    "Account {account_sid} already has {in_progress} writes in progress on this host (accounts.max_concurrent_writes is {limit}). Nothing was changed; wait for them to be answered, then retry."
                ),
            ));
        }
        counts.insert(account_sid.to_string(), in_progress + 1);
        *held = Some(account_sid.to_string());
        Ok(())
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let held = self
            .account_sid
            .get_mut()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        let Some(account_sid) = held else {
            return;
        };
        let mut counts = self.writes.counts();
        match counts.get_mut(&account_sid) {
            Some(count) if *count > 1 => *count -= 1,
            _ => {
                counts.remove(&account_sid);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ticket(writes: &Arc<AccountWrites>) -> WriteTicket {
        WriteTicket(Arc::new(Held {
            writes: writes.clone(),
            account_sid: Mutex::new(None),
        }))
    }

    #[test]
    fn an_account_has_its_own_share_and_gets_it_back_when_answered() {
        let writes = Arc::new(AccountWrites {
            limit: 2,
            in_progress: Mutex::new(HashMap::new()),
        });
        let first = ticket(&writes);
        let second = ticket(&writes);
        assert!(first.admit("AC1").is_ok());
        assert!(first.admit("AC1").is_ok(), "one request counts once");
        assert!(second.admit("AC1").is_ok());
        let refused = ticket(&writes);
        let error = refused.admit("AC1").expect_err("a third write");
        assert_eq!(error.code, Code::Busy);
        assert!(error.message.contains("max_concurrent_writes is 2"));
        assert!(ticket(&writes).admit("AC2").is_ok(), "another account");
        drop(refused);
        assert_eq!(
            writes.counts().get("AC1"),
            Some(&2),
            "a refusal holds nothing"
        );
        drop(first);
        assert!(ticket(&writes).admit("AC1").is_ok(), "a place came back");
        drop(second);
        assert!(writes.counts().get("AC1").is_none());
    }
}
