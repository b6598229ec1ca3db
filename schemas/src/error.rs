//! The one error type of the schemas crate.

/// What went wrong turning bytes into messages or messages into bytes.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    /// The bytes are not a Confluent-framed message (too short, wrong magic byte).
    #[error("not a Confluent-framed Avro message: {0}")]
    Framing(String),
    /// The schema id in the frame is not known to the catalog or the registry.
    #[error("unknown schema id {0}")]
    UnknownSchema(u32),
    /// The Avro body did not decode against its writer schema.
    #[error("Avro decode failed: {0}")]
    Avro(String),
    /// The Avro body decoded, but a field holds something the domain cannot accept.
    #[error("field `{field}`: {message}")]
    Field {
        /// Dotted path of the field, e.g. `payload.lines[2].unit_price`.
        field: String,
        /// What was expected.
        message: String,
    },
    /// A value could not be encoded (e.g. a decimal with more places than the schema's scale).
    #[error("cannot encode field `{field}`: {message}")]
    Encode {
        /// Dotted path of the field.
        field: String,
        /// Why.
        message: String,
    },
    /// The schema registry could not be reached or refused a request.
    #[error("schema registry: {0}")]
    Registry(String),
    /// A schema file is not valid Avro, or two versions are not compatible.
    #[error("schema {file}: {message}")]
    Schema {
        /// The schema file.
        file: String,
        /// What is wrong with it.
        message: String,
    },
}

impl SchemaError {
    /// Whether retrying the same operation later can succeed (the registry was unreachable),
    /// as opposed to the input being wrong for good.
    pub fn is_retryable(&self) -> bool {
        matches!(self, SchemaError::Registry(_))
    }

    /// A short stable class for metrics and DLQ headers.
    pub fn class(&self) -> &'static str {
        match self {
            SchemaError::Framing(_) => "framing",
            SchemaError::UnknownSchema(_) => "unknown_schema",
            SchemaError::Avro(_) => "avro_decode",
            SchemaError::Field { .. } => "invalid_field",
            SchemaError::Encode { .. } => "encode",
            SchemaError::Registry(_) => "registry",
            SchemaError::Schema { .. } => "schema",
        }
    }

    pub(crate) fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        SchemaError::Field { field: field.into(), message: message.into() }
    }
}
