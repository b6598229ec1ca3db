//! Which schema id means which schema.
//!
//! Every schema version ever published lives in `schemas/avro/` and is compiled in. Without
//! a registry the catalog hands out fixed ids (the embedded catalog: the table
//! [`PUBLISHED`]); with a Confluent-compatible registry configured, it registers this
//! release's schemas under the topic-name subjects and learns unknown writer ids from the
//! registry (through `schema_registry_converter`), so producers using other clients and
//! other schema versions are understood.

use crate::codec::{self, frame, unframe};
use crate::{CommandEnvelope, EventEnvelope, SchemaError};
use apache_avro::Schema;
use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::types::Value;
use apache_avro::writer::datum::GenericDatumWriter;
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
static COMMAND_WRITER: LazyLock<GenericDatumWriter<'static>> = LazyLock::new(|| {
    GenericDatumWriter::builder(*COMMAND_READER).build().expect("command schema resolves")
});
static EVENT_WRITER: LazyLock<GenericDatumWriter<'static>> = LazyLock::new(|| {
    GenericDatumWriter::builder(*EVENT_READER).build().expect("event schema resolves")
});

/// A reader for one writer schema id, resolving to this release's schema.
struct KnownWriter {
    envelope: Envelope,
    reader: GenericDatumReader<'static>,
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
        let reader_schema = match envelope {
            Envelope::Command => *COMMAND_READER,
            Envelope::Event => *EVENT_READER,
        };
        let builder = GenericDatumReader::builder(writer);
        let reader = if source == current(envelope).source {
            builder.build()
        } else {
            builder.reader_schema(reader_schema).build()
        }
        .map_err(|e| SchemaError::Schema { file: format!("schema id {id}"), message: e.to_string() })?;
        self.known
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, Arc::new(KnownWriter { envelope, reader }));
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

    fn decode_value(&self, bytes: &[u8], envelope: Envelope) -> Result<Value, SchemaError> {
        let (id, mut body) = unframe(bytes)?;
        let known = self.writer(id, envelope)?;
        let value = known.reader.read_value(&mut body).map_err(|e| SchemaError::Avro(e.to_string()))?;
        if !body.is_empty() {
            return Err(SchemaError::Avro(format!("{} trailing bytes after the datum", body.len())));
        }
        Ok(value)
    }

    /// Encodes a command as a Confluent-framed Avro message.
    pub fn encode_command(&self, c: &CommandEnvelope) -> Result<Vec<u8>, SchemaError> {
        let value = codec::command_to_value(c)?;
        let body = COMMAND_WRITER
            .write_value_to_vec(value)
            .map_err(|e| SchemaError::Encode { field: "command".into(), message: e.to_string() })?;
        Ok(frame(self.command_id, &body))
    }

    /// Decodes a Confluent-framed command. `UnknownSchema` means: call [`Self::fetch`] and retry.
    pub fn decode_command(&self, bytes: &[u8]) -> Result<CommandEnvelope, SchemaError> {
        codec::command_from_value(self.decode_value(bytes, Envelope::Command)?)
    }

    /// Encodes an event as a Confluent-framed Avro message.
    pub fn encode_event(&self, e: &EventEnvelope) -> Result<Vec<u8>, SchemaError> {
        let value = codec::event_to_value(e)?;
        let body = EVENT_WRITER
            .write_value_to_vec(value)
            .map_err(|e| SchemaError::Encode { field: "event".into(), message: e.to_string() })?;
        Ok(frame(self.event_id, &body))
    }

    /// Decodes a Confluent-framed event.
    pub fn decode_event(&self, bytes: &[u8]) -> Result<EventEnvelope, SchemaError> {
        codec::event_from_value(self.decode_value(bytes, Envelope::Event)?)
    }
}
