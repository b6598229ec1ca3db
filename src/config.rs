//! Configuration: built-in defaults, then a TOML file, then `BILLSTREAM__SECTION__KEY`
//! environment variables, then command-line flags. Every key is documented here; unknown
//! keys are refused with their name.

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Deserializer};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where the embedded store (`<data_dir>/hot`) and, later, the archive live.
    pub data_dir: PathBuf,
    /// Kafka settings.
    pub kafka: KafkaConfig,
    /// HTTP gateway settings.
    pub http: HttpConfig,
    /// Processor settings.
    pub processor: ProcessorSection,
    /// Embedded store settings.
    pub store: StoreConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("./data"),
            kafka: KafkaConfig::default(),
            http: HttpConfig::default(),
            processor: ProcessorSection::default(),
            store: StoreConfig::default(),
        }
    }
}

/// `[kafka]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaConfig {
    /// Bootstrap servers of an external cluster; empty starts the embedded broker
    /// (librdkafka's in-process mock cluster, memory only).
    pub brokers: String,
    /// Partitions of `billing.commands` (and of the other topics) when billstream creates them.
    pub partitions: i32,
    /// Replication factor of topics billstream creates on an external cluster.
    pub replication_factor: i32,
    /// Consumer group of the processors.
    pub group_id: String,
    /// URL of a Confluent-compatible schema registry; empty uses the embedded catalog.
    pub schema_registry_url: String,
    /// How long the consumer group waits for a silent processor (crashed, partitioned)
    /// before reassigning its partitions, e.g. "10s" (the broker's minimum is usually 6s).
    #[serde(deserialize_with = "duration")]
    pub session_timeout: Duration,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        KafkaConfig {
            brokers: String::new(),
            partitions: 12,
            replication_factor: 1,
            group_id: "billing-processors".into(),
            schema_registry_url: String::new(),
            session_timeout: Duration::from_secs(10),
        }
    }
}

/// `[http]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Listen address of the gateway; port 0 picks a free port.
    pub listen: String,
    /// Largest request body in bytes (413 above).
    pub max_body_bytes: usize,
    /// Most commands in one batch request.
    pub max_batch_commands: usize,
    /// Longest `?wait=applied` waits, e.g. "30s".
    #[serde(deserialize_with = "duration")]
    pub wait_timeout: Duration,
    /// Answer 503 `backlog_full` while the processors are this many bytes behind what the
    /// gateway produced. Unset: 4 MiB with the embedded broker (it keeps only 5 MiB per
    /// partition), no limit with an external cluster. 0: never.
    pub max_backlog_bytes: Option<u64>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        let g = billstream_ingest::GatewayConfig::default();
        HttpConfig {
            listen: "127.0.0.1:8080".into(),
            max_body_bytes: g.max_body_bytes,
            max_batch_commands: g.max_batch_commands,
            wait_timeout: g.wait_timeout,
            max_backlog_bytes: None,
        }
    }
}

/// `[processor]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProcessorSection {
    /// Most messages per batch (one store commit, one fsync).
    pub max_batch: usize,
    /// How long a batch keeps filling after its first message, e.g. "1ms".
    #[serde(deserialize_with = "duration")]
    pub linger: Duration,
}

impl Default for ProcessorSection {
    fn default() -> Self {
        // The processor's own defaults: one place to change them.
        let p = billstream_processors::consumer::ProcessorConfig::new("");
        ProcessorSection { max_batch: p.max_batch, linger: p.linger }
    }
}

/// `[store]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// fsync each batch commit. Turning it off risks losing the last batches on power loss
    /// (not on a process crash).
    pub sync_commits: bool,
    /// Block cache in MiB: blocks of the store's tables (data, indexes, filters) and invoices
    /// read from disk; by default the store's own default,
    /// [`billstream_processors::store::DEFAULT_CACHE_MB`].
    pub cache_mb: u64,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig { sync_commits: true, cache_mb: billstream_processors::store::DEFAULT_CACHE_MB }
    }
}

/// Parses "250ms", "5s", "2m", "1h".
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().map_err(|_| format!("expected a duration like \"30s\" or \"250ms\", got {s:?}"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "s" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        "h" => Ok(Duration::from_secs(n * 3600)),
        _ => Err(format!("expected a unit of ms, s, m or h in {s:?}")),
    }
}

fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    parse_duration(&s).map_err(serde::de::Error::custom)
}

const ENV_PREFIX: &str = "BILLSTREAM__";

impl Config {
    /// Loads defaults, then `file` (if any), then environment overrides.
    pub fn load(file: Option<&Path>) -> Result<Config> {
        let mut value = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).with_context(|| format!("reading config file {}", path.display()))?;
                text.parse::<toml::Table>().with_context(|| format!("config file {} is not valid TOML", path.display()))?
            }
            None => toml::Table::new(),
        };
        // Which environment variable set each key, so an error names what the user typed.
        let mut from_env = Vec::new();
        for (name, raw) in std::env::vars() {
            let Some(path) = name.strip_prefix(ENV_PREFIX) else { continue };
            let keys: Vec<String> = path.split("__").map(str::to_lowercase).collect();
            set_path(&mut value, &keys, env_value(&raw)).with_context(|| format!("environment variable {name}"))?;
            from_env.push((keys.join("."), name));
        }
        let config = from_table(value, &from_env, file)?;
        config.validate()?;
        Ok(config)
    }

    /// Checks values that parse but make no sense.
    pub fn validate(&self) -> Result<()> {
        if self.kafka.partitions < 1 {
            bail!("kafka.partitions must be at least 1, got {}", self.kafka.partitions);
        }
        if self.processor.max_batch == 0 {
            bail!("processor.max_batch must be at least 1");
        }
        if self.http.max_batch_commands == 0 {
            bail!("http.max_batch_commands must be at least 1");
        }
        Ok(())
    }

    /// Directory of the embedded hot store.
    pub fn store_dir(&self) -> PathBuf {
        self.data_dir.join("hot")
    }
}

/// Deserializes the merged table; an error names the key (`store.cache_mb`) and where its
/// value came from: the environment variable that set it, else the file.
fn from_table(value: toml::Table, from_env: &[(String, String)], file: Option<&Path>) -> Result<Config> {
    serde_path_to_error::deserialize(toml::Value::Table(value)).map_err(|e| {
        let key = e.path().to_string();
        let origin = match from_env.iter().find(|(k, _)| *k == key) {
            Some((_, var)) => format!(" (environment variable {var})"),
            None => file.map(|p| format!(" (in {})", p.display())).unwrap_or_default(),
        };
        anyhow::anyhow!("invalid configuration {key}{origin}: {}", e.inner().message())
    })
}

fn env_value(raw: &str) -> toml::Value {
    if let Ok(i) = raw.parse::<i64>() {
        toml::Value::Integer(i)
    } else if let Ok(b) = raw.parse::<bool>() {
        toml::Value::Boolean(b)
    } else {
        toml::Value::String(raw.to_string())
    }
}

fn set_path(table: &mut toml::Table, keys: &[String], v: toml::Value) -> Result<()> {
    match keys {
        [] => bail!("empty key"),
        [last] => {
            table.insert(last.clone(), v);
            Ok(())
        }
        [first, rest @ ..] => {
            let entry = table.entry(first.clone()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
            match entry {
                toml::Value::Table(t) => set_path(t, rest, v),
                _ => bail!("{first} is not a section"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("2 weeks").is_err());
    }

    #[test]
    fn file_then_env_and_unknown_keys_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("b.toml");
        std::fs::write(&path, "data_dir = \"/x\"\n[processor]\nlinger = \"7ms\"\n").expect("write");
        let c = Config::load(Some(&path)).expect("loads");
        assert_eq!((c.data_dir, c.processor.linger), (PathBuf::from("/x"), Duration::from_millis(7)));
        std::fs::write(&path, "[kafka]\nbrokerz = \"x\"\n").expect("write");
        let e = Config::load(Some(&path)).expect_err("unknown key");
        assert!(format!("{e:#}").contains("brokerz"), "{e:#}");
        let mut t = toml::Table::new();
        set_path(&mut t, &["kafka".into(), "partitions".into()], env_value("3")).expect("set");
        let c: Config = toml::Value::Table(t).try_into().expect("valid");
        assert_eq!(c.kafka.partitions, 3);
    }

    #[test]
    fn a_bad_value_names_its_key_and_where_it_came_from() {
        let mut t = toml::Table::new();
        set_path(&mut t, &["store".into(), "cache_mb".into()], env_value("not-a-number")).expect("set");
        let env = [("store.cache_mb".to_string(), "BILLSTREAM__STORE__CACHE_MB".to_string())];
        let e = from_table(t.clone(), &env, None).expect_err("not a number").to_string();
        assert!(e.contains("store.cache_mb (environment variable BILLSTREAM__STORE__CACHE_MB)"), "{e}");
        assert!(e.contains("not-a-number") && e.contains("u64"), "{e}");
        // Not set by the environment: the file is named, and a custom parser's message kept.
        t.remove("store");
        set_path(&mut t, &["processor".into(), "linger".into()], env_value("7 weeks")).expect("set");
        let e = from_table(t, &env, Some(Path::new("/etc/b.toml"))).expect_err("no unit").to_string();
        assert!(e.contains("processor.linger (in /etc/b.toml)") && e.contains("expected a unit"), "{e}");
    }
}
