//! Watching the pipeline from the outside: the events topic says which commands were
//! resolved (applied or rejected) and when, the gateway's `/metrics` what the processors
//! counted.

use hdrhistogram::Histogram;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Sets of [`id_hash`]es (millions in a run), hashed with foldhash rather than std's SipHash:
/// the harness shares its cores with the pipeline it measures, and inserting into the set of
/// accepted ids was about 40 % of its HTTP thread.
pub type IdSet = std::collections::HashSet<u64, foldhash::fast::RandomState>;

/// FNV-1a of a command id: the harness keeps 8 bytes per command, not the string.
pub fn id_hash(id: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in id {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

fn varint(buf: &mut &[u8]) -> Option<i64> {
    let (mut v, mut shift) = (0u64, 0);
    loop {
        let (&b, rest) = buf.split_first()?;
        *buf = rest;
        v |= u64::from(b & 0x7F) << shift;
        if b & 0x80 == 0 {
            return Some(((v >> 1) as i64) ^ -((v & 1) as i64));
        }
        shift += 7;
        if shift > 63 {
            return None;
        }
    }
}

fn string<'a>(buf: &mut &'a [u8]) -> Option<&'a [u8]> {
    let len = usize::try_from(varint(buf)?).ok()?;
    if buf.len() < len {
        return None;
    }
    let (s, rest) = buf.split_at(len);
    *buf = rest;
    Some(s)
}

/// Command id and `occurred_at` (ms) of a framed v1 event envelope, read without decoding
/// the rest: the fields lead the record (event_id, command_id, tenant_id, correlation_id,
/// occurred_at). Decoding whole events would cost the harness a CPU core at full rate.
pub fn event_head(framed: &[u8]) -> Option<(&[u8], i64)> {
    let mut buf = framed.get(5..)?;
    string(&mut buf)?;
    let command_id = string(&mut buf)?;
    string(&mut buf)?;
    match varint(&mut buf)? {
        0 => {}
        1 => {
            string(&mut buf)?;
        }
        _ => return None,
    }
    Some((command_id, varint(&mut buf)?))
}

/// What the watcher learned.
pub struct Seen {
    /// Hashes of command ids seen in events.
    pub ids: IdSet,
    /// issued_at → event seen, microseconds, first event of each command.
    pub latency_us: Histogram<u64>,
    /// Events that did not parse.
    pub unreadable: u64,
    /// Commands issued before this (Unix ms) are counted but kept out of `latency_us`.
    pub latency_from_ms: i64,
    /// When the last new command id was seen.
    pub last_new: Option<Instant>,
}

/// Consumes the events topic on a thread of its own, from its end at start.
pub struct Watcher {
    /// Shared state.
    pub seen: Arc<Mutex<Seen>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// A consumer assigned every partition of `topic` at its current end: it sees only what is
/// published from now on. No group membership (assigned, not subscribed), so no rebalance
/// delay.
pub fn consumer_at_end(bootstrap: &str, topic: &str) -> anyhow::Result<BaseConsumer> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "billstream-load")
        .set("enable.auto.commit", "false")
        // The embedded (mock) broker holds a fetch that finds nothing new for the whole of
        // this wait, without waking for data that arrives meanwhile: at 5 ms the watcher
        // added up to 5 ms of its own to every latency it measured (and the raw reader idled).
        .set("fetch.wait.max.ms", "1")
        .set("queued.min.messages", "200000")
        .create()?;
    let md = consumer.fetch_metadata(Some(topic), Duration::from_secs(10))?;
    let mut tpl = TopicPartitionList::new();
    for p in md.topics().first().map(|t| t.partitions()).unwrap_or_default() {
        let (_, high) = consumer.fetch_watermarks(topic, p.id(), Duration::from_secs(10))?;
        tpl.add_partition_offset(topic, p.id(), Offset::Offset(high))?;
    }
    if tpl.count() == 0 {
        anyhow::bail!("topic {topic} does not exist on {bootstrap}");
    }
    consumer.assign(&tpl)?;
    Ok(consumer)
}

impl Watcher {
    /// Starts watching `topic` from its current end.
    pub fn start(bootstrap: &str, topic: &str) -> anyhow::Result<Self> {
        let consumer = consumer_at_end(bootstrap, topic)?;
        let seen = Arc::new(Mutex::new(Seen {
            ids: IdSet::default(),
            latency_us: Histogram::new_with_bounds(1, 600_000_000, 3)?,
            unreadable: 0,
            latency_from_ms: 0,
            last_new: None,
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let (s, st) = (seen.clone(), stop.clone());
        let thread = std::thread::Builder::new().name("events-watcher".into()).spawn(move || {
            while !st.load(Ordering::Relaxed) {
                let Some(Ok(m)) = consumer.poll(Duration::from_millis(50)) else { continue };
                let now = now_ms();
                let mut guard = s.lock().unwrap_or_else(|p| p.into_inner());
                match m.payload().and_then(event_head) {
                    Some((id, occurred)) => {
                        if guard.ids.insert(id_hash(id)) {
                            guard.last_new = Some(Instant::now());
                            if occurred >= guard.latency_from_ms {
                                let _ = guard.latency_us.record(((now - occurred).max(0) as u64 * 1000).max(1));
                            }
                        }
                    }
                    None => guard.unreadable += 1,
                }
            }
        })?;
        Ok(Watcher { seen, stop, thread: Some(thread) })
    }

    /// Commands resolved so far.
    pub fn resolved(&self) -> u64 {
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).ids.len() as u64
    }

    /// How many of `accepted` were never seen: a pass over all of `accepted` with the watcher
    /// held, not for polling.
    pub fn missing(&self, accepted: &IdSet) -> u64 {
        let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        accepted.iter().filter(|id| !seen.ids.contains(id)).count() as u64
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One counter of the processors' `billstream_processor_messages_total`, scraped from
/// `/metrics` (0 when absent).
pub fn processor_counter(metrics: &str, outcome: &str) -> u64 {
    let prefix = format!("billstream_processor_messages_total{{outcome=\"{outcome}\"}} ");
    metrics.lines().find_map(|l| l.strip_prefix(&prefix)).and_then(|v| v.trim().parse().ok()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use billstream_schemas::event::{Event, EventEnvelope};
    use billstream_schemas::SchemaCatalog;

    #[test]
    fn reads_the_head_of_a_real_event() {
        let catalog = SchemaCatalog::embedded();
        for corr in [None, Some("corr-7".to_string())] {
            let e = EventEnvelope {
                event_id: "e-1".into(),
                command_id: "the-command".into(),
                tenant_id: "t".into(),
                correlation_id: corr,
                occurred_at_ms: 1_790_000_123_456,
                event: Event::InvoiceVoided { invoice_id: "i".into(), reason: None },
            };
            let bytes = catalog.encode_event(&e).expect("encodes");
            assert_eq!(event_head(&bytes), Some((&b"the-command"[..], 1_790_000_123_456)));
        }
        assert_eq!(event_head(b"\0\0\0\0\x02\x7f"), None);
    }

    #[test]
    fn scrapes_counters() {
        let text = "# HELP x\nbillstream_processor_messages_total{outcome=\"applied\"} 42\n";
        assert_eq!(processor_counter(text, "applied"), 42);
        assert_eq!(processor_counter(text, "rejected"), 0);
    }
}
