//! Channels: a tenant's named selection of events (by type and by an expression over the data),
//! with the rules that govern delivery to its subscribers.

use serde_json::{Value, json};
use sqlx::Row;

use crate::routing::expression::{Document, Expression};
use crate::store::batch::Statement;
use crate::store::{Db, rfc3339};

/// A channel as stored.
#[derive(Debug, Clone)]
pub struct Channel {
    pub sid: String,
    pub account_sid: String,
    pub unique_name: Option<String>,
    pub friendly_name: String,
    /// Exact types and prefix globs (`task.*`); empty selects every type.
    pub event_types: Vec<String>,
    pub filter: Option<String>,
    pub retention_seconds: i64,
    /// Events per second per subscriber at most; `None` = as fast as they are taken.
    pub max_delivery_rate: Option<i64>,
    /// Whether tenants may publish custom events to it.
    pub allow_publish: bool,
    pub date_created: i64,
    pub date_updated: i64,
}

/// A channel's selection, compiled once per configuration so matching an event costs no parsing.
#[derive(Debug, Clone)]
pub struct Selector {
    channel_sid: String,
    types: Vec<TypePattern>,
    filter: Option<Expression>,
}

#[derive(Debug, Clone)]
enum TypePattern {
    Exact(String),
    /// `task.*` selects `task.created` and `task.canceled`, not `taskqueue.created`.
    Prefix(String),
    Any,
}

/// What a selector looks at in an event.
pub struct Candidate<'a> {
    pub event_type: &'a str,
    /// The channel a custom event was published to; domain events have none.
    pub channel_sid: Option<&'a str>,
    pub data: &'a Value,
}

impl TypePattern {
    fn parse(text: &str) -> Result<TypePattern, String> {
        let valid = |part: &str| {
            !part.is_empty()
                && part
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
        };
        if text == "*" {
            return Ok(TypePattern::Any);
        }
        if let Some(prefix) = text.strip_suffix('*') {
            if prefix.ends_with('.') && valid(prefix) {
                return Ok(TypePattern::Prefix(prefix.to_string()));
            }
        } else if valid(text) {
            return Ok(TypePattern::Exact(text.to_string()));
        }
        Err(format!(
            "EventTypes value {text:?} is not an event type (letters, digits, '.', '-', '_') or a prefix glob such as \"task.*\""
        ))
    }

    fn matches(&self, event_type: &str) -> bool {
        match self {
            TypePattern::Exact(exact) => exact == event_type,
            TypePattern::Prefix(prefix) => event_type.starts_with(prefix.as_str()),
            TypePattern::Any => true,
        }
    }
}

/// Checks a channel's event types and filter, as given over the API.
pub fn validate(event_types: &[String], filter: Option<&str>) -> Result<(), String> {
    for pattern in event_types {
        TypePattern::parse(pattern)?;
    }
    if let Some(filter) = filter {
        Expression::parse(filter).map_err(|error| format!("Filter is not valid: {error}"))?;
    }
    Ok(())
}

impl Selector {
    pub fn new(channel: &Channel) -> Result<Selector, String> {
        let types = channel
            .event_types
            .iter()
            .map(|t| TypePattern::parse(t))
            .collect::<Result<Vec<_>, _>>()?;
        let filter = channel
            .filter
            .as_deref()
            .map(Expression::parse)
            .transpose()
            .map_err(|error| format!("Filter is not valid: {error}"))?;
        Ok(Selector {
            channel_sid: channel.sid.clone(),
            types,
            filter,
        })
    }

    /// Whether the channel delivers this event: its own custom events or any domain event, of a
    /// selected type, whose data satisfies the filter.
    pub fn matches(&self, candidate: &Candidate<'_>) -> bool {
        if candidate
            .channel_sid
            .is_some_and(|sid| sid != self.channel_sid)
        {
            return false;
        }
        if !self.types.is_empty() && !self.types.iter().any(|t| t.matches(candidate.event_type)) {
            return false;
        }
        self.filter
            .as_ref()
            .is_none_or(|filter| filter.evaluate(&Document(candidate.data)))
    }
}

impl Channel {
    /// The wire form: snake_case fields plus the links to its sub-resources.
    pub fn to_json(&self, base: &str) -> Value {
        let url = format!("{base}/v1/Channels/{}", self.sid);
        json!({
            "sid": self.sid,
            "account_sid": self.account_sid,
            "unique_name": self.unique_name,
            "friendly_name": self.friendly_name,
            "event_types": self.event_types,
            "filter": self.filter,
            "retention_seconds": self.retention_seconds,
            "max_delivery_rate": self.max_delivery_rate,
            "allow_publish": self.allow_publish,
            "date_created": rfc3339(self.date_created),
            "date_updated": rfc3339(self.date_updated),
            "url": url,
            "links": {
                "subscribers": format!("{url}/Subscribers"),
                "events": format!("{url}/Events"),
                "stream": format!("{url}/Stream"),
            }
        })
    }

    pub fn upsert(&self) -> Statement {
        Statement::new(
            "INSERT INTO channels (sid, account_sid, unique_name, friendly_name, event_types, filter, retention_seconds, max_delivery_rate, allow_publish, date_created, date_updated)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
             ON CONFLICT (sid) DO UPDATE SET unique_name = excluded.unique_name, friendly_name = excluded.friendly_name,
               event_types = excluded.event_types, filter = excluded.filter, retention_seconds = excluded.retention_seconds,
               max_delivery_rate = excluded.max_delivery_rate, allow_publish = excluded.allow_publish, date_updated = excluded.date_updated",
            vec![
                self.sid.clone().into(),
                self.account_sid.clone().into(),
                self.unique_name.clone().into(),
                self.friendly_name.clone().into(),
                json!(self.event_types).to_string().into(),
                self.filter.clone().into(),
                self.retention_seconds.into(),
                self.max_delivery_rate.into(),
                i64::from(self.allow_publish).into(),
                self.date_created.into(),
                self.date_updated.into(),
            ],
        )
    }

    pub fn delete(&self) -> Vec<Statement> {
        vec![
            Statement::new(
                "DELETE FROM subscribers WHERE channel_sid = $1",
                vec![self.sid.clone().into()],
            ),
            Statement::new(
                "DELETE FROM events WHERE channel_sid = $1",
                vec![self.sid.clone().into()],
            ),
            Statement::new(
                "DELETE FROM channels WHERE sid = $1",
                vec![self.sid.clone().into()],
            ),
        ]
    }
}

/// Every channel of every account, for the router's memory at start.
pub async fn load_all(db: &Db) -> Result<Vec<Channel>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT sid, account_sid, unique_name, friendly_name, event_types, filter, retention_seconds, max_delivery_rate, allow_publish, date_created, date_updated
         FROM channels ORDER BY date_created, sid",
    )
    .fetch_all(db.pool())
    .await?;
    rows.iter()
        .map(|row| {
            let types: String = row.try_get("event_types")?;
            Ok(Channel {
                sid: row.try_get("sid")?,
                account_sid: row.try_get("account_sid")?,
                unique_name: row.try_get("unique_name")?,
                friendly_name: row.try_get("friendly_name")?,
                event_types: serde_json::from_str(&types).unwrap_or_default(),
                filter: row.try_get("filter")?,
                retention_seconds: row.try_get("retention_seconds")?,
                max_delivery_rate: row.try_get("max_delivery_rate")?,
                allow_publish: row.try_get::<i64, _>("allow_publish")? != 0,
                date_created: row.try_get("date_created")?,
                date_updated: row.try_get("date_updated")?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn channel(types: &[&str], filter: Option<&str>) -> Channel {
        Channel {
            sid: "EC1".into(),
            account_sid: "AC1".into(),
            unique_name: None,
            friendly_name: String::new(),
            event_types: types.iter().map(|t| t.to_string()).collect(),
            filter: filter.map(str::to_string),
            retention_seconds: 60,
            max_delivery_rate: None,
            allow_publish: false,
            date_created: 0,
            date_updated: 0,
        }
    }

    fn selects(selector: &Selector, event_type: &str, channel: Option<&str>, data: Value) -> bool {
        selector.matches(&Candidate {
            event_type,
            channel_sid: channel,
            data: &data,
        })
    }

    #[test]
    fn type_globs_select_by_whole_dotted_prefix() {
        let selector = Selector::new(&channel(&["task.*", "call.status-changed"], None)).unwrap();
        assert!(selects(&selector, "task.created", None, json!({})));
        assert!(selects(&selector, "call.status-changed", None, json!({})));
        assert!(!selects(&selector, "taskqueue.created", None, json!({})));
        assert!(!selects(&selector, "call.segment-started", None, json!({})));
    }

    #[test]
    fn no_types_select_everything_and_the_filter_reads_the_data() {
        let selector = Selector::new(&channel(&[], Some("priority > 5"))).unwrap();
        assert!(selects(&selector, "a.b", None, json!({"priority": 7})));
        assert!(!selects(&selector, "a.b", None, json!({"priority": 3})));
        assert!(!selects(&selector, "a.b", None, json!({})));
    }

    #[test]
    fn custom_events_stay_on_their_channel() {
        let selector = Selector::new(&channel(&[], None)).unwrap();
        assert!(selects(&selector, "alert", Some("EC1"), json!({})));
        assert!(!selects(&selector, "alert", Some("EC2"), json!({})));
    }

    #[test]
    fn bad_patterns_and_filters_are_refused_with_their_reason() {
        assert!(validate(&["task*".into()], None).is_err());
        assert!(validate(&["task created".into()], None).is_err());
        assert!(validate(&["task.*".into(), "*".into()], None).is_ok());
        let error = validate(&[], Some("priority >")).unwrap_err();
        assert!(error.starts_with("Filter is not valid"), "{error}");
    }
}
