//! Watching the pipeline from the outside: the events topic says which commands were
//! resolved (applied or rejected) and when, the gateway's `/metrics` what the processors
//! counted.

use hdrhistogram::Histogram;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Sets of [`id_hash`]es (the [`Ledger`]'s: as many as the backlog, and the resolved payments,
/// millions in a long run), hashed with foldhash rather than std's SipHash: the harness shares
/// its cores with the pipeline it measures, and inserting into a set of every accepted id (as
/// it kept then) was about 40 % of its HTTP thread with SipHash.
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

/// A command id as the harness keeps it: a hash (8 bytes, not the string) and whether the
/// pipeline may accept it more than once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommandId {
    hash: u64,
    /// Anything but a time-ordered id: the id derived from an Idempotency-Key (a retry is
    /// accepted again with it), or a producer's own.
    repeatable: bool,
}

impl CommandId {
    /// The harness's form of `id`.
    pub fn of(id: &[u8]) -> Self {
        CommandId { hash: id_hash(id), repeatable: !is_uuid_v7(id) }
    }
}

/// A hyphenated UUID of version 7: the id the gateway gives a command without an
/// Idempotency-Key, new for every acceptance.
fn is_uuid_v7(id: &[u8]) -> bool {
    id.len() == 36 && id[14] == b'7' && [8, 13, 18, 23].iter().all(|&i| id[i] == b'-')
}

/// Which accepted commands the pipeline resolved, exactly, in memory that follows the backlog
/// rather than the run. The driver records acceptances, the watcher events.
///
/// The harness used to keep two sets of every id of a run, accepted and seen: an insert into
/// each for every command, each a cache miss once the sets outgrew the caches (16 % of the
/// harness's CPU, on the two cores it shares with the pipeline), and 10-20 bytes per command
/// for the run's length (a 600 s preload holds 35 million). A command is now held from its
/// acceptance until its first event (or from an event that beat its acknowledgement until that
/// arrives). Only ids the pipeline may accept again stay once resolved, so a retry after the
/// resolution is known for what it is: payments, about a third of the commands. A
/// time-ordered id is never accepted twice (the gateway makes a new one each time); if one
/// were, it would wait for an event that does not come and count as lost — loudly, not
/// silently.
#[derive(Debug, Default)]
pub struct Ledger {
    /// Accepted, no event seen yet.
    outstanding: IdSet,
    /// An event seen, the acceptance not (yet) recorded.
    early: IdSet,
    /// Resolved, and may be accepted again.
    resolved_repeatable: IdSet,
    accepted: u64,
    resolved: u64,
    /// When the last command was resolved, or an unknown one seen.
    last_new: Option<Instant>,
}

impl Ledger {
    /// Records the pipeline's acceptance of `id`; whether it is a new command (not a retry of
    /// one accepted before).
    pub fn accept(&mut self, id: CommandId) -> bool {
        if id.repeatable && self.resolved_repeatable.contains(&id.hash) {
            return false;
        }
        if self.early.remove(&id.hash) {
            self.accepted += 1;
            self.resolve(id);
            return true;
        }
        let new = self.outstanding.insert(id.hash);
        self.accepted += u64::from(new);
        new
    }

    /// Records an event of command `id`, seen at `now`; whether it is the command's first
    /// (the one its latency is measured by).
    pub fn event(&mut self, id: CommandId, now: Instant) -> bool {
        let first = if self.outstanding.remove(&id.hash) {
            self.resolve(id);
            true
        } else {
            !(id.repeatable && self.resolved_repeatable.contains(&id.hash)) && self.early.insert(id.hash)
        };
        if first {
            self.last_new = Some(now);
        }
        first
    }

    fn resolve(&mut self, id: CommandId) {
        self.resolved += 1;
        if id.repeatable {
            self.resolved_repeatable.insert(id.hash);
        }
    }

    /// Distinct commands accepted.
    pub fn accepted(&self) -> u64 {
        self.accepted
    }

    /// Distinct commands accepted and seen resolved.
    pub fn resolved(&self) -> u64 {
        self.resolved
    }

    /// Accepted commands not seen resolved yet: the backlog, and at the end the loss.
    pub fn unresolved(&self) -> u64 {
        self.outstanding.len() as u64
    }

    /// Commands seen in events but never accepted by this run (a clean run has none: every
    /// event on the topic after the watcher started is of a command the run sent).
    pub fn unmatched(&self) -> u64 {
        self.early.len() as u64
    }

    /// When the last command was resolved (or an unknown one seen).
    pub fn last_new(&self) -> Option<Instant> {
        self.last_new
    }
}

/// Shared between the driver and the watcher.
pub type SharedLedger = Arc<Mutex<Ledger>>;

/// What the watcher measured.
pub struct Seen {
    /// issued_at → event seen, microseconds, first event of each command.
    pub latency_us: Histogram<u64>,
    /// Events that did not parse.
    pub unreadable: u64,
    /// Commands issued before this (Unix ms) are counted but kept out of `latency_us`.
    pub latency_from_ms: i64,
}

/// Events the watcher takes from the consumer before it records them: one lock of the
/// ledger and one clock read per drain, not per event.
const DRAIN_MAX: usize = 1024;

/// Consumes the events topic on a thread of its own, from its end at start.
pub struct Watcher {
    /// What it measured.
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

/// An event as the watcher takes it: its command, and when it occurred (Unix ms); `None` if
/// it did not parse.
type Head = Option<(CommandId, i64)>;

impl Watcher {
    /// Starts watching `topic` from its current end, recording into `ledger`.
    pub fn start(bootstrap: &str, topic: &str, ledger: SharedLedger) -> anyhow::Result<Self> {
        let consumer = consumer_at_end(bootstrap, topic)?;
        let seen = Arc::new(Mutex::new(Seen {
            latency_us: Histogram::new_with_bounds(1, 600_000_000, 3)?,
            unreadable: 0,
            latency_from_ms: 0,
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let (s, l, st) = (seen.clone(), ledger, stop.clone());
        let thread = std::thread::Builder::new().name("events-watcher".into()).spawn(move || {
            // The last command seen on each partition: a command's events are published
            // together, in order, so its second and third are skipped here.
            let mut last: Vec<Option<u64>> = Vec::new();
            let mut heads: Vec<Head> = Vec::with_capacity(DRAIN_MAX);
            let mut firsts: Vec<i64> = Vec::with_capacity(DRAIN_MAX);
            while !st.load(Ordering::Relaxed) {
                let mut wait = Duration::from_millis(50);
                while heads.len() < DRAIN_MAX {
                    let Some(Ok(m)) = consumer.poll(wait) else { break };
                    wait = Duration::ZERO;
                    let head = m.payload().and_then(event_head).map(|(id, occurred)| (CommandId::of(id), occurred));
                    let p = usize::try_from(m.partition()).unwrap_or(0);
                    if last.len() <= p {
                        last.resize(p + 1, None);
                    }
                    if let Some((id, _)) = head {
                        if last[p] == Some(id.hash) {
                            continue;
                        }
                        last[p] = Some(id.hash);
                    }
                    heads.push(head);
                }
                if heads.is_empty() {
                    continue;
                }
                // Read once the drain is done: a latency is measured to when the harness had
                // the event in hand, which may overstate it by the drain's length, never
                // understate it.
                let (now, instant) = (now_ms(), Instant::now());
                let mut unreadable = 0;
                {
                    let mut ledger = l.lock().unwrap_or_else(|p| p.into_inner());
                    for head in heads.drain(..) {
                        match head {
                            Some((id, occurred)) => {
                                if ledger.event(id, instant) {
                                    firsts.push(occurred);
                                }
                            }
                            None => unreadable += 1,
                        }
                    }
                }
                let mut seen = s.lock().unwrap_or_else(|p| p.into_inner());
                seen.unreadable += unreadable;
                let from = seen.latency_from_ms;
                for occurred in firsts.drain(..).filter(|&o| o >= from) {
                    let _ = seen.latency_us.record(((now - occurred).max(0) as u64 * 1000).max(1));
                }
            }
        })?;
        Ok(Watcher { seen, stop, thread: Some(thread) })
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

/// The hot store's state over a run, from the pipeline's `/metrics` (the `billstream_store_*`
/// gauges), sampled about once a second: what a report needs to tell a run slowed by the
/// store from one that was not.
#[derive(Debug, Default)]
pub struct StoreSamples {
    /// Scrapes that held the store's gauges.
    pub samples: u64,
    /// The most level-0 tables each table had at once.
    pub l0_tables_max: BTreeMap<String, u64>,
    /// The most sealed memtables waiting for a flush at once.
    pub flushes_queued_max: u64,
    /// The most journal files at once.
    pub journal_files_max: u64,
    /// Each table's bytes on disk at the last scrape.
    pub disk_bytes: BTreeMap<String, u64>,
    /// Each table's bytes written by flushes and by compactions since the store was opened,
    /// at the first scrape that had them.
    pub written_first: BTreeMap<String, Written>,
    /// The same at the last scrape.
    pub written_last: BTreeMap<String, Written>,
}

/// Bytes a table wrote, as `billstream_store_flushed_bytes_total` and
/// `billstream_store_compacted_bytes_total` count them.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    /// By flushes.
    pub flushed: u64,
    /// By compactions.
    pub compacted: u64,
}

impl Written {
    /// The sum of `all`.
    fn sum<'a>(all: impl IntoIterator<Item = &'a Written>) -> Written {
        all.into_iter().fold(Written::default(), |a, w| Written {
            flushed: a.flushed + w.flushed,
            compacted: a.compacted + w.compacted,
        })
    }

    /// What was written between `first` and `self` (counts since the store opened; if they
    /// went down, the pipeline restarted, and `self` is all there is since).
    fn since(self, first: Written) -> Written {
        if self.flushed < first.flushed || self.compacted < first.compacted {
            return self;
        }
        Written { flushed: self.flushed - first.flushed, compacted: self.compacted - first.compacted }
    }
}

impl StoreSamples {
    /// Takes in one scrape of `/metrics`; `false` if it has none of the store's gauges (a
    /// pipeline that exports none, or no pipeline at all at that address).
    pub fn add(&mut self, metrics: &str) -> bool {
        let mut any = false;
        let mut written: BTreeMap<String, Written> = BTreeMap::new();
        for line in metrics.lines().filter(|l| l.starts_with("billstream_store_")) {
            let Some((series, value)) = line.rsplit_once(' ') else { continue };
            let Ok(value) = value.parse::<u64>() else { continue };
            let (name, table) = match series.split_once("{table=\"") {
                Some((name, rest)) => (name, rest.strip_suffix("\"}")),
                None => (series, None),
            };
            any = true;
            match (name, table) {
                ("billstream_store_l0_tables", Some(t)) => {
                    let max = self.l0_tables_max.entry(t.to_string()).or_insert(0);
                    *max = (*max).max(value);
                }
                ("billstream_store_disk_bytes", Some(t)) => {
                    self.disk_bytes.insert(t.to_string(), value);
                }
                ("billstream_store_flushed_bytes_total", Some(t)) => written.entry(t.to_string()).or_default().flushed = value,
                ("billstream_store_compacted_bytes_total", Some(t)) => {
                    written.entry(t.to_string()).or_default().compacted = value;
                }
                ("billstream_store_flushes_queued", None) => self.flushes_queued_max = self.flushes_queued_max.max(value),
                ("billstream_store_journal_files", None) => self.journal_files_max = self.journal_files_max.max(value),
                _ => {}
            }
        }
        for (table, w) in written {
            self.written_first.entry(table.clone()).or_insert(w);
            self.written_last.insert(table, w);
        }
        self.samples += u64::from(any);
        any
    }

    /// Each table's bytes written between the first scrape and the last.
    pub fn written(&self) -> BTreeMap<String, Written> {
        self.written_last
            .iter()
            .map(|(t, last)| (t.clone(), last.since(self.written_first.get(t).copied().unwrap_or_default())))
            .collect()
    }

    /// The report's `details.store`: `null` when no scrape held the store's gauges.
    pub fn details(&self) -> serde_json::Value {
        if self.samples == 0 {
            return serde_json::Value::Null;
        }
        let mib = |b: u64| (b as f64 / 1_048_576.0 * 10.0).round() / 10.0;
        let written = self.written();
        let as_mib = |w: &Written| serde_json::json!({"flushed": mib(w.flushed), "compacted": mib(w.compacted)});
        serde_json::json!({
            "samples": self.samples,
            "l0_tables_max": self.l0_tables_max,
            "flushes_queued_max": self.flushes_queued_max,
            "journal_files_max": self.journal_files_max,
            "disk_mib": self.disk_bytes.iter().map(|(t, b)| (t.clone(), mib(*b))).collect::<BTreeMap<_, _>>(),
            "disk_mib_total": mib(self.disk_bytes.values().sum()),
            "written_mib": written.iter().map(|(t, w)| (t.clone(), as_mib(w))).collect::<BTreeMap<_, _>>(),
            "written_mib_total": as_mib(&Written::sum(written.values())),
            // A run's minute catches a table's big merges or misses them; since the store
            // opened (a preload included, when it ran in the same pipeline) they even out.
            "written_mib_since_open": self.written_last.iter().map(|(t, w)| (t.clone(), as_mib(w))).collect::<BTreeMap<_, _>>(),
            "written_mib_since_open_total": as_mib(&Written::sum(self.written_last.values())),
        })
    }
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

    /// Every way an acceptance and the events of one command can meet.
    #[test]
    fn the_ledger_resolves_each_accepted_command_once() {
        let now = Instant::now();
        let v7 = |n: u32| CommandId::of(format!("0190a1b2-c3d4-7{n:03x}-8000-000000000000").as_bytes());
        let keyed = |n: u32| CommandId::of(format!("0190a1b2-c3d4-5{n:03x}-8000-000000000000").as_bytes());
        assert!(!v7(1).repeatable && keyed(1).repeatable && CommandId::of(b"chosen-by-a-producer").repeatable);
        let mut l = Ledger::default();

        // Accepted, then its event. (A second event of it, seen apart from the first, would
        // wait in the ledger as unmatched: the watcher skips only those that follow the first.)
        assert!(l.accept(v7(1)));
        assert_eq!((l.accepted(), l.resolved(), l.unresolved()), (1, 0, 1));
        assert!(l.event(v7(1), now), "the first event");
        assert!(l.event(keyed(9), now), "an unknown command's first event");
        assert_eq!(l.unmatched(), 1, "it waits for an acceptance");
        assert_eq!((l.accepted(), l.resolved(), l.unresolved()), (1, 1, 0));

        // The event before the acknowledgement.
        assert!(l.event(v7(2), now));
        assert_eq!((l.resolved(), l.unresolved()), (1, 0));
        assert!(l.accept(v7(2)));
        assert_eq!((l.accepted(), l.resolved(), l.unresolved()), (2, 2, 0));

        // A payment retried after it was resolved: no new command, nothing to wait for, and
        // the original's events seen again change nothing.
        assert!(l.accept(keyed(3)));
        assert!(l.event(keyed(3), now));
        assert!(!l.accept(keyed(3)), "the retry");
        assert!(!l.event(keyed(3), now), "an event seen again");
        assert_eq!((l.accepted(), l.resolved(), l.unresolved()), (3, 3, 0));

        // Retried while still unresolved: one command, resolved once.
        assert!(l.accept(keyed(4)));
        assert!(!l.accept(keyed(4)));
        assert!(l.event(keyed(4), now));
        assert_eq!((l.accepted(), l.resolved(), l.unresolved()), (4, 4, 0));

        // Accepted, never seen: the loss.
        assert!(l.accept(v7(5)));
        assert!(l.accept(keyed(6)));
        assert_eq!((l.accepted(), l.resolved(), l.unresolved()), (6, 4, 2));
        assert_eq!(l.unmatched(), 1, "keyed(9) was never accepted");
        assert_eq!(l.last_new(), Some(now));
    }

    #[test]
    fn scrapes_counters() {
        let text = "# HELP x\nbillstream_processor_messages_total{outcome=\"applied\"} 42\n";
        assert_eq!(processor_counter(text, "applied"), 42);
        assert_eq!(processor_counter(text, "rejected"), 0);
    }

    /// Maxima over the scrapes, disk sizes from the last one, nothing from other metrics.
    #[test]
    fn store_samples_keep_maxima_and_the_last_sizes() {
        let scrape = |l0_inv: u64, l0_keyed: u64, disk: u64, flushes: u64| {
            format!(
                "# HELP billstream_store_l0_tables Disk tables in level 0\n\
                 # TYPE billstream_store_l0_tables gauge\n\
                 billstream_store_l0_tables{{table=\"invoices\"}} {l0_inv}\n\
                 billstream_store_l0_tables{{table=\"commands_keyed\"}} {l0_keyed}\n\
                 billstream_store_disk_bytes{{table=\"invoices\"}} {disk}\n\
                 billstream_store_flushes_queued {flushes}\n\
                 billstream_store_journal_files 3\n\
                 billstream_processor_messages_total{{outcome=\"applied\"}} 99\n"
            )
        };
        let mut s = StoreSamples::default();
        assert_eq!(s.details(), serde_json::Value::Null);
        assert!(!s.add("billstream_processor_batches_total 4\n"), "no store gauges in this scrape");
        assert!(s.add(&scrape(7, 2, 3 << 20, 1)));
        assert!(s.add(&scrape(3, 9, 5 << 20, 0)));
        let d = s.details();
        assert_eq!(d["samples"], 2);
        assert_eq!(d["l0_tables_max"]["invoices"], 7);
        assert_eq!(d["l0_tables_max"]["commands_keyed"], 9);
        assert_eq!(d["flushes_queued_max"], 1);
        assert_eq!(d["journal_files_max"], 3);
        assert_eq!(d["disk_mib"]["invoices"], 5.0);
        assert_eq!(d["disk_mib_total"], 5.0);
        assert_eq!(d["written_mib_total"], serde_json::json!({"flushed": 0.0, "compacted": 0.0}), "no counts scraped");
    }

    /// Bytes written over the run: the last scrape's counts less the first's, per table; a
    /// table first seen later counts from there (what it wrote before is not the run's), and
    /// counts that went down (the pipeline restarted) count from the restart.
    #[test]
    fn store_samples_count_what_was_written_between_the_first_scrape_and_the_last() {
        const MIB: u64 = 1 << 20;
        let counts = |rows: &[(&str, u64, u64)]| {
            rows.iter()
                .map(|(t, f, c)| {
                    format!(
                        "billstream_store_flushed_bytes_total{{table=\"{t}\"}} {f}\n\
                         billstream_store_compacted_bytes_total{{table=\"{t}\"}} {c}\n"
                    )
                })
                .collect::<String>()
        };
        let mut s = StoreSamples::default();
        assert!(s.add(&counts(&[("invoices", 10 * MIB, 40 * MIB), ("commands_keyed", 3 * MIB, 20 * MIB)])));
        assert!(s.add(&counts(&[("invoices", 11 * MIB, 41 * MIB), ("commands_keyed", 4 * MIB, 22 * MIB)])));
        assert!(s.add(&counts(&[
            ("invoices", 14 * MIB, 52 * MIB),
            ("commands_keyed", 5 * MIB, 28 * MIB),
            ("audit_log", 9 * MIB, 0),
        ])));
        let d = s.details();
        assert_eq!(d["written_mib"]["invoices"], serde_json::json!({"flushed": 4.0, "compacted": 12.0}));
        assert_eq!(d["written_mib"]["commands_keyed"], serde_json::json!({"flushed": 2.0, "compacted": 8.0}));
        assert_eq!(d["written_mib"]["audit_log"], serde_json::json!({"flushed": 0.0, "compacted": 0.0}), "seen once");
        assert_eq!(d["written_mib_total"], serde_json::json!({"flushed": 6.0, "compacted": 20.0}));
        assert_eq!(d["written_mib_since_open"]["invoices"], serde_json::json!({"flushed": 14.0, "compacted": 52.0}));
        assert_eq!(d["written_mib_since_open_total"], serde_json::json!({"flushed": 28.0, "compacted": 80.0}));

        assert!(s.add(&counts(&[("invoices", 2 * MIB, MIB)])), "a restarted pipeline");
        assert_eq!(s.details()["written_mib"]["invoices"], serde_json::json!({"flushed": 2.0, "compacted": 1.0}));
    }
}
