//! Reading an [`Event`] from `{"kind": …, "data": …}` with the kind first, as the server writes it.
//!
//! serde's derived reader for an adjacently tagged enum also accepts the data before the kind, by buffering
//! the data in its generic `Content` form and reading the variant from that: every payload type (the whole
//! snapshot among them) is then compiled a second time, against that buffer, into the browser's WASM
//! (about 140 KB before wasm-opt). Events only ever come from Watchpost's own writer, which puts the kind
//! first, so this reader reads the kind, then the payload straight into its type, and refuses the other
//! order with a clear error.

use crate::{Event, EventKind};
use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
use std::fmt;

const FIELDS: &[&str] = &["kind", "data"];

#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "lowercase")]
enum Field {
    Kind,
    Data,
    /// A field a newer server may add: skipped, as the derived reader did, so an open tab keeps working.
    #[serde(other)]
    Other,
}

impl<'de> Deserialize<'de> for Event {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_struct("Event", FIELDS, EventVisitor)
    }
}

struct EventVisitor;

impl<'de> Visitor<'de> for EventVisitor {
    type Value = Event;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an event: {\"kind\": …, \"data\": …}, the kind first")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Event, A::Error> {
        // Fields other than the two are skipped wherever they stand.
        let next = |map: &mut A| -> Result<Option<Field>, A::Error> {
            while let Some(field) = map.next_key::<Field>()? {
                match field {
                    Field::Other => {
                        map.next_value::<IgnoredAny>()?;
                    }
                    known => return Ok(Some(known)),
                }
            }
            Ok(None)
        };
        match next(&mut map)? {
            Some(Field::Kind) => {}
            Some(_) => {
                return Err(de::Error::custom(
                    "an event's \"kind\" must come before its \"data\"",
                ));
            }
            None => return Err(de::Error::missing_field("kind")),
        }
        let kind: EventKind = map.next_value()?;
        match next(&mut map)? {
            Some(Field::Data) => {}
            Some(_) => return Err(de::Error::duplicate_field("kind")),
            None => return Err(de::Error::missing_field("data")),
        }
        let event = match kind {
            EventKind::Snapshot => Event::Snapshot(map.next_value()?),
            EventKind::Health => Event::Health(map.next_value()?),
            EventKind::Storage => Event::Storage(map.next_value()?),
            EventKind::Logs => Event::Logs(map.next_value()?),
            EventKind::Api => Event::Api(map.next_value()?),
            EventKind::Db => Event::Db(map.next_value()?),
            EventKind::Accounts => Event::Accounts(map.next_value()?),
            EventKind::Security => Event::Security(map.next_value()?),
            EventKind::Commands => Event::Commands(map.next_value()?),
            EventKind::Command => Event::Command(map.next_value()?),
            EventKind::CommandOutput => Event::CommandOutput(map.next_value()?),
            EventKind::Deployment => Event::Deployment(map.next_value()?),
            EventKind::AlertRules => Event::AlertRules(map.next_value()?),
            EventKind::Alert => Event::Alert(map.next_value()?),
            EventKind::Channels => Event::Channels(map.next_value()?),
            EventKind::Host => Event::Host(map.next_value()?),
            EventKind::Ping | EventKind::Closed | EventKind::Bus => {
                return Err(de::Error::custom(format_args!(
                    "\"{}\" is a stream message, not an event",
                    kind.as_str()
                )));
            }
        };
        match next(&mut map)? {
            Some(Field::Kind) => Err(de::Error::duplicate_field("kind")),
            Some(_) => Err(de::Error::duplicate_field("data")),
            None => Ok(event),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{LogEntry, StorageStatus};

    #[test]
    fn kinds_are_read_by_their_sse_event_names() {
        for kind in EventKind::ALL {
            let read: EventKind = serde_json::from_str(&format!("\"{}\"", kind.as_str())).unwrap();
            assert_eq!(read, kind);
        }
    }

    #[test]
    fn the_kind_comes_first_and_anything_else_is_a_clear_error() {
        let ok: Event = serde_json::from_str(r#"{"kind":"logs","data":[]}"#).unwrap();
        assert_eq!(ok, Event::Logs(Vec::<LogEntry>::new()));
        let storage: Event =
            serde_json::from_str(r#"{"kind":"storage","data":{"error":null,"since_ms":null}}"#)
                .unwrap();
        assert_eq!(storage, Event::Storage(StorageStatus::default()));
        // A field this reader does not know (from a newer server) is skipped wherever it stands.
        let newer: Event =
            serde_json::from_str(r#"{"v":2,"kind":"logs","x":{"a":[1]},"data":[],"y":null}"#)
                .unwrap();
        assert_eq!(newer, Event::Logs(Vec::new()));
        for (json, says) in [
            (r#"{"data":[],"kind":"logs"}"#, "must come before"),
            (r#"{"kind":"logs"}"#, "missing field `data`"),
            (r#"{}"#, "missing field `kind`"),
            (r#"{"kind":"nope","data":[]}"#, "unknown variant `nope`"),
            (
                r#"{"kind":"ping","data":[]}"#,
                "a stream message, not an event",
            ),
            (
                r#"{"kind":"logs","data":[],"data":[]}"#,
                "duplicate field `data`",
            ),
            (r#"{"kind":"logs","extra":1}"#, "missing field `data`"),
        ] {
            let e = serde_json::from_str::<Event>(json).unwrap_err().to_string();
            assert!(e.contains(says), "{json}: {e}");
        }
    }
}
