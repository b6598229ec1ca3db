//! The embedded store's outcome and audit rows with command and event type names as one-byte
//! tags (value layout [`TAGGED`], store format 9), and the reading of both their layouts.
//!
//! Every command writes an outcome row and an audit row, and the type names were most of
//! what those rows held besides ids: `record_payment` and its events took 13–16 bytes each
//! as text, in rows of about 80 bytes on disk. The outcomes of derived ids (`commands_keyed`)
//! have random keys, and compaction rewrites them several times as the store grows, so their
//! bytes are paid again and again. With tags the store flushes 9.5 % fewer bytes per command
//! (docs/performance-log.md, 2026-11-28, early morning).

use super::keys::{VALUE_VERSION, decode_body, split_version, unknown_version};
use super::{AuditEvent, CommandState, CommandStatus};
use crate::StoreError;
use serde::de::{Deserializer, EnumAccess, VariantAccess, Visitor};
use serde::ser::{SerializeSeq, Serializer};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;

/// The value layout of outcome and audit rows with tagged type names (format 9). Rows of
/// layout [`VALUE_VERSION`] (format 8 and before: names as text) are read as before.
pub(crate) const TAGGED: u8 = 2;

/// The names stored as tags: a name's position here is its tag, so this list is only ever
/// appended to. Tag 0 means the text follows: a name not listed (a type added to the
/// schemas later, or a name a test makes up) is stored as text and read back as it was.
const TAGS: [&str; 11] = [
    "",
    "create_invoice",
    "issue_invoice",
    "record_payment",
    "void_invoice",
    "invoice_created",
    "invoice_issued",
    "payment_applied",
    "invoice_paid",
    "invoice_voided",
    "command_rejected",
];

/// A command's or event's type name as stored: as a postcard enum, the tag of a listed name
/// is the variant's number (one byte), any other name is variant 0 and its text.
struct Name<'a>(&'a str);

impl Serialize for Name<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match TAGS[1..].iter().position(|n| *n == self.0) {
            Some(i) => s.serialize_unit_variant("Name", i as u32 + 1, TAGS[i + 1]),
            None => s.serialize_newtype_variant("Name", 0, "text", self.0),
        }
    }
}

/// A [`Name`] read back: a listed name borrowed from [`TAGS`], any other owned; or a tag
/// this build does not know, kept for [`ReadName::into_name`]'s error (postcard reports a
/// deserializer's own errors without their message).
struct ReadName(Result<Cow<'static, str>, u32>);

impl ReadName {
    fn into_name(self, table: &'static str) -> Result<Cow<'static, str>, StoreError> {
        self.0.map_err(|tag| StoreError::Corrupt { table, detail: format!("unknown type name tag {tag}") })
    }
}

impl<'de> Deserialize<'de> for ReadName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct NameVisitor;
        impl<'de> Visitor<'de> for NameVisitor {
            type Value = ReadName;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a type name's tag, or tag 0 and the name")
            }
            fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<ReadName, A::Error> {
                let (tag, rest): (u32, _) = data.variant()?;
                if tag == 0 {
                    return rest.newtype_variant::<String>().map(|s| ReadName(Ok(Cow::Owned(s))));
                }
                rest.unit_variant()?;
                Ok(ReadName(TAGS.get(tag as usize).map(|name| Cow::Borrowed(*name)).ok_or(tag)))
            }
        }
        d.deserialize_enum("Name", &TAGS, NameVisitor)
    }
}

/// An outcome row as written: [`CommandStatus`]'s fields in its order, the type as a [`Name`].
#[derive(Serialize)]
pub(crate) struct StatusOut<'a> {
    command_type: Name<'a>,
    invoice_id: &'a str,
    state: &'a CommandState,
    issued_at_ms: i64,
    partition: i32,
    offset: i64,
}

impl<'a> From<&'a CommandStatus> for StatusOut<'a> {
    fn from(s: &'a CommandStatus) -> Self {
        StatusOut {
            command_type: Name(&s.command_type),
            invoice_id: &s.invoice_id,
            state: &s.state,
            issued_at_ms: s.issued_at_ms,
            partition: s.partition,
            offset: s.offset,
        }
    }
}

/// [`StatusOut`] read back.
#[derive(Deserialize)]
struct StatusIn {
    command_type: ReadName,
    invoice_id: String,
    state: CommandState,
    issued_at_ms: i64,
    partition: i32,
    offset: i64,
}

/// An outcome row of either layout.
pub(crate) fn decode_status(table: &'static str, bytes: &[u8]) -> Result<CommandStatus, StoreError> {
    match split_version(table, bytes)? {
        (TAGGED, body) => {
            let s: StatusIn = decode_body(table, body)?;
            Ok(CommandStatus {
                command_type: s.command_type.into_name(table)?,
                invoice_id: s.invoice_id,
                state: s.state,
                issued_at_ms: s.issued_at_ms,
                partition: s.partition,
                offset: s.offset,
            })
        }
        (VALUE_VERSION, body) => decode_body(table, body),
        (v, _) => Err(unknown_version(table, v)),
    }
}

/// An audit row as written: what the key does not already say (the invoice and the events),
/// each event's kind as a [`Name`]. Serialized from the entry's own events, without a copy.
#[derive(Serialize)]
pub(crate) struct AuditOut<'a> {
    invoice_id: &'a str,
    events: EventsOut<'a>,
}

impl<'a> AuditOut<'a> {
    pub(crate) fn new(invoice_id: &'a str, events: &'a [AuditEvent]) -> Self {
        AuditOut { invoice_id, events: EventsOut(events) }
    }
}

struct EventsOut<'a>(&'a [AuditEvent]);

impl Serialize for EventsOut<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for e in self.0 {
            seq.serialize_element(&(Name(&e.kind), &e.detail))?;
        }
        seq.end()
    }
}

/// [`AuditOut`] read back.
#[derive(Deserialize)]
struct AuditIn {
    invoice_id: String,
    events: Vec<(ReadName, String)>,
}

/// An audit row of layout [`VALUE_VERSION`]: the events' kinds as text. Tests write it, as
/// format 8 did.
#[derive(Deserialize)]
#[cfg_attr(test, derive(Serialize))]
pub(crate) struct AuditText {
    pub(crate) invoice_id: String,
    pub(crate) events: Vec<AuditEvent>,
}

/// An audit row of either layout: its invoice and events.
pub(crate) fn decode_audit(table: &'static str, bytes: &[u8]) -> Result<(String, Vec<AuditEvent>), StoreError> {
    match split_version(table, bytes)? {
        (TAGGED, body) => {
            let row: AuditIn = decode_body(table, body)?;
            let events = row.events.into_iter().map(|(kind, detail)| Ok(AuditEvent { kind: kind.into_name(table)?, detail }));
            Ok((row.invoice_id, events.collect::<Result<_, StoreError>>()?))
        }
        (VALUE_VERSION, body) => {
            let row: AuditText = decode_body(table, body)?;
            Ok((row.invoice_id, row.events))
        }
        (v, _) => Err(unknown_version(table, v)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::keys::encode_into;

    fn status(command_type: &str, state: CommandState) -> CommandStatus {
        CommandStatus {
            command_type: Cow::Owned(command_type.into()),
            invoice_id: "r-1234567".into(),
            state,
            issued_at_ms: 1_780_000_000_000,
            partition: 7,
            offset: 123_456,
        }
    }

    fn rejected() -> CommandState {
        CommandState::Rejected { code: "overpayment".into(), message: "pays 3.00 EUR more than is due".into() }
    }

    fn events(kinds: &[&str]) -> Vec<AuditEvent> {
        kinds.iter().map(|k| AuditEvent { kind: Cow::Owned(k.to_string()), detail: format!("{k} detail") }).collect()
    }

    /// Every listed name, an unlisted one and the empty one round-trip, in outcomes and audit
    /// rows; a listed name takes one byte instead of its text.
    #[test]
    fn names_read_back_as_written_and_listed_ones_take_a_byte() {
        let names = TAGS.iter().copied().chain(["dun_invoice", "Record_Payment"]);
        for name in names {
            for state in [CommandState::Applied, rejected()] {
                let s = status(name, state);
                let mut tagged = Vec::new();
                encode_into("commands", TAGGED, &StatusOut::from(&s), &mut tagged).expect("encode");
                assert_eq!(decode_status("commands", &tagged).expect("decode"), s, "{name:?}");
                let mut text = Vec::new();
                encode_into("commands", VALUE_VERSION, &s, &mut text).expect("encode");
                let listed = TAGS[1..].contains(&name);
                // Text is a length byte and the name; a tag is one byte; unlisted adds tag 0.
                let expected = if listed { text.len() - name.len() } else { text.len() + 1 };
                assert_eq!(tagged.len(), expected, "{name:?}");
            }
            let evs = events(&[name, "invoice_paid", name]);
            let mut tagged = Vec::new();
            encode_into("audit_log", TAGGED, &AuditOut::new("r-1", &evs), &mut tagged).expect("encode");
            assert_eq!(decode_audit("audit_log", &tagged).expect("decode"), ("r-1".to_string(), evs), "{name:?}");
        }
    }

    /// Rows written by format 8 (names as text) read back unchanged.
    #[test]
    fn text_layout_rows_still_read() {
        let s = status("record_payment", rejected());
        let mut old = Vec::new();
        encode_into("commands", VALUE_VERSION, &s, &mut old).expect("encode");
        assert_eq!(decode_status("commands", &old).expect("decode"), s);
        let evs = events(&["payment_applied", "invoice_paid"]);
        let mut old = Vec::new();
        encode_into("audit_log", VALUE_VERSION, &AuditText { invoice_id: "r-2".into(), events: evs.clone() }, &mut old).expect("encode");
        assert_eq!(decode_audit("audit_log", &old).expect("decode"), ("r-2".to_string(), evs));
    }

    #[test]
    fn unknown_tags_and_versions_are_refused_with_the_table_named() {
        let s = status("issue_invoice", CommandState::Applied);
        let mut row = Vec::new();
        encode_into("commands", TAGGED, &StatusOut::from(&s), &mut row).expect("encode");
        assert_eq!(row[1], 2, "issue_invoice's tag");
        row[1] = TAGS.len() as u8;
        let e = decode_status("commands", &row).expect_err("unknown tag").to_string();
        assert!(e.contains("commands") && e.contains("unknown type name tag 11"), "{e}");
        row[0] = 3;
        let e = decode_status("commands", &row).expect_err("unknown version").to_string();
        assert!(e.contains("commands") && e.contains("unknown value version 3"), "{e}");
        let evs = events(&["invoice_paid"]);
        let mut row = Vec::new();
        encode_into("audit_log", TAGGED, &AuditOut::new("r", &evs), &mut row).expect("encode");
        assert_eq!(row[..5], [TAGGED, 1, b'r', 1, 8], "version, invoice, one event, invoice_paid's tag");
        row[4] = 99;
        let e = decode_audit("audit_log", &row).expect_err("unknown tag").to_string();
        assert!(e.contains("audit_log") && e.contains("unknown type name tag 99"), "{e}");
        let e = decode_audit("audit_log", &[]).expect_err("empty").to_string();
        assert!(e.contains("audit_log") && e.contains("empty value"), "{e}");
    }
}
