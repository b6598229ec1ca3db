//! BACKWARD compatibility across every published schema version.
//!
//! BACKWARD (transitive): a consumer on the newest schema reads data written with every older
//! one, so consumers are upgraded first and producers later, without downtime. Checked with
//! apache-avro's schema-compatibility check over each envelope's versions in order.

use crate::SchemaError;
use apache_avro::Schema;
use apache_avro::schema_compatibility::SchemaCompatibility;
use std::path::Path;

/// One schema file found in a schema directory.
#[derive(Debug, Clone)]
pub struct SchemaFile {
    /// Subject, e.g. `billing.commands-value`.
    pub subject: String,
    /// Version number from the file name.
    pub version: u32,
    /// File name.
    pub file: String,
    /// The text.
    pub source: String,
}

/// Reads `<subject>.v<N>.avsc` files from `dir`, sorted by subject and version.
pub fn read_dir(dir: &Path) -> Result<Vec<SchemaFile>, SchemaError> {
    let io = |e: std::io::Error| SchemaError::Schema { file: dir.display().to_string(), message: e.to_string() };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        let file = entry.file_name().to_string_lossy().into_owned();
        let Some(stem) = file.strip_suffix(".avsc") else { continue };
        let bad = || SchemaError::Schema {
            file: file.clone(),
            message: "expected a name like <subject>.v<N>.avsc".into(),
        };
        let (subject, version) = stem.rsplit_once(".v").ok_or_else(bad)?;
        let version: u32 = version.parse().map_err(|_| bad())?;
        let source = std::fs::read_to_string(entry.path()).map_err(io)?;
        files.push(SchemaFile { subject: subject.to_string(), version, file, source });
    }
    files.sort_by(|a, b| (&a.subject, a.version).cmp(&(&b.subject, b.version)));
    Ok(files)
}

/// Checks that every version of every subject can read all data written with each older
/// version of the same subject, and that versions are numbered 1, 2, 3... without gaps.
pub fn check_backward_transitive(files: &[SchemaFile]) -> Result<(), SchemaError> {
    let mut parsed: Vec<(&SchemaFile, Schema)> = Vec::new();
    for f in files {
        let schema = Schema::parse_str(&f.source)
            .map_err(|e| SchemaError::Schema { file: f.file.clone(), message: e.to_string() })?;
        parsed.push((f, schema));
    }
    for (i, (newer, newer_schema)) in parsed.iter().enumerate() {
        let older: Vec<_> = parsed[..i].iter().filter(|(f, _)| f.subject == newer.subject).collect();
        let expected_version = older.len() as u32 + 1;
        if newer.version != expected_version {
            return Err(SchemaError::Schema {
                file: newer.file.clone(),
                message: format!("version {} follows {} of {}", newer.version, expected_version - 1, newer.subject),
            });
        }
        for (old, old_schema) in older {
            SchemaCompatibility::can_read(old_schema, newer_schema).map_err(|e| SchemaError::Schema {
                file: newer.file.clone(),
                message: format!("cannot read data written with {}: {e}", old.file),
            })?;
        }
    }
    Ok(())
}
