//! One batch of raw command messages in; mutations, events and DLQ records out.
//!
//! All the processor's domain work happens here, against the store's reads and two overlays:
//! state changed earlier in the same batch, and state of earlier batches whose commit is
//! still in flight (the processor applies batch N+1 while N is published and committed).
//! Nothing is written: the caller publishes the events and commits the mutations, offsets
//! included, in batch order, and reports each commit back with [`Applier::committed`].

use crate::domain::{self, Decision, Invoice, InvoiceStatus, Rejection, ids};
use crate::store::{
    AuditEntry, AuditEvent, CommandState, CommandStatus, HotStore, MonthKey, Mutation, OpenItem, Tenant, Totals, TotalsKey,
};
use crate::StoreError;
use billstream_schemas::topics::{self, bucket_of};
use billstream_schemas::{CommandEnvelope, Date, Event, EventEnvelope, SchemaCatalog, SchemaError};
use rust_decimal::Decimal;
use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;

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
    /// Key.
    pub key: Vec<u8>,
    /// Value.
    pub payload: Vec<u8>,
    /// Headers: shared by the events of one command (its correlation id), so an event costs
    /// a reference count, not a vector and a string (they were ~2 % of the processor thread).
    pub headers: Arc<[(&'static str, String)]>,
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
    commands: HashSet<(String, String)>,
    invoices: HashMap<(String, String), Invoice>,
    totals: HashMap<TotalsKey, Totals>,
    months: HashMap<MonthKey, Decimal>,
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

/// An invoice as loaded from the store and as changed in this batch.
struct Working {
    /// As the store (or an uncommitted batch) has it.
    stored: Option<Invoice>,
    /// After this batch's commands, once one of them changed it.
    current: Option<Invoice>,
    bucket: u32,
}

impl Working {
    /// The invoice as the next command sees it.
    fn latest(&self) -> Option<&Invoice> {
        self.current.as_ref().or(self.stored.as_ref())
    }
}

/// Applies batches. Keeps a cache of tenants (which never change once created) and what
/// applied batches changed until their commit is confirmed.
pub struct Applier {
    store: Arc<dyn HotStore>,
    catalog: Arc<SchemaCatalog>,
    cluster_id: String,
    topic: String,
    tenants: HashMap<String, Tenant>,
    uncommitted: VecDeque<Uncommitted>,
    next_seq: u64,
}

impl Applier {
    /// An applier writing offsets for `topic` of `cluster_id`.
    pub fn new(store: Arc<dyn HotStore>, catalog: Arc<SchemaCatalog>, cluster_id: String, topic: String) -> Self {
        Applier { store, catalog, cluster_id, topic, tenants: HashMap::new(), uncommitted: VecDeque::new(), next_seq: 1 }
    }

    /// Every batch up to `seq` is durable in the store: stop overlaying it.
    pub fn committed(&mut self, seq: u64) {
        while self.uncommitted.front().is_some_and(|u| u.seq <= seq) {
            self.uncommitted.pop_front();
        }
    }

    async fn is_known_command(&self, key: &(String, String)) -> Result<bool, StoreError> {
        if self.uncommitted.iter().any(|u| u.commands.contains(key)) {
            return Ok(true);
        }
        Ok(self.store.get_command(&key.0, &key.1).await?.is_some())
    }

    async fn latest_invoice(&self, slot: &(String, String)) -> Result<Option<Invoice>, StoreError> {
        match self.uncommitted.iter().rev().find_map(|u| u.invoices.get(slot)) {
            Some(inv) => Ok(Some(inv.clone())),
            None => self.store.get_invoice(&slot.0, &slot.1).await,
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
        let mut invoices: HashMap<(String, String), Working> = HashMap::with_capacity(n);
        let mut seen_commands: HashSet<(String, String)> = HashSet::with_capacity(n);

        for m in messages {
            out.next_offsets.insert(m.partition, m.offset + 1);
            let payload = m.payload.unwrap_or_default();
            let cmd = match self.decode(payload).await? {
                Ok(cmd) => cmd,
                Err(e) => {
                    out.dlq.push(self.dlq_record(m, e.class(), &e.to_string()));
                    out.dlq_classes.push(e.class());
                    out.counts.dlq += 1;
                    continue;
                }
            };
            let key = m.key.map(<[u8]>::to_vec).unwrap_or_else(|| cmd.tenant_id.as_bytes().to_vec());
            let cmd_key = (cmd.tenant_id.clone(), cmd.command_id.clone());
            if seen_commands.contains(&cmd_key) || self.is_known_command(&cmd_key).await? {
                out.counts.duplicate += 1;
                continue;
            }
            seen_commands.insert(cmd_key);

            let decision = match self.tenant(&cmd.tenant_id).await? {
                None => Decision::Rejected(Rejection {
                    code: "unknown_tenant".into(),
                    message: format!("tenant {:?} does not exist", cmd.tenant_id),
                }),
                Some(tenant) => {
                    let working = match invoices.entry((cmd.tenant_id.clone(), cmd.payload.invoice_id().to_string())) {
                        Entry::Occupied(e) => e.into_mut(),
                        Entry::Vacant(e) => {
                            let stored = self.latest_invoice(e.key()).await?;
                            let bucket = bucket_of(&e.key().1, tenant.buckets);
                            e.insert(Working { stored, current: None, bucket })
                        }
                    };
                    let decision = domain::decide(working.latest(), &cmd);
                    match decision {
                        Decision::Accepted { invoice, events } => {
                            let audit = self.audit(&cmd, &events);
                            match self.encode_events(&cmd, &key, events) {
                                Ok(records) => {
                                    working.current = Some(invoice);
                                    out.events.extend(records);
                                    out.mutations.push(audit);
                                    self.record(cmd, m, CommandState::Applied, &mut out);
                                    out.counts.applied += 1;
                                    continue;
                                }
                                Err(e) => Decision::Rejected(Rejection { code: "unencodable".into(), message: e.to_string() }),
                            }
                        }
                        rejected => rejected,
                    }
                }
            };
            let Decision::Rejected(r) = decision else { continue };
            let event = Event::CommandRejected {
                command_type: cmd.payload.type_name().into(),
                invoice_id: Some(cmd.payload.invoice_id().to_string()),
                code: r.code.clone(),
                message: r.message.clone(),
            };
            // A rejection event holds only strings; it always encodes.
            out.mutations.push(self.audit(&cmd, std::slice::from_ref(&event)));
            out.events.extend(self.encode_events(&cmd, &key, vec![event]).unwrap_or_default());
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

    fn encode_events(&self, cmd: &CommandEnvelope, key: &[u8], events: Vec<Event>) -> Result<Vec<OutRecord>, SchemaError> {
        let headers: Arc<[(&'static str, String)]> = match &cmd.correlation_id {
            Some(c) => Arc::new([(topics::HEADER_CORRELATION_ID, c.clone())]),
            None => Arc::default(),
        };
        let mut records = Vec::with_capacity(events.len());
        let mut events = events.into_iter().enumerate();
        let Some((_, first)) = events.next() else { return Ok(records) };
        // One envelope for all of a command's events: only the id and the event change.
        let mut envelope = EventEnvelope {
            event_id: ids::event_id(&cmd.command_id, 0),
            command_id: cmd.command_id.clone(),
            tenant_id: cmd.tenant_id.clone(),
            correlation_id: cmd.correlation_id.clone(),
            occurred_at_ms: cmd.issued_at_ms,
            event: first,
        };
        loop {
            records.push(OutRecord { key: key.to_vec(), payload: self.catalog.encode_event(&envelope)?, headers: headers.clone() });
            let Some((i, next)) = events.next() else { return Ok(records) };
            envelope.event_id = ids::event_id(&cmd.command_id, i);
            envelope.event = next;
        }
    }

    fn audit(&self, cmd: &CommandEnvelope, events: &[Event]) -> Mutation {
        let events = events
            .iter()
            .map(|e| AuditEvent {
                kind: e.type_name().into(),
                detail: match e {
                    Event::InvoiceCreated { total, currency, .. } => format!("total {total} {currency}"),
                    Event::PaymentApplied { amount, currency, .. } => format!("payment {amount} {currency}"),
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
        invoices: HashMap<(String, String), Working>,
        mutations: &mut Vec<Mutation>,
        changed: &mut Uncommitted,
    ) -> Result<(), StoreError> {
        let mut totals: HashMap<TotalsKey, Totals> = HashMap::new();
        let mut months: HashMap<MonthKey, Decimal> = HashMap::new();
        for (slot, w) in invoices {
            let Some(current) = w.current else { continue };
            let stored = w.stored;
            let key = TotalsKey { tenant_id: current.tenant_id.clone(), bucket: w.bucket, currency: current.currency };
            if !totals.contains_key(&key) {
                let t = self.latest_totals(&key).await?;
                totals.insert(key.clone(), t);
            }
            if let Some(t) = totals.get_mut(&key) {
                if let Some(s) = &stored {
                    t.counts[status_index(s.status)] = t.counts[status_index(s.status)].saturating_sub(1);
                    t.outstanding -= outstanding(s);
                }
                t.counts[status_index(current.status)] += 1;
                t.outstanding += outstanding(&current);
            }
            let already_paid = stored.as_ref().map_or(0, |s| s.payments.len());
            for p in current.payments.iter().skip(already_paid) {
                let mk = MonthKey {
                    tenant_id: current.tenant_id.clone(),
                    year_month: p.received_on.year_month(),
                    bucket: w.bucket,
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
            if let Some(s) = stored.as_ref().filter(|s| s.status == InvoiceStatus::Open) {
                mutations.push(Mutation::RemoveOpenItem {
                    tenant_id: s.tenant_id.clone(),
                    due_date: s.due_date,
                    invoice_id: s.invoice_id.clone(),
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
            changed.invoices.insert(slot, current.clone());
            mutations.push(Mutation::PutInvoice {
                previous_status: stored.map(|s| s.status),
                invoice: current,
                bucket: w.bucket,
            });
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
            key: m.key.map(<[u8]>::to_vec).unwrap_or_default(),
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

fn status_index(s: InvoiceStatus) -> usize {
    s as usize
}

/// What an invoice adds to "outstanding": its balance while open.
fn outstanding(inv: &Invoice) -> Decimal {
    if inv.status == InvoiceStatus::Open { inv.balance_due() } else { Decimal::ZERO }
}
