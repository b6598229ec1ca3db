//! Which schema id means which schema.
//!
//! Every schema version ever published lives in `schemas/avro/` and is compiled in. Without
//! a registry the catalog hands out fixed ids (the embedded catalog: the table
//! [`PUBLISHED`]); with a Confluent-compatible registry configured, it registers this
//! release's schemas under the topic-name subjects and learns unknown writer ids from the
//! registry (through `schema_registry_converter`), so producers using other clients and
//! other schema versions are understood.

use crate::binary;
use crate::codec::{self, frame_header, unframe};
use crate::{CommandEnvelope, CommandHead, CommandPayload, Event, EventEnvelope, EventHead, SchemaError};
use apache_avro::Schema;
use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::types::Value;
use schema_registry_converter::async_impl::schema_registry::{SrSettings, get_schema_by_id, post_schema};
use schema_registry_converter::schema_registry_common::{SchemaType, SuppliedSchema};
use std::collections::HashMap;
use std::sync::{Arc, LazyLock, RwLock};

/// Which envelope a schema describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Envelope {
    /// `billing.commands` values.
    Command,
    /// `billing.events` values.
    Event,
}

impl Envelope {
    /// The registry subject (TopicNameStrategy).
    pub fn subject(self) -> &'static str {
        match self {
            Envelope::Command => "billing.commands-value",
            Envelope::Event => "billing.events-value",
        }
    }

    fn full_name(self) -> &'static str {
        match self {
            Envelope::Command => "io.billstream.commands.CommandEnvelope",
            Envelope::Event => "io.billstream.events.EventEnvelope",
        }
    }
}

/// One published schema version.
#[derive(Debug)]
pub struct Published {
    /// Which envelope.
    pub envelope: Envelope,
    /// Version within its subject, from 1.
    pub version: u32,
    /// The id the embedded catalog gives it.
    pub embedded_id: u32,
    /// File name under `schemas/avro/`.
    pub file: &'static str,
    /// The schema text.
    pub source: &'static str,
}

/// Every published version, oldest first. A new version is a new file and a new row here;
/// an old row is never edited. The last row of each envelope is what this release writes.
pub const PUBLISHED: &[Published] = &[
    Published {
        envelope: Envelope::Command,
        version: 1,
        embedded_id: 1,
        file: "billing.commands-value.v1.avsc",
        source: include_str!("../avro/billing.commands-value.v1.avsc"),
    },
    Published {
        envelope: Envelope::Event,
        version: 1,
        embedded_id: 2,
        file: "billing.events-value.v1.avsc",
        source: include_str!("../avro/billing.events-value.v1.avsc"),
    },
];

fn current(envelope: Envelope) -> &'static Published {
    PUBLISHED
        .iter()
        .rev()
        .find(|p| p.envelope == envelope)
        .expect("PUBLISHED lists every envelope")
}

fn parse_static(source: &str) -> &'static Schema {
    // Schemas are parsed once per id and live for the process: a bounded set (what is
    // published, plus what the registry names), so leaking is the simple correct lifetime.
    Box::leak(Box::new(Schema::parse_str(source).expect("published schemas are valid Avro")))
}

static COMMAND_READER: LazyLock<&'static Schema> = LazyLock::new(|| parse_static(current(Envelope::Command).source));
static EVENT_READER: LazyLock<&'static Schema> = LazyLock::new(|| parse_static(current(Envelope::Event).source));

/// A reader for one writer schema id.
struct KnownWriter {
    envelope: Envelope,
    /// Written with this release's own schema: read by [`crate::binary`] directly.
    native: bool,
    /// Reads values as the writer wrote them.
    reader: GenericDatumReader<'static>,
    /// Writer's payload/event union branch → this release's branch, matched by record name.
    /// (apache-avro's own resolution matches union branches by shape, and a record with
    /// fewer fields matches first; names are what Avro's resolution rules prescribe.)
    branches: Vec<Option<u32>>,
}

/// Record names of the branches of `schema`'s union field `field`.
fn branch_names(schema: &Schema, field: &str) -> Vec<String> {
    let Schema::Record(r) = schema else { return Vec::new() };
    let Some(f) = r.fields.iter().find(|f| f.name == field) else { return Vec::new() };
    let Schema::Union(u) = &f.schema else { return Vec::new() };
    u.variants()
        .iter()
        .map(|v| match v {
            Schema::Record(rr) => rr.name.name().to_string(),
            _ => String::new(),
        })
        .collect()
}

/// Schema ids to schemas, with encode and decode of both envelopes.
pub struct SchemaCatalog {
    command_id: u32,
    event_id: u32,
    known: RwLock<HashMap<u32, Arc<KnownWriter>>>,
    registry: Option<SrSettings>,
}

impl std::fmt::Debug for SchemaCatalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SchemaCatalog")
            .field("command_id", &self.command_id)
            .field("event_id", &self.event_id)
            .field("registry", &self.registry.is_some())
            .finish()
    }
}

impl SchemaCatalog {
    /// The embedded catalog: fixed ids from [`PUBLISHED`], no network.
    pub fn embedded() -> Self {
        let catalog = SchemaCatalog {
            command_id: current(Envelope::Command).embedded_id,
            event_id: current(Envelope::Event).embedded_id,
            known: RwLock::new(HashMap::new()),
            registry: None,
        };
        for p in PUBLISHED {
            // Published schemas are valid and of their envelope: the compat tests prove it.
            let _ = catalog.learn(p.embedded_id, p.source);
        }
        catalog
    }

    /// A catalog backed by a Confluent-compatible registry at `url`: registers this
    /// release's schemas (the registry returns the existing id when already registered, and
    /// refuses a schema incompatible with its subject's history) and uses its ids.
    pub async fn with_registry(url: &str) -> Result<Self, SchemaError> {
        let settings = SrSettings::new(url.to_string());
        let mut ids = [0u32; 2];
        for (slot, envelope) in [Envelope::Command, Envelope::Event].into_iter().enumerate() {
            let p = current(envelope);
            let supplied = SuppliedSchema::new(
                Some(envelope.full_name().to_string()),
                SchemaType::Avro,
                p.source.to_string(),
            );
            let registered = post_schema(&settings, envelope.subject().to_string(), supplied)
                .await
                .map_err(|e| SchemaError::Registry(format!("registering {}: {e}", envelope.subject())))?;
            ids[slot] = registered.id;
        }
        let catalog = SchemaCatalog {
            command_id: ids[0],
            event_id: ids[1],
            known: RwLock::new(HashMap::new()),
            registry: Some(settings),
        };
        catalog.learn(ids[0], current(Envelope::Command).source)?;
        catalog.learn(ids[1], current(Envelope::Event).source)?;
        Ok(catalog)
    }

    /// The id this catalog writes commands with.
    pub fn command_schema_id(&self) -> u32 {
        self.command_id
    }

    /// The id this catalog writes events with.
    pub fn event_schema_id(&self) -> u32 {
        self.event_id
    }

    /// Whether unknown ids can be looked up in a registry.
    pub fn has_registry(&self) -> bool {
        self.registry.is_some()
    }

    fn learn(&self, id: u32, source: &str) -> Result<(), SchemaError> {
        let schema = Schema::parse_str(source).map_err(|e| SchemaError::Schema {
            file: format!("schema id {id}"),
            message: e.to_string(),
        })?;
        let name = match &schema {
            Schema::Record(r) => r.name.fullname(None),
            _ => String::new(),
        };
        let envelope = [Envelope::Command, Envelope::Event]
            .into_iter()
            .find(|e| e.full_name() == name)
            .ok_or_else(|| SchemaError::Schema {
                file: format!("schema id {id}"),
                message: format!("record {name:?} is neither a command nor an event envelope"),
            })?;
        let writer: &'static Schema = Box::leak(Box::new(schema));
        let (reader_schema, union_field) = match envelope {
            Envelope::Command => (*COMMAND_READER, "payload"),
            Envelope::Event => (*EVENT_READER, "event"),
        };
        let ours = branch_names(reader_schema, union_field);
        let branches = branch_names(writer, union_field)
            .iter()
            .map(|name| ours.iter().position(|o| o == name).map(|i| i as u32))
            .collect();
        let native = source == current(envelope).source;
        let reader = GenericDatumReader::builder(writer)
            .build()
            .map_err(|e| SchemaError::Schema { file: format!("schema id {id}"), message: e.to_string() })?;
        self.known
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, Arc::new(KnownWriter { envelope, native, reader, branches }));
        Ok(())
    }

    /// Fetches an unknown writer id from the registry so the next decode understands it.
    /// Without a registry, an unknown id stays unknown.
    pub async fn fetch(&self, id: u32) -> Result<(), SchemaError> {
        let Some(settings) = &self.registry else {
            return Err(SchemaError::UnknownSchema(id));
        };
        let registered = get_schema_by_id(id, settings).await.map_err(|e| {
            if e.retriable { SchemaError::Registry(e.to_string()) } else { SchemaError::UnknownSchema(id) }
        })?;
        self.learn(id, &registered.schema)
    }

    fn writer(&self, id: u32, envelope: Envelope) -> Result<Arc<KnownWriter>, SchemaError> {
        let known = self.known.read().unwrap_or_else(|p| p.into_inner()).get(&id).cloned();
        match known {
            Some(k) if k.envelope == envelope => Ok(k),
            Some(_) => Err(SchemaError::Framing(format!(
                "schema id {id} is not a {} schema",
                envelope.subject()
            ))),
            None => Err(SchemaError::UnknownSchema(id)),
        }
    }

    /// The writer of a framed message and its Avro body.
    fn body<'b>(&self, bytes: &'b [u8], envelope: Envelope) -> Result<(Arc<KnownWriter>, &'b [u8]), SchemaError> {
        let (id, body) = unframe(bytes)?;
        Ok((self.writer(id, envelope)?, body))
    }

    /// Reads a body written with another schema version into a value whose payload union
    /// index is this release's (fields this release added are absent; the converters treat
    /// absent optional fields as their defaults).
    fn resolve(known: &KnownWriter, mut body: &[u8]) -> Result<Value, SchemaError> {
        let mut value = known.reader.read_value(&mut body).map_err(|e| SchemaError::Avro(e.to_string()))?;
        if !body.is_empty() {
            return Err(SchemaError::Avro(format!("{} trailing bytes after the datum", body.len())));
        }
        let field = match known.envelope {
            Envelope::Command => "payload",
            Envelope::Event => "event",
        };
        if let Value::Record(fields) = &mut value
            && let Some((_, Value::Union(i, _))) = fields.iter_mut().find(|(k, _)| k == field) {
                *i = known.branches.get(*i as usize).copied().flatten().ok_or_else(|| {
                    SchemaError::field(field, format!("branch {i} of the writer's schema is not a type this release knows"))
                })?;
            }
        Ok(value)
    }

    /// Encodes a command as a Confluent-framed Avro message.
    pub fn encode_command(&self, c: &CommandEnvelope) -> Result<Vec<u8>, SchemaError> {
        self.encode_command_parts(&c.head(), &c.payload)
    }

    /// Encodes the command `head` and `payload` make, as [`Self::encode_command`], from
    /// borrowed envelope fields.
    pub fn encode_command_parts(&self, head: &CommandHead<'_>, payload: &CommandPayload) -> Result<Vec<u8>, SchemaError> {
        binary::encode_command_parts_after(frame_header(self.command_id, 256), head, payload)
    }

    /// Decodes a Confluent-framed command. `UnknownSchema` means: call [`Self::fetch`] and retry.
    pub fn decode_command(&self, bytes: &[u8]) -> Result<CommandEnvelope, SchemaError> {
        let (known, body) = self.body(bytes, Envelope::Command)?;
        if known.native {
            binary::decode_command(body)
        } else {
            codec::command_from_value(Self::resolve(&known, body)?)
        }
    }

    /// Encodes an event as a Confluent-framed Avro message.
    pub fn encode_event(&self, e: &EventEnvelope) -> Result<Vec<u8>, SchemaError> {
        binary::encode_event_after(frame_header(self.event_id, 192), e)
    }

    /// Encodes the event `head` and `event` make, as [`Self::encode_event`], from borrowed
    /// envelope fields.
    pub fn encode_event_parts(&self, head: &EventHead<'_>, event: &Event) -> Result<Vec<u8>, SchemaError> {
        binary::encode_event_parts_after(frame_header(self.event_id, 192), head, event)
    }

    /// Decodes a Confluent-framed event.
    pub fn decode_event(&self, bytes: &[u8]) -> Result<EventEnvelope, SchemaError> {
        let (known, body) = self.body(bytes, Envelope::Event)?;
        if known.native {
            binary::decode_event(body)
        } else {
            codec::event_from_value(Self::resolve(&known, body)?)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{command_to_value, event_to_value};
    use crate::command::{CommandPayload, CreateInvoice, LineItem, RecordPayment};
    use crate::event::Event;
    use apache_avro::writer::datum::GenericDatumWriter;

    fn d(s: &str) -> rust_decimal::Decimal {
        s.parse().expect("literal")
    }

    fn commands() -> Vec<CommandEnvelope> {
        let base = CommandEnvelope {
            command_id: "c".into(),
            tenant_id: "t".into(),
            correlation_id: Some("corr".into()),
            issued_at_ms: -5,
            idempotency_key: None,
            payload: CommandPayload::IssueInvoice { invoice_id: "i".into() },
        };
        let create = |lines: usize, meta: usize| CommandEnvelope {
            payload: CommandPayload::CreateInvoice(CreateInvoice {
                invoice_id: "inv-ü".into(),
                customer_id: "c".repeat(200),
                currency: "KWD".parse().expect("KWD"),
                issue_date: crate::Date::from_days(-3),
                due_date: crate::Date::from_days(70_000),
                lines: (0..lines)
                    .map(|i| LineItem { description: format!("l{i}"), quantity: d("1.5"), unit_price: d("-128.000001"), tax_rate: d("99.9999") })
                    .collect(),
                metadata: (0..meta).map(|i| (format!("k{i}"), "v".repeat(i))).collect(),
            }),
            ..base.clone()
        };
        vec![
            base.clone(),
            create(0, 0),
            create(1, 1),
            create(70, 5),
            CommandEnvelope {
                idempotency_key: Some("k".into()),
                payload: CommandPayload::RecordPayment(RecordPayment {
                    invoice_id: "i".into(),
                    amount: d("12345678901234.5678"),
                    currency: "EUR".parse().expect("EUR"),
                    method: "card".into(),
                    external_reference: Some("x".into()),
                    received_on: crate::Date::from_days(1),
                }),
                ..base.clone()
            },
            CommandEnvelope { correlation_id: None, payload: CommandPayload::VoidInvoice { invoice_id: "i".into(), reason: None }, ..base },
        ]
    }

    fn events() -> Vec<EventEnvelope> {
        let e = |event| EventEnvelope { event_id: "e".into(), command_id: "c".into(), tenant_id: "t".into(), correlation_id: None, occurred_at_ms: 99, event };
        let eur = "EUR".parse().expect("EUR");
        vec![
            e(Event::InvoiceCreated { invoice_id: "i".into(), customer_id: "c".into(), currency: eur, issue_date: crate::Date::from_days(1), due_date: crate::Date::from_days(2), line_count: 3, subtotal: d("1"), tax: d("0.19"), total: d("1.19") }),
            e(Event::InvoiceIssued { invoice_id: "i".into(), due_date: crate::Date::from_days(2), total: d("-0.01") }),
            e(Event::PaymentApplied { invoice_id: "i".into(), payment_id: "p".into(), amount: d("1"), currency: eur, amount_paid: d("1"), balance_due: d("0.19") }),
            e(Event::InvoicePaid { invoice_id: "i".into(), total: d("1.19"), paid_on: crate::Date::from_days(5) }),
            e(Event::InvoiceVoided { invoice_id: "i".into(), reason: Some("r".into()) }),
            e(Event::CommandRejected { command_type: "x".into(), invoice_id: None, code: "c".into(), message: "m".into() }),
        ]
    }

    #[test]
    fn direct_encoding_is_byte_identical_to_apache_avro() {
        let cw = GenericDatumWriter::builder(*COMMAND_READER).build().expect("writer");
        // A map's entries have no defined order (apache-avro writes them in hash order), so
        // byte identity is checked where there is at most one.
        let single_map = |c: &CommandEnvelope| !matches!(&c.payload, CommandPayload::CreateInvoice(ci) if ci.metadata.len() > 1);
        for c in commands().into_iter().filter(single_map) {
            let generic = cw.write_value_to_vec(command_to_value(&c).expect("value")).expect("generic");
            assert_eq!(binary::encode_command(&c).expect("direct"), generic, "{c:?}");
        }
        let ew = GenericDatumWriter::builder(*EVENT_READER).build().expect("writer");
        for e in events() {
            let generic = ew.write_value_to_vec(event_to_value(&e).expect("value")).expect("generic");
            assert_eq!(binary::encode_event(&e).expect("direct"), generic, "{e:?}");
        }
    }

    #[test]
    fn both_decoding_paths_agree() {
        // The same schema under another id and text: decoded by apache-avro's resolution.
        let catalog = SchemaCatalog::embedded();
        let relaxed = current(Envelope::Command).source.replace('\n', " ");
        catalog.learn(99, &relaxed).expect("learns");
        let relaxed = current(Envelope::Event).source.replace('\n', " ");
        catalog.learn(98, &relaxed).expect("learns");
        for c in commands() {
            let bytes = catalog.encode_command(&c).expect("encodes");
            let mut other = bytes.clone();
            other[1..5].copy_from_slice(&99u32.to_be_bytes());
            assert_eq!(catalog.decode_command(&bytes).expect("direct"), c);
            assert_eq!(catalog.decode_command(&other).expect("resolved"), c);
        }
        for e in events() {
            let bytes = catalog.encode_event(&e).expect("encodes");
            let mut other = bytes.clone();
            other[1..5].copy_from_slice(&98u32.to_be_bytes());
            assert_eq!(catalog.decode_event(&bytes).expect("direct"), e);
            assert_eq!(catalog.decode_event(&other).expect("resolved"), e);
        }
    }
}
