//! The data of a routing event, written as JSON text while it is built.
//!
//! A task create appends five events (task.created, workflow.entered, task-queue.entered,
//! workflow.target-matched, reservation.created), each carrying the task's fields and a
//! reservation's the worker's as well, all while the workspace's lock is held. Built as a
//! `serde_json::Map`, each field cost a key and a value allocation and a tree insert, then a
//! serialization pass over the whole map: the largest share of the time a task create holds the
//! lock. Written straight into one buffer, the same fields cost a copy each.

/// A JSON object under construction. Keys are written in the order they are added; each key is
/// added once (the event's fields are distinct by construction).
#[derive(Debug, Clone)]
pub struct EventData {
    json: Vec<u8>,
}

impl Default for EventData {
    fn default() -> Self {
        let mut json = Vec::with_capacity(768);
        json.push(b'{');
        EventData { json }
    }
}

impl EventData {
    fn key(&mut self, key: &str) {
        if self.json.len() > 1 {
            self.json.push(b',');
        }
        write_string(&mut self.json, key);
        self.json.push(b':');
    }

    /// Adds a string field.
    pub fn text(&mut self, key: &str, value: &str) -> &mut Self {
        self.key(key);
        write_string(&mut self.json, value);
        self
    }

    /// Adds a number field.
    pub fn number(&mut self, key: &str, value: i64) -> &mut Self {
        self.key(key);
        // Serializing a number into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut self.json, &value);
        self
    }

    /// The finished object as JSON text.
    pub fn into_json(mut self) -> String {
        self.json.push(b'}');
        // serde_json writes UTF-8, and every other byte written here is ASCII.
        String::from_utf8(self.json)
            .unwrap_or_else(|error| String::from_utf8_lossy(error.as_bytes()).into_owned())
    }
}

fn write_string(json: &mut Vec<u8>, text: &str) {
    // Serializing a `str` into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *json, text);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    #[test]
    fn fields_are_written_as_one_json_object_in_the_order_added() {
        let mut data = EventData::default();
        data.text("task_sid", "WT1")
            .number("task_age", -3)
            .text("task_attributes", "{\"quote\":\"\\\"\"}\n\u{1}é");
        let text = data.into_json();
        assert!(text.starts_with("{\"task_sid\":\"WT1\",\"task_age\":-3,"));
        let parsed: Value = serde_json::from_str(&text).expect("valid JSON");
        assert_eq!(
            parsed,
            json!({
                "task_sid": "WT1",
                "task_age": -3,
                "task_attributes": "{\"quote\":\"\\\"\"}\n\u{1}é",
            })
        );
    }

    #[test]
    fn an_object_without_fields_is_empty() {
        assert_eq!(EventData::default().into_json(), "{}");
    }
}
