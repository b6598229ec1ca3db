//! One batch of raw command messages in; mutations, events and DLQ records out.
//!
//! All the processor's domain work happens here, against the store's reads and two overlays:
//! state changed earlier in the same batch, and state of earlier batches whose commit is
//! still in flight (the processor applies batch N+1 while N is published and committed).
//! Nothing is written: the caller publishes the events and commits the mutations, offsets
//! included, in batch order, and reports each commit back with [`Applier::committed`].

use crate::domain::{self, Invoice, InvoiceStatus, Rejection, ids};
use crate::store::{
    AuditEntry, AuditEvent, CommandState, CommandStatus, HotStore, MonthKey, Mutation, OpenItem, Tenant, Totals, TotalsKey,
};
use crate::StoreError;
use billstream_schemas::topics::{self, bucket_of};
use billstream_schemas::money::push_decimal;
use billstream_schemas::{CommandEnvelope, Currency, Date, Event, EventHead, SchemaCatalog, SchemaError};
use rust_decimal::Decimal;
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::hash::BuildHasher;
use std::sync::{Arc, OnceLock};

/// The applier's hash maps and sets: foldhash, seeded at random. SipHash (std's default) was
/// 7 % of the processor thread; the keys are producers' ids, so a hash with a fixed seed
/// would let a producer choose ids that collide.
type Map<K, V> = HashMap<K, V, RandomSeeded>;
type Set<K> = HashSet<K, RandomSeeded>;

/// foldhash with its process-wide seed drawn from the operating system's randomness (through
/// std's `RandomState`) instead of foldhash's own (addresses and the clock), and a new seed
/// per map.
#[derive(Clone)]
struct RandomSeeded(foldhash::fast::SeedableRandomState);

impl Default for RandomSeeded {
    fn default() -> Self {
        static SHARED: OnceLock<foldhash::SharedSeed> = OnceLock::new();
        let random = || BuildHasher::hash_one(&std::hash::RandomState::new(), 0u64);
        let shared = SHARED.get_or_init(|| foldhash::SharedSeed::from_u64(random()));
        RandomSeeded(foldhash::fast::SeedableRandomState::with_seed(random(), shared))
    }
}

impl BuildHasher for RandomSeeded {
    type Hasher = foldhash::fast::FoldHasher<'static>;

    fn build_hasher(&self) -> Self::Hasher {
        self.0.build_hasher()
    }
}

/// A (tenant, id) pair as one key: the tenant's length in four bytes, the tenant, the id (the
/// length keeps ("ab", "c") and ("a", "bc") apart). One allocation per key kept instead of two
/// strings, and none to look one up: [`pair_key`] writes it into a reused buffer.
type PairKey = Box<[u8]>;

/// Writes the [`PairKey`] of `tenant` and `id` into `buf`.
fn pair_key<'b>(buf: &'b mut Vec<u8>, tenant: &str, id: &str) -> &'b [u8] {
    buf.clear();
    // A Kafka message is far shorter than 4 GiB.
    buf.extend_from_slice(&(tenant.len() as u32).to_le_bytes());
    buf.extend_from_slice(tenant.as_bytes());
    buf.extend_from_slice(id.as_bytes());
    buf
}

/// A record's headers (name, value).
pub type Headers = Arc<[(&'static str, String)]>;

/// The key and headers of the last command's events, handed on to the next command's when
/// they are the same (consecutive commands of one tenant and one request): three allocations
/// fewer per command (the key, the header list and its string) and one per event (its key).
#[derive(Default)]
struct SharedParts {
    key: Option<Arc<[u8]>>,
    headers: Option<Headers>,
}

impl SharedParts {
    fn get(&mut self, key: &[u8], correlation_id: Option<&str>) -> (Arc<[u8]>, Headers) {
        let key = match &self.key {
            Some(k) if **k == *key => k.clone(),
            _ => self.key.insert(Arc::from(key)).clone(),
        };
        let headers = match (correlation_id, &self.headers) {
            (None, _) => Arc::default(),
            (Some(c), Some(h)) if h.first().is_some_and(|(_, v)| v == c) => h.clone(),
            (Some(c), _) => self.headers.insert(Arc::new([(topics::HEADER_CORRELATION_ID, c.to_string())])).clone(),
        };
        (key, headers)
    }
}

/// A consumed message, borrowed from the consumer.
#[derive(Debug, Clone, Copy)]
pub struct RawMessage<'a> {
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
    /// Key bytes.
    pub key: Option<&'a [u8]>,
    /// Value bytes.
    pub payload: Option<&'a [u8]>,
}

/// A record to publish.
#[derive(Debug, Clone, PartialEq)]
pub struct OutRecord {
    /// Key: shared by the events of consecutive commands with the same key.
    pub key: Arc<[u8]>,
    /// Value.
    pub payload: Vec<u8>,
    /// Headers: shared by the events of consecutive commands with the same correlation id
    /// (one HTTP request's), so an event costs a reference count, not a vector and a string
    /// (they were ~2 % of the processor thread).
    pub headers: Headers,
}

/// Messages of a batch by outcome.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Applied.
    pub applied: u64,
    /// Rejected by a domain rule.
    pub rejected: u64,
    /// Already applied or rejected before (a retry or a replay).
    pub duplicate: u64,
    /// Sent to the DLQ.
    pub dlq: u64,
}

/// What one batch produced.
#[derive(Debug, Default)]
pub struct BatchOutput {
    /// To commit atomically (offsets included).
    pub mutations: Vec<Mutation>,
    /// To publish to `billing.events` before committing.
    pub events: Vec<OutRecord>,
    /// To publish to `billing.dlq` before committing.
    pub dlq: Vec<OutRecord>,
    /// Error classes of the DLQ records, for metrics.
    pub dlq_classes: Vec<&'static str>,
    /// Outcome counts.
    pub counts: Counts,
    /// Next offset per partition after this batch.
    pub next_offsets: BTreeMap<i32, i64>,
    /// Position of this batch in the applier's sequence; pass it to [`Applier::committed`]
    /// once the mutations are durable.
    pub seq: u64,
}

impl BatchOutput {
    /// How many records it publishes: its events, then its DLQ records.
    pub fn records(&self) -> usize {
        self.events.len() + self.dlq.len()
    }

    /// The commands this batch resolved (applied or rejected), with their `issued_at`: the
    /// outcome rows it writes.
    pub fn resolved(&self) -> impl Iterator<Item = (&str, i64)> {
        self.mutations.iter().filter_map(|m| match m {
            Mutation::PutCommand { command_id, status, .. } => Some((command_id.as_str(), status.issued_at_ms)),
            _ => None,
        })
    }
}

/// What a batch changed, kept until its commit is confirmed: the store does not have it yet,
/// and the next batches must see it.
#[derive(Default)]
struct Uncommitted {
    seq: u64,
    /// (tenant, command id) of the commands it resolved.
    commands: Set<PairKey>,
    /// (tenant, invoice id) to the invoice as the batch left it (shared with its mutation).
    invoices: Map<PairKey, Arc<Invoice>>,
    totals: Map<TotalsKey, Totals>,
    months: Map<MonthKey, Decimal>,
}

/// Why a batch could not be processed now (infrastructure, never input): retry it.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The store failed a read.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The schema registry is unreachable.
    #[error("schema registry: {0}")]
    Registry(SchemaError),
}

/// An invoice of this batch: loaded from the store (or an uncommitted batch), then changed
/// in place by this batch's commands.
struct Working {
    /// The invoice as the next command sees it.
    invoice: Option<Invoice>,
    /// What it counted for before this batch; `None`: it did not exist.
    before: Option<Before>,
    /// A command of this batch changed it.
    changed: bool,
    bucket: u32,
}

/// What an invoice counted for before the batch: its share of the totals, how many of its
/// payments are already in the month sums, and its open-by-due row.
#[derive(Clone, Copy)]
struct Before {
    status: InvoiceStatus,
    outstanding: Decimal,
    payments: usize,
    due_date: Date,
}

impl Before {
    fn of(inv: &Invoice) -> Self {
        Before { status: inv.status, outstanding: outstanding(inv), payments: inv.payments.len(), due_date: inv.due_date }
    }
}

/// Applies batches. Keeps a cache of tenants (which never change once created) and what
/// applied batches changed until their commit is confirmed.
pub struct Applier {
    store: Arc<dyn HotStore>,
    catalog: Arc<SchemaCatalog>,
    cluster_id: String,
    topic: String,
    tenants: Map<String, Tenant>,
    uncommitted: VecDeque<Uncommitted>,
    next_seq: u64,
}

impl Applier {
    /// An applier writing offsets for `topic` of `cluster_id`.
    pub fn new(store: Arc<dyn HotStore>, catalog: Arc<SchemaCatalog>, cluster_id: String, topic: String) -> Self {
        Applier { store, catalog, cluster_id, topic, tenants: Map::default(), uncommitted: VecDeque::new(), next_seq: 1 }
    }

    /// Every batch up to `seq` is durable in the store: stop overlaying it.
    pub fn committed(&mut self, seq: u64) {
        while self.uncommitted.front().is_some_and(|u| u.seq <= seq) {
            self.uncommitted.pop_front();
        }
    }

    /// `key` is the command's [`PairKey`].
    async fn is_known_command(&self, key: &[u8], cmd: &CommandEnvelope) -> Result<bool, StoreError> {
        if self.uncommitted.iter().any(|u| u.commands.contains(key)) {
            return Ok(true);
        }
        Ok(self.store.get_command(&cmd.tenant_id, &cmd.command_id).await?.is_some())
    }

    /// `slot` is the invoice's [`PairKey`].
    async fn latest_invoice(&self, slot: &[u8], tenant_id: &str, invoice_id: &str) -> Result<Option<Invoice>, StoreError> {
        match self.uncommitted.iter().rev().find_map(|u| u.invoices.get(slot)) {
            Some(inv) => Ok(Some(Invoice::clone(inv))),
            None => self.store.get_invoice(tenant_id, invoice_id).await,
        }
    }

    async fn latest_totals(&self, key: &TotalsKey) -> Result<Totals, StoreError> {
        match self.uncommitted.iter().rev().find_map(|u| u.totals.get(key)) {
            Some(t) => Ok(t.clone()),
            None => Ok(self.store.get_totals(key).await?.unwrap_or_default()),
        }
    }

    async fn latest_month_paid(&self, key: &MonthKey) -> Result<Decimal, StoreError> {
        match self.uncommitted.iter().rev().find_map(|u| u.months.get(key)) {
            Some(v) => Ok(*v),
            None => Ok(self.store.get_month_paid(key).await?.unwrap_or_default()),
        }
    }

    async fn tenant(&mut self, tenant_id: &str) -> Result<Option<Tenant>, StoreError> {
        if let Some(t) = self.tenants.get(tenant_id) {
            return Ok(Some(t.clone()));
        }
        // Unknown tenants are not cached: one may be created a moment later.
        let t = self.store.get_tenant(tenant_id).await?;
        if let Some(t) = &t {
            self.tenants.insert(tenant_id.to_string(), t.clone());
        }
        Ok(t)
    }

    async fn decode(&self, bytes: &[u8]) -> Result<Result<CommandEnvelope, SchemaError>, ApplyError> {
        match self.catalog.decode_command(bytes) {
            Err(SchemaError::UnknownSchema(id)) if self.catalog.has_registry() => match self.catalog.fetch(id).await {
                Ok(()) => Ok(self.catalog.decode_command(bytes)),
                Err(e) if e.is_retryable() => Err(ApplyError::Registry(e)),
                Err(e) => Ok(Err(e)),
            },
            other => Ok(other),
        }
    }

    /// Processes messages (in partition order) into a [`BatchOutput`].
    pub async fn apply(&mut self, messages: &[RawMessage<'_>]) -> Result<BatchOutput, ApplyError> {
        // Sized for the batch up front: growing the maps rehashed every key (3 % of the
        // applier's instructions).
        let n = messages.len();
        let mut out = BatchOutput { mutations: Vec::with_capacity(3 * n), events: Vec::with_capacity(n), ..BatchOutput::default() };
        let mut invoices: Map<PairKey, Working> = Map::with_capacity_and_hasher(n, RandomSeeded::default());
        let mut seen_commands: Set<PairKey> = Set::with_capacity_and_hasher(n, RandomSeeded::default());
        let mut buf = Vec::with_capacity(128);
        let mut shared = SharedParts::default();

        for m in messages {
            out.next_offsets.insert(m.partition, m.offset + 1);
            let payload = m.payload.unwrap_or_default();
            let mut cmd = match self.decode(payload).await? {
                Ok(cmd) => cmd,
                Err(e) => {
                    out.dlq.push(self.dlq_record(m, e.class(), &e.to_string()));
                    out.dlq_classes.push(e.class());
                    out.counts.dlq += 1;
                    continue;
                }
            };
            let cmd_key = pair_key(&mut buf, &cmd.tenant_id, &cmd.command_id);
            if seen_commands.contains(cmd_key) || self.is_known_command(cmd_key, &cmd).await? {
                out.counts.duplicate += 1;
                continue;
            }
            seen_commands.insert(cmd_key.into());
            let parts = shared.get(m.key.unwrap_or(cmd.tenant_id.as_bytes()), cmd.correlation_id.as_deref());

            let r = match self.tenant(&cmd.tenant_id).await? {
                None => Rejection { code: "unknown_tenant".into(), message: format!("tenant {:?} does not exist", cmd.tenant_id) },
                Some(tenant) => {
                    let invoice_id = cmd.payload.invoice_id();
                    let slot = pair_key(&mut buf, &cmd.tenant_id, invoice_id);
                    let working = match invoices.get_mut(slot) {
                        Some(w) => w,
                        None => {
                            let invoice = self.latest_invoice(slot, &cmd.tenant_id, invoice_id).await?;
                            let before = invoice.as_ref().map(Before::of);
                            let w = Working { invoice, before, changed: false, bucket: bucket_of(invoice_id, tenant.buckets) };
                            invoices.entry(slot.into()).or_insert(w)
                        }
                    };
                    // Decided against the invoice as it is, changed only once the events are
                    // encoded: a command that cannot be published changes nothing.
                    // Takes the payload's text the change keeps (descriptions, metadata, a
                    // payment's method): what is read of `cmd` below is its ids and head.
                    match domain::plan(working.invoice.as_ref(), &mut cmd) {
                        Ok((change, events)) => match self.encode_events(&cmd, &parts, &events, &mut out.events) {
                            Ok(()) => {
                                change.apply(&mut working.invoice, cmd.issued_at_ms);
                                working.changed = true;
                                out.mutations.push(self.audit(&cmd, &events));
                                self.record(cmd, m, CommandState::Applied, &mut out);
                                out.counts.applied += 1;
                                continue;
                            }
                            Err(e) => Rejection { code: "unencodable".into(), message: e.to_string() },
                        },
                        Err(r) => r,
                    }
                }
            };
            let event = Event::CommandRejected {
                command_type: cmd.payload.type_name().into(),
                invoice_id: Some(cmd.payload.invoice_id().to_string()),
                code: r.code.clone(),
                message: r.message.clone(),
            };
            let events = std::slice::from_ref(&event);
            out.mutations.push(self.audit(&cmd, events));
            // A rejection event holds only strings; it always encodes.
            let _ = self.encode_events(&cmd, &parts, events, &mut out.events);
            self.record(cmd, m, CommandState::Rejected { code: r.code, message: r.message }, &mut out);
            out.counts.rejected += 1;
        }

        let mut changed = Uncommitted { commands: seen_commands, ..Uncommitted::default() };
        self.fold_invoices(invoices, &mut out.mutations, &mut changed).await?;
        for (&partition, &next_offset) in &out.next_offsets {
            out.mutations.push(Mutation::SetOffset {
                cluster_id: self.cluster_id.clone(),
                topic: self.topic.clone(),
                partition,
                next_offset,
            });
        }
        out.seq = self.next_seq;
        self.next_seq += 1;
        changed.seq = out.seq;
        self.uncommitted.push_back(changed);
        Ok(out)
    }

    /// The command's outcome row; the command's last use, so it gives up its ids.
    fn record(&self, cmd: CommandEnvelope, m: &RawMessage<'_>, state: CommandState, out: &mut BatchOutput) {
        let (command_type, invoice_id) = (cmd.payload.type_name().into(), cmd.payload.invoice_id().into());
        out.mutations.push(Mutation::PutCommand {
            tenant_id: cmd.tenant_id,
            command_id: cmd.command_id,
            status: CommandStatus {
                command_type,
                invoice_id,
                state,
                issued_at_ms: cmd.issued_at_ms,
                partition: m.partition,
                offset: m.offset,
            },
        });
    }

    /// Appends the records of a command's events to `records`; on error, none of them.
    fn encode_events(
        &self,
        cmd: &CommandEnvelope,
        parts: &(Arc<[u8]>, Headers),
        events: &[Event],
        records: &mut Vec<OutRecord>,
    ) -> Result<(), SchemaError> {
        let (key, headers) = parts;
        let start = records.len();
        let mut event_id = [0; 36];
        for (i, event) in events.iter().enumerate() {
            // Encoded from the command's own strings and an id on the stack: no envelope.
            let head = EventHead {
                event_id: ids::event_id_in(&cmd.command_id, i, &mut event_id),
                command_id: &cmd.command_id,
                tenant_id: &cmd.tenant_id,
                correlation_id: cmd.correlation_id.as_deref(),
                occurred_at_ms: cmd.issued_at_ms,
            };
            match self.catalog.encode_event_parts(&head, event) {
                Ok(payload) => records.push(OutRecord { key: key.clone(), payload, headers: headers.clone() }),
                Err(e) => {
                    records.truncate(start);
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    fn audit(&self, cmd: &CommandEnvelope, events: &[Event]) -> Mutation {
        let events = events
            .iter()
            .map(|e| AuditEvent {
                kind: e.type_name().into(),
                detail: match e {
                    Event::InvoiceCreated { total, currency, .. } => amount_detail("total ", *total, *currency),
                    Event::PaymentApplied { amount, currency, .. } => amount_detail("payment ", *amount, *currency),
                    Event::CommandRejected { code, .. } => code.clone(),
                    _ => String::new(),
                },
            })
            .collect();
        Mutation::Audit(AuditEntry {
            tenant_id: cmd.tenant_id.clone(),
            day: Date::from_unix_millis(cmd.issued_at_ms),
            issued_at_ms: cmd.issued_at_ms,
            command_id: cmd.command_id.clone(),
            invoice_id: cmd.payload.invoice_id().into(),
            events,
        })
    }

    /// Turns every changed invoice into its mutations: the invoice, its open-by-due row, and
    /// the totals it moves (its contribution after minus its contribution before).
    async fn fold_invoices(
        &self,
        invoices: Map<PairKey, Working>,
        mutations: &mut Vec<Mutation>,
        changed: &mut Uncommitted,
    ) -> Result<(), StoreError> {
        let mut totals: Map<TotalsKey, Totals> = Map::default();
        let mut months: Map<MonthKey, Decimal> = Map::default();
        for (slot, w) in invoices {
            let Working { invoice: Some(current), before, changed: true, bucket } = w else { continue };
            let key = TotalsKey { tenant_id: current.tenant_id.clone(), bucket, currency: current.currency };
            if !totals.contains_key(&key) {
                let t = self.latest_totals(&key).await?;
                totals.insert(key.clone(), t);
            }
            if let Some(t) = totals.get_mut(&key) {
                if let Some(b) = &before {
                    t.counts[status_index(b.status)] = t.counts[status_index(b.status)].saturating_sub(1);
                    t.outstanding -= b.outstanding;
                }
                t.counts[status_index(current.status)] += 1;
                t.outstanding += outstanding(&current);
            }
            let already_paid = before.map_or(0, |b| b.payments);
            for p in current.payments.iter().skip(already_paid) {
                let mk = MonthKey {
                    tenant_id: current.tenant_id.clone(),
                    year_month: p.received_on.year_month(),
                    bucket,
                    currency: current.currency,
                };
                if !months.contains_key(&mk) {
                    let v = self.latest_month_paid(&mk).await?;
                    months.insert(mk.clone(), v);
                }
                if let Some(v) = months.get_mut(&mk) {
                    *v += p.amount;
                }
            }
            if let Some(b) = before.filter(|b| b.status == InvoiceStatus::Open) {
                mutations.push(Mutation::RemoveOpenItem {
                    tenant_id: current.tenant_id.clone(),
                    due_date: b.due_date,
                    invoice_id: current.invoice_id.clone(),
                });
            }
            if current.status == InvoiceStatus::Open {
                mutations.push(Mutation::PutOpenItem(OpenItem {
                    tenant_id: current.tenant_id.clone(),
                    due_date: current.due_date,
                    invoice_id: current.invoice_id.clone(),
                    currency: current.currency,
                    balance_due: current.balance_due(),
                }));
            }
            let current = Arc::new(current);
            changed.invoices.insert(slot, current.clone());
            mutations.push(Mutation::PutInvoice { previous_status: before.map(|b| b.status), invoice: current, bucket });
        }
        mutations.extend(totals.iter().map(|(k, v)| Mutation::PutTotals(k.clone(), v.clone())));
        mutations.extend(months.iter().map(|(k, v)| Mutation::PutMonthPaid(k.clone(), *v)));
        (changed.totals, changed.months) = (totals, months);
        Ok(())
    }

    fn dlq_record(&self, m: &RawMessage<'_>, class: &'static str, reason: &str) -> OutRecord {
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        OutRecord {
            key: m.key.unwrap_or_default().into(),
            payload: m.payload.map(<[u8]>::to_vec).unwrap_or_default(),
            headers: Arc::new([
                (topics::DLQ_HEADER_CLASS, class.to_string()),
                (topics::DLQ_HEADER_REASON, reason.to_string()),
                (topics::DLQ_HEADER_TOPIC, self.topic.clone()),
                (topics::DLQ_HEADER_PARTITION, m.partition.to_string()),
                (topics::DLQ_HEADER_OFFSET, m.offset.to_string()),
                (topics::DLQ_HEADER_FIRST_SEEN, now_ms.to_string()),
            ]),
        }
    }
}

/// An audit row's detail, "total 12.30 EUR": written without `format!` (it and the
/// amount's `Display` were 3.5 % of the applier's instructions).
fn amount_detail(what: &str, amount: Decimal, currency: Currency) -> String {
    let mut s = String::with_capacity(what.len() + 24);
    s.push_str(what);
    push_decimal(&mut s, amount);
    s.push(' ');
    s.push_str(currency.code());
    s
}

fn status_index(s: InvoiceStatus) -> usize {
    s as usize
}

/// What an invoice adds to "outstanding": its balance while open.
fn outstanding(inv: &Invoice) -> Decimal {
    if inv.status == InvoiceStatus::Open { inv.balance_due() } else { Decimal::ZERO }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audit_details_read_as_before() {
        let eur: Currency = "EUR".parse().expect("EUR");
        for amount in ["12.30", "0.05", "1000", "-3.125"] {
            let amount: Decimal = amount.parse().expect("decimal");
            assert_eq!(amount_detail("total ", amount, eur), format!("total {amount} {eur}"));
        }
        assert_eq!(amount_detail("payment ", Decimal::new(1230, 2), eur), "payment 12.30 EUR");
    }

    #[test]
    fn pair_keys_keep_tenant_and_id_apart() {
        let key = |t: &str, id: &str| pair_key(&mut Vec::new(), t, id).to_vec();
        assert_ne!(key("ab", "c"), key("a", "bc"));
        assert_ne!(key("", "abc"), key("abc", ""));
        assert_eq!(key("t_1", "inv-1"), key("t_1", "inv-1"));
        let mut set: Set<PairKey> = Set::default();
        set.insert(key("a", "bc").into());
        assert!(set.contains(key("a", "bc").as_slice()) && !set.contains(key("ab", "c").as_slice()));
    }

    #[test]
    fn consecutive_commands_share_key_and_headers_only_when_equal() {
        let mut shared = SharedParts::default();
        let (k1, h1) = shared.get(b"t_1", Some("req-1"));
        let (k2, h2) = shared.get(b"t_1", Some("req-1"));
        assert!(Arc::ptr_eq(&k1, &k2) && Arc::ptr_eq(&h1, &h2));
        assert_eq!(&*h1, &[(topics::HEADER_CORRELATION_ID, "req-1".to_string())]);
        let (k3, h3) = shared.get(b"t_2", Some("req-2"));
        assert_eq!((&*k3, &*h3[0].1), (&b"t_2"[..], "req-2"));
        let (_, none) = shared.get(b"t_2", None);
        assert!(none.is_empty());
        let (k4, h4) = shared.get(b"t_2", Some("req-2"));
        assert!(Arc::ptr_eq(&k3, &k4) && Arc::ptr_eq(&h3, &h4), "a command without headers between two with");
    }

    #[test]
    fn every_map_gets_its_own_seed() {
        let (a, b) = (RandomSeeded::default(), RandomSeeded::default());
        assert_ne!(a.hash_one("inv-1"), b.hash_one("inv-1"));
        assert_eq!(a.hash_one("inv-1"), a.hash_one("inv-1"));
    }
}
