//! The embedded hot store: fjall, an LSM engine, one keyspace per table.
//!
//! Single-machine by design: one process owns the directory (fjall holds a lock file), and a
//! batch commits atomically through fjall's journal, synced to disk once per batch.

use super::keys::{
    Key, KeyReader, RecentIds, VALUE_VERSION, decode, decode_body, encode, encode_into, hex, split_version, unhex, unknown_version,
};
use super::tagged::{AuditOut, StatusOut, TAGGED, decode_audit, decode_status};
use super::{
    AuditEntry, CommandStatus, HotStore, InvoicePage, MonthKey, Mutation, OpenItem, Tenant, Totals, TotalsKey,
};
use crate::StoreError;
use crate::domain::{Invoice, InvoiceStatus};
use billstream_schemas::{Currency, Date};
use fjall::config::FilterPolicy;
use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode};
use crate::stored_decimal::Amount;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Settings of the embedded store.
#[derive(Debug, Clone)]
pub struct FjallConfig {
    /// Directory of the store.
    pub path: PathBuf,
    /// fsync the journal at each batch commit. Off only for throwaway runs.
    pub sync_commits: bool,
    /// Block cache size in bytes.
    pub cache_bytes: u64,
}

/// The block cache's default size in MiB (`billstream`'s `store.cache_mb` too): once the store
/// holds millions of invoices, the point reads of every command (duplicate check, invoice
/// lookup) miss a 64 MiB cache (docs/performance-log.md).
pub const DEFAULT_CACHE_MB: u64 = 256;

impl FjallConfig {
    /// Defaults for a directory: synced commits, a [`DEFAULT_CACHE_MB`] cache.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        FjallConfig { path: path.into(), sync_commits: true, cache_bytes: DEFAULT_CACHE_MB << 20 }
    }
}

/// The embedded hot store.
pub struct FjallStore {
    db: Database,
    sync_commits: bool,
    invoices: Keyspace,
    locator: Keyspace,
    by_status: Keyspace,
    open_by_due: Keyspace,
    totals: Keyspace,
    month_paid: Keyspace,
    commands: Keyspace,
    keyed_commands: Keyspace,
    audit: Keyspace,
    audit_batches: Keyspace,
    offsets: Keyspace,
    tenants: Keyspace,
    api_keys: Keyspace,
    meta: Keyspace,
    /// The first 64 bits (timestamp and version) of the newest id in `commands`: an id
    /// beyond them is not stored, without a look at the table (see [`ordered_prefix`]).
    newest_ordered: AtomicU64,
    /// `commands_keyed` holds rows keyed as before format 11 ([`command_key`]): a store
    /// upgraded from format 10 or earlier. A derived id's outcome not found under its key is
    /// then looked for under the old one too, one more probe of the table's filters.
    keyed_rows_of_format_10: bool,
    /// Held through each batch write, so `newest_ordered` is persisted in batch order; holds
    /// the number the next batch with audit rows writes them under (see [`audit_key`]).
    writing: Mutex<u64>,
}

impl std::fmt::Debug for FjallStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FjallStore").field("sync_commits", &self.sync_commits).finish()
    }
}

/// The embedded engine's state, as [`FjallStore::engine_stats`] reads it.
#[derive(Debug, Clone)]
pub struct EngineStats {
    /// One entry per table (fjall keyspace).
    pub tables: Vec<TableStats>,
    /// Journal files on disk: the active one and those whose memtables are not flushed yet.
    pub journal_files: usize,
    /// Bytes held in memtables (active and sealed), not yet flushed to tables.
    pub memtable_bytes: u64,
    /// Sealed memtables waiting for a flush.
    pub flushes_queued: usize,
    /// Compactions running now.
    pub compactions_running: usize,
}

/// One table's share of [`EngineStats`].
#[derive(Debug, Clone)]
pub struct TableStats {
    /// The table's (keyspace's) name.
    pub name: &'static str,
    /// Disk tables in level 0: flushed, not merged into level 1 yet. A point read of a key
    /// that is not there checks each one's filter, so a count that keeps growing means reads
    /// slow down and compaction is behind.
    pub l0_tables: usize,
    /// Disk tables in all levels.
    pub tables: usize,
    /// Blob files (values kept apart from the keys: the invoices).
    pub blob_files: usize,
    /// Bytes on disk, blob files included.
    pub disk_bytes: u64,
    /// Bytes of tables and blob files its flushes wrote since the store was opened.
    pub flushed_bytes: u64,
    /// Bytes of tables and blob files its compactions wrote since the store was opened. Over
    /// `flushed_bytes`, what each byte written costs again as the table grows.
    pub compacted_bytes: u64,
}

fn engine(e: fjall::Error) -> StoreError {
    StoreError::Engine(e.to_string())
}

/// The number of the batch that wrote the row, then tenant, day, issue time and command. Batch
/// numbers only grow (the next is one past the newest row's when the store opens), so every
/// batch appends after every row before it: its inserts walk the memtable's hottest path, and
/// flushed tables never overlap, so compaction moves them down instead of rewriting them.
/// Keyed by day and second of issue before the tenant (format 7), each batch inserted across
/// the current second's rows, and tables flushed a moment apart overlapped by that second, so
/// L0 -> L1 rewrote the whole log once; its row cost about 2 us of CPU per command, about half
/// in the committer and half in fjall's workers (docs/performance-log.md). A tenant's day is
/// read through `audit_batches` ([`audit_index_prefix`]): the batches with its rows of the day,
/// then one range each, merged back into issue order.
fn audit_key(k: Key, batch: u64, tenant: &str, day: Date, issued_at_ms: i64, command_id: &str) -> Key {
    audit_batch_prefix(k, batch, tenant, day).i64(issued_at_ms).id(command_id)
}

/// A tenant's rows of one day written by one batch: the prefix of [`audit_key`].
fn audit_batch_prefix(k: Key, batch: u64, tenant: &str, day: Date) -> Key {
    k.u64(batch).id(tenant).i32(day.days())
}

/// One row (no value) per tenant, day and batch that wrote the tenant's audit rows of the day.
/// A batch writes them with [`audit_index_key_of`], from its audit rows' keys.
#[cfg(test)]
fn audit_index_key(k: Key, tenant: &str, day: Date, batch: u64) -> Key {
    audit_index_prefix(k, tenant, day).u64(batch)
}

/// An audit row's tenant and day as its key holds them (see [`audit_key`]): the tenant's id
/// bytes, then the day's four; `None` if it is not such a key.
fn audit_tenant_day(audit_key: &[u8]) -> Option<&[u8]> {
    // After the batch number (a `u64`); the day is an `i32`.
    const AFTER_BATCH: usize = size_of::<u64>();
    let tenant = KeyReader(audit_key.get(AFTER_BATCH..)?).id_bytes()?;
    audit_key.get(AFTER_BATCH..AFTER_BATCH + tenant.len() + size_of::<i32>())
}

/// The index row (`audit_index_key`) of a tenant's day ([`audit_tenant_day`]) in `batch`,
/// made without decoding the tenant's id.
fn audit_index_key_of(tenant_day: &[u8], batch: u64) -> Vec<u8> {
    let (tenant, day) = tenant_day.split_at(tenant_day.len() - 4);
    Key::new().raw(day).raw(tenant).u64(batch).done()
}

/// A tenant's batches of one day: the prefix of its index rows ([`audit_index_key_of`]).
fn audit_index_prefix(k: Key, tenant: &str, day: Date) -> Key {
    k.i32(day.days()).id(tenant)
}

/// Command id first, then tenant (ids are unique per tenant). Read by point lookup only, for
/// every command (the duplicate check). The gateway's ids are time-ordered (UUID v7), so a new
/// id sorts after everything stored: the lookup walks the memtable's hottest path, skips every
/// table by its key range instead of probing its bloom filter, and compaction moves files.
/// With tenant first, every table spanned every tenant's ids and each lookup probed them all
/// (after a 120 s preload: 29 % of the processor thread, 11 % in bloom filters).
/// The outcomes of derived ids (`commands_keyed`) had this layout too until format 10, and
/// a store upgraded from one still holds such rows ([`FjallStore::get_command`] reads them).
fn command_key(k: Key, tenant: &str, command_id: &str) -> Key {
    k.id(command_id).id(tenant)
}

/// What leads the key of a derived id's outcome since format 11 ([`keyed_command_key`]). The
/// keys of format 10 and before ([`command_key`]) begin with an id's tag, never 0, so both
/// layouts share the table without one key meaning two things, and every older row sorts
/// after every newer one.
const KEYED_TENANT_FIRST: u8 = 0;

/// The key of a derived id's outcome (`commands_keyed`): [`KEYED_TENANT_FIRST`], the tenant,
/// the id. These ids are random, so the table is written all over its key space whatever the
/// order, and compaction rewrites its rows again and again as the store grows. With the tenant
/// before the id, rows of one tenant (most of a table's neighbours: there are few tenants and
/// many ids) share its 17 bytes as a prefix the engine writes once per 16 rows: flushed rows
/// 72 -> 58 bytes, compacted and compressed ones 46 -> 41 (400,000 outcomes of 20 tenants),
/// 16-20 % fewer bytes flushed by the table in the harness's runs; the 10x throughput gap not
/// narrowed (docs/performance-log.md, 2026-11-29, late morning). With the id first they shared
/// nothing past the id's first byte or two.
fn keyed_command_key(k: Key, tenant: &str, command_id: &str) -> Key {
    tenant_first(k.u8(KEYED_TENANT_FIRST), tenant).id(command_id)
}

/// The key of a command's outcome in `table` (see [`Table::for_command`]).
fn outcome_key(k: Key, table: Table, tenant: &str, command_id: &str) -> Key {
    match table {
        Table::KeyedCommands => keyed_command_key(k, tenant, command_id),
        _ => command_key(k, tenant, command_id),
    }
}

/// The tables a batch writes, in the order its writes are inserted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Table {
    Invoices,
    Locator,
    ByStatus,
    OpenByDue,
    Totals,
    MonthPaid,
    Commands,
    KeyedCommands,
    Audit,
    AuditIndex,
    Offsets,
}

impl Table {
    /// Every table, in write order.
    const ALL: [Table; 11] = [
        Table::Invoices,
        Table::Locator,
        Table::ByStatus,
        Table::OpenByDue,
        Table::Totals,
        Table::MonthPaid,
        Table::Commands,
        Table::KeyedCommands,
        Table::Audit,
        Table::AuditIndex,
        Table::Offsets,
    ];

    /// The keyspace's name on disk (also what errors call the table).
    fn name(self) -> &'static str {
        match self {
            Table::Invoices => "invoices",
            Table::Locator => "invoice_locator",
            Table::ByStatus => "invoices_by_status",
            Table::OpenByDue => "open_by_due",
            Table::Totals => "tenant_totals",
            Table::MonthPaid => "tenant_month_paid",
            Table::Commands => "commands",
            Table::KeyedCommands => "commands_keyed",
            // One row per command since 0.1 (was one per event, under "audit").
            Table::Audit => "audit_log",
            // Indexed seconds of issue in format 7 ("audit_seconds").
            Table::AuditIndex => "audit_batches",
            Table::Offsets => "offsets",
        }
    }

    /// Where a command's outcome lives: `commands` for time-ordered ids (UUID v7, as the
    /// gateway makes for requests without an Idempotency-Key), `commands_keyed` for any other
    /// id (derived from an Idempotency-Key, or chosen by a producer writing to Kafka directly).
    /// Random ids among the ordered ones would make every table's key range span the newest
    /// ids again.
    fn for_command(ordered_prefix: Option<u64>) -> Table {
        if ordered_prefix.is_some() { Table::Commands } else { Table::KeyedCommands }
    }
}

/// For a time-ordered command id (UUID v7), its first 64 bits: the millisecond timestamp,
/// the version and 12 random bits. `None` for any other id.
///
/// New ids from the gateway are newer than every stored one, so the store keeps the
/// largest prefix written to `commands` (in memory and in `meta`) and answers "not stored"
/// for an id beyond it without a look at the table: that look, a memtable search for every
/// command's duplicate check, was 8 % of the processor thread.
fn ordered_prefix(command_id: &str) -> Option<u64> {
    match uuid::Uuid::try_parse(command_id) {
        Ok(u) if u.get_version_num() == 7 => Some((u.as_u128() >> 64) as u64),
        _ => None,
    }
}

/// On-disk layout of this build. 2: command outcomes split by kind of id and keyed id first,
/// audit log day first, as above (1 had the tenant first everywhere). 3: amounts as
/// mantissa and scale instead of text (see [`crate::stored_decimal`]). 4: `meta` keeps the
/// newest time-ordered command id (see [`ordered_prefix`]); a build that did not maintain
/// it must not write to the store, or a command it stored could be reported absent. 5: the
/// audit log by day and second, with an index of each tenant's seconds (see [`audit_key`]).
/// 6: tenant and command ids in keys in their compact forms (see [`Key::id`]). 7: tables
/// written with cache-line-blocked bloom filters (vendored lsm-tree, `PATCHED.md`), which a
/// build of format 6 or earlier cannot read (a format-6 store was marked 7 when opened). 8:
/// the audit log keyed by the batch that wrote it, indexed by tenant, day and batch (see
/// [`audit_key`]). 9: outcome and audit rows written with command and event type names as
/// one-byte tags (see [`super::tagged`]); their format-8 rows are read as they are, so a
/// format-8 store is marked 9 when opened, and a build of format 8 then refuses it. 10: open
/// items' values without the tenant, due date and invoice their keys hold (see
/// [`OPEN_ITEM_SLIM`]); their older rows are read as they are, so a store of format 8 or 9 is
/// marked 10 when opened. 11: the outcomes of derived ids keyed by tenant, then id (see
/// [`keyed_command_key`]); their older rows are read as they are, so a store of format 8 to 10
/// is marked 11 when opened. A store without the marker but with data in it is format 1.
const FORMAT: u32 = 11;
const FORMAT_KEY: &[u8] = b"format";
/// Where `meta` keeps the newest ordered command id's prefix (8 bytes, big-endian).
const NEWEST_ORDERED_KEY: &[u8] = b"commands_newest_ordered";

/// Memtable size of every keyspace but the invoices' and `commands_keyed` (see
/// [`FjallStore::open`]).
const MEMTABLE_BYTES: u64 = 32 << 20;

/// Memtable size of the invoices. Their values (each invoice with its lines) fill a memtable
/// but go to blob files when it is flushed, so a 32 MiB memtable flushed a table of about 2
/// MiB of keys every 3 s or so, and every eight such flushes were merged into the whole of
/// level 1 (each spans every tenant). Counted by the store (`compacted_bytes`) over whole 10x
/// runs: the invoices compacted 0.43-0.46 bytes per byte flushed with 32 MiB, 0.14 with 128
/// MiB (920 MiB, against 2,536-2,973 in four runs with 32); that run applied 84,879/s at 9.3x
/// against 95,942/s fresh (docs/performance-log.md, 2026-11-27 night). Peak memory 120-230 MiB
/// higher in those runs. Like the other options it is kept with the keyspace: a store
/// created before keeps its 32 MiB.
const INVOICE_MEMTABLE_BYTES: u64 = 128 << 20;

/// Memtable size of the outcomes of derived command ids (`commands_keyed`). Their keys are
/// random, so every flushed table spans the whole key space and each level-0 merge rewrites
/// the whole of level 1: with 32 MiB (flushes of 16-21 MiB) the table compacted 2.75-3.08
/// bytes per byte flushed over a whole 10x run (600 s preload, 180 s measured; three runs),
/// with 128 MiB 1.75-2.22 (three runs; flushes of 33-40 MiB, as the journal's limit flushes
/// it before it fills), and the whole store 0.56-0.63 against 0.65-0.70. Peak memory 6-78
/// MiB higher in two pairs. Neither the throughput nor fjall's workers' CPU of those runs'
/// measured windows told the two apart: the machine drifted more than any difference
/// (docs/performance-log.md, 2026-11-27, late night). Like the other options it is kept
/// with the keyspace: a store created before keeps 32 MiB.
const KEYED_MEMTABLE_BYTES: u64 = 128 << 20;

/// Size of the tables compaction writes: fjall's default (see [`FjallStore::open`]).
const TABLE_BYTES: u64 = 64 << 20;

/// Size of the tables compaction writes in the tenant-first keyspaces (invoices, locator,
/// status index, open items, totals, month paid). Each of their flushed tables spans every
/// tenant, so merging L0 into level 1 rewrites level 1 whole, and level 1 holds 8 tables of
/// this size before the rest goes a level down, a table at a time. With fjall's 64 MiB that
/// was up to 512 MiB rewritten for every 8 flushes, and their flushes are small: about 2 MiB
/// for the invoices' keys, 4-6 MiB for the status index and the locator, 14 MiB for open
/// items (10x preload). With 16 MiB, level 1 is 128 MiB. The derived-id outcomes (random ids,
/// flushes of 16-21 MiB) keep [`TABLE_BYTES`]: a 128 MiB level 1 is less than one L0 merge of
/// theirs (tried: 5,598 MiB written over a 10x run, against 3,906-5,069 at 64). With this, in
/// 10x runs, fjall's workers 7.75-9.69 -> 5.30-6.39 us per command, the invoices' key tree
/// 6,321 -> 2,981-3,737 MiB written per run, throughput +5 to +9 % (docs/performance-log.md,
/// 2026-11-27).
const TENANT_FIRST_TABLE_BYTES: u64 = 16 << 20;

/// Invoice values of at least this many bytes go to blob files (see [`FjallStore::open`]).
/// An invoice without lines is about 100 bytes; one with a line or more is above this.
const INVOICE_BLOB_THRESHOLD: u32 = 128;

/// Where an invoice lives: its partition (year, bucket).
#[derive(Serialize, Deserialize)]
struct Location {
    year: i32,
    bucket: u32,
}

/// Layout of an open item's value since format 10: what its key does not hold. Format 9 and
/// before stored the whole [`OpenItem`] (layout [`VALUE_VERSION`]), its tenant id, due date
/// and invoice id a second time beside the key's: about 50 of a row's 85 bytes on disk, in a
/// table written at random points of its key space and so compacted again and again.
const OPEN_ITEM_SLIM: u8 = 2;

/// An open item's value of layout [`OPEN_ITEM_SLIM`].
#[derive(Serialize, Deserialize)]
struct OpenValue {
    currency: Currency,
    #[serde(with = "crate::stored_decimal")]
    balance_due: Decimal,
}

/// An open item read back from its row: the tenant it was read for, the due date and invoice
/// from the key after the tenant (`rest`), the currency and balance from the value (either
/// layout; a layout-1 value holds the whole item, which is taken as it is).
fn decode_open_item(tenant_id: &str, rest: &[u8], value: &[u8]) -> Result<OpenItem, StoreError> {
    let table = Table::OpenByDue.name();
    match split_version(table, value)? {
        (OPEN_ITEM_SLIM, body) => {
            let mut r = KeyReader(rest);
            let (due, invoice_id) = r.i32().zip(r.s()).ok_or_else(|| corrupt_key(table))?;
            let OpenValue { currency, balance_due } = decode_body(table, body)?;
            Ok(OpenItem { tenant_id: tenant_id.into(), due_date: Date::from_days(due), invoice_id: invoice_id.into(), currency, balance_due })
        }
        (VALUE_VERSION, body) => decode_body(table, body),
        (v, _) => Err(unknown_version(table, v)),
    }
}

// Key layouts take the key to extend: a fresh one for a read, the batch's buffer for a write.

/// The tenant, first in the key of every table read by tenant (and the prefix of its rows).
fn tenant_first(k: Key, tenant: &str) -> Key {
    k.id(tenant)
}

fn invoice_key(k: Key, tenant: &str, year: i32, bucket: u32, invoice_id: &str) -> Key {
    tenant_first(k, tenant).i32(year).u32(bucket).s(invoice_id)
}

fn locator_key(k: Key, tenant: &str, invoice_id: &str) -> Key {
    tenant_first(k, tenant).s(invoice_id)
}

fn status_key(k: Key, tenant: &str, status: InvoiceStatus, year: i32, bucket: u32, invoice_id: &str) -> Key {
    tenant_first(k, tenant).u8(status.tag()).i32(year).u32(bucket).s(invoice_id)
}

fn open_key(k: Key, tenant: &str, due: Date, invoice_id: &str) -> Key {
    tenant_first(k, tenant).i32(due.days()).s(invoice_id)
}

fn totals_key(k: Key, t: &TotalsKey) -> Key {
    tenant_first(k, &t.tenant_id).u32(t.bucket).s(t.currency.code())
}

fn month_key(k: Key, m: &MonthKey) -> Key {
    tenant_first(k, &m.tenant_id).u32(m.year_month).u32(m.bucket).s(m.currency.code())
}

fn offset_key(k: Key, cluster_id: &str, topic: &str, partition: i32) -> Key {
    k.s(cluster_id).s(topic).i32(partition)
}

/// A batch's writes before they reach fjall: every key and value end to end in one buffer,
/// each write a few offsets into it. With a key and a value vector per row, their
/// allocations and the moves of 56-byte tuples while sorting were a tenth of the committer
/// thread.
struct Writes {
    buf: Vec<u8>,
    ops: Vec<Write>,
    /// Ids the batch's keys encoded last (see [`RecentIds`]).
    recent: Option<Box<RecentIds>>,
}

/// One write: its key is `buf[start..][..key_len]`, its value the `value_len` bytes after it.
/// 32 bytes, so that the sort moves it without a call to `memcpy` (with three `usize`
/// offsets and the head it was 48, and the sort cost 16 % more instructions).
#[derive(Clone, Copy)]
struct Write {
    /// The table's number in its top byte, then the key's first 15 bytes (zero-padded), as one
    /// integer: most comparisons of [`Writes::sort`] end here, without reading the buffer.
    head: u128,
    start: usize,
    value_len: u32,
    key_len: u16,
    table: Table,
    put: bool,
}

impl Write {
    /// Its key, in the batch's buffer.
    fn key<'b>(&self, buf: &'b [u8]) -> &'b [u8] {
        &buf[self.start..][..usize::from(self.key_len)]
    }
}

impl Writes {
    fn with_capacity(rows: usize) -> Self {
        Writes { buf: Vec::with_capacity(rows * 160), ops: Vec::with_capacity(rows), recent: Some(Box::default()) }
    }

    /// Appends a write's key; [`Writes::finish`] records the write once its value (if any)
    /// follows.
    fn begin(&mut self, table: Table, key: impl FnOnce(Key) -> Key) -> Result<Write, StoreError> {
        let start = self.buf.len();
        (self.buf, self.recent) = key(Key::after(std::mem::take(&mut self.buf), self.recent.take())).done_with();
        let len = self.buf.len() - start;
        // The engine's limit (fjall panics beyond it); ids are at most 128 bytes, so only a
        // fault gets here.
        let key_len = u16::try_from(len).map_err(|_| too_long(table, "key", len))?;
        let mut head = [0u8; 16];
        head[0] = table as u8;
        let n = len.min(15);
        head[1..=n].copy_from_slice(&self.buf[start..start + n]);
        Ok(Write { head: u128::from_be_bytes(head), start, value_len: 0, key_len, table, put: false })
    }

    /// Records `w`, a put of the bytes appended since its key if `put`, else a tombstone.
    fn finish(&mut self, mut w: Write, put: bool) -> Result<(), StoreError> {
        let len = self.buf.len() - w.start - usize::from(w.key_len);
        w.value_len = u32::try_from(len).map_err(|_| too_long(w.table, "value", len))?;
        w.put = put;
        self.ops.push(w);
        Ok(())
    }

    fn put<T: Serialize>(&mut self, table: Table, key: impl FnOnce(Key) -> Key, value: &T) -> Result<(), StoreError> {
        self.put_as(table, VALUE_VERSION, key, value)
    }

    /// [`Writes::put`] of a value of layout `version`.
    fn put_as<T: Serialize>(&mut self, table: Table, version: u8, key: impl FnOnce(Key) -> Key, value: &T) -> Result<(), StoreError> {
        let w = self.begin(table, key)?;
        encode_into(table.name(), version, value, &mut self.buf)?;
        self.finish(w, true)
    }

    fn put_raw(&mut self, table: Table, key: impl FnOnce(Key) -> Key, value: &[u8]) -> Result<(), StoreError> {
        let w = self.begin(table, key)?;
        self.buf.extend_from_slice(value);
        self.finish(w, true)
    }

    fn remove(&mut self, table: Table, key: impl FnOnce(Key) -> Key) -> Result<(), StoreError> {
        let w = self.begin(table, key)?;
        self.finish(w, false)
    }

    fn key_of(&self, w: &Write) -> &[u8] {
        w.key(&self.buf)
    }

    fn value_of(&self, w: &Write) -> &[u8] {
        &self.buf[w.start + usize::from(w.key_len)..][..w.value_len as usize]
    }

    /// In table and key order. The sort is stable, so of several writes to one row the last
    /// stays last.
    fn sort(&mut self) {
        let buf = &self.buf;
        self.ops.sort_by(|a, b| a.head.cmp(&b.head).then_with(|| a.key(buf).cmp(b.key(buf))));
    }
}

/// A key or value beyond what the engine takes.
fn too_long(table: Table, what: &str, len: usize) -> StoreError {
    StoreError::Engine(format!("{}: a {what} of {len} bytes is over the engine's limit", table.name()))
}

/// A key and its value, as read.
type Row = (Vec<u8>, Vec<u8>);

fn corrupt_key(table: &'static str) -> StoreError {
    StoreError::Corrupt { table, detail: "malformed key".into() }
}

impl FjallStore {
    /// Opens (or creates) the store at `config.path`.
    pub fn open(config: &FjallConfig) -> Result<Self, StoreError> {
        std::fs::create_dir_all(&config.path).map_err(|e| StoreError::Engine(format!("{}: {e}", config.path.display())))?;
        let db = Database::builder(&config.path).cache_size(config.cache_bytes).open().map_err(|e| match e {
            fjall::Error::Locked => StoreError::Locked { path: config.path.display().to_string(), detail: e.to_string() },
            other => engine(other),
        })?;
        // Memtables of 32 MiB (the invoices' and the derived ids' outcomes' 128, see
        // [`INVOICE_MEMTABLE_BYTES`] and [`KEYED_MEMTABLE_BYTES`]) and L0
        // merged into L1 at 8 tables. Measured with billstream-load
        // (docs/performance-log.md): 8 MiB memtables made fresh stores fast but multiplied
        // compaction once the store grew (L0 -> L1 rewrote L1 for every 4 small tables); with
        // batches inserted in key order, bigger memtables no longer cost insert speed.
        // fjall stores these with the keyspace: they apply to keyspaces created from now on.
        let options = |table_bytes: u64| {
            KeyspaceCreateOptions::default().max_memtable_size(MEMTABLE_BYTES).compaction_strategy(Arc::new(
                fjall::compaction::Leveled::default().with_l0_threshold(8).with_table_target_size(table_bytes),
            ))
        };
        // Opens a keyspace, creating it with `create`'s options if it is new.
        let open = |name: &str, create: &dyn Fn() -> KeyspaceCreateOptions| db.keyspace(name, create).map_err(engine);
        let ks = |name: &str, table_bytes| open(name, &|| options(table_bytes));
        // Tables only ever scanned by prefix build no bloom filters: a filter answers point
        // reads only, and building one is part of every flush and compaction (lsm-tree's filter
        // writer was 4-6 % of fjall's workers' samples under load; without it and the invoices'
        // last-level filter below, the workers' CPU over a 200 s preload fell 7 %;
        // docs/performance-log.md).
        let scanned = |name: &str, table_bytes| open(name, &|| options(table_bytes).filter_policy(FilterPolicy::disabled()));
        // Invoices keep their values (an invoice with its lines, a few hundred bytes) in blob
        // files, their keys in the tree: compaction then rewrites keys and pointers, not
        // invoices. Tenants append invoices at their own points of the key space, so every
        // flush overlapped all of level 1 and compaction rewrote it whole: after a 200 s
        // preload, 806 MiB of new invoice tables in 12 s of load (195 MiB with separation,
        // blob files included) and fjall's workers 7.6 -> 5.0 us per command; the invoices
        // take about 45 % more disk (blobs are compressed one by one and wait for their
        // garbage collection once rewritten; docs/performance-log.md). An invoice is read by
        // key only once the locator or the status index has named it, so its reads find it: the
        // last level, most of the table, builds no filter (what `expect_point_read_hits` is
        // for); the levels above keep theirs, to skip the tables that do not hold it.
        // Blobs are not compressed: lz4 over one postcard-encoded invoice at a time (no field
        // names, few repeats) saved 4 % of their bytes (187 against 194 MiB after a 15 s
        // `steady` run) for 8 % of fjall's workers' samples; without it the workers' CPU per
        // command fell 3.41 and 3.03 -> 2.89 and 2.76 us in two alternating pairs
        // (docs/performance-log.md). Like the other options it is stored with the keyspace:
        // a store created before keeps compressing its blobs.
        let invoices = || {
            let blobs = fjall::KvSeparationOptions::default()
                .separation_threshold(INVOICE_BLOB_THRESHOLD)
                .compression(fjall::CompressionType::None);
            options(TENANT_FIRST_TABLE_BYTES)
                .max_memtable_size(INVOICE_MEMTABLE_BYTES)
                .with_kv_separation(Some(blobs))
                .expect_point_read_hits(true)
        };
        let mut store = FjallStore {
            invoices: open(Table::Invoices.name(), &invoices)?,
            locator: ks(Table::Locator.name(), TENANT_FIRST_TABLE_BYTES)?,
            by_status: scanned(Table::ByStatus.name(), TENANT_FIRST_TABLE_BYTES)?,
            open_by_due: scanned(Table::OpenByDue.name(), TENANT_FIRST_TABLE_BYTES)?,
            totals: ks(Table::Totals.name(), TENANT_FIRST_TABLE_BYTES)?,
            month_paid: ks(Table::MonthPaid.name(), TENANT_FIRST_TABLE_BYTES)?,
            commands: ks(Table::Commands.name(), TABLE_BYTES)?,
            keyed_commands: open(Table::KeyedCommands.name(), &|| options(TABLE_BYTES).max_memtable_size(KEYED_MEMTABLE_BYTES))?,
            audit: scanned(Table::Audit.name(), TABLE_BYTES)?,
            audit_batches: scanned(Table::AuditIndex.name(), TABLE_BYTES)?,
            offsets: scanned(Table::Offsets.name(), TABLE_BYTES)?,
            tenants: ks("tenants", TABLE_BYTES)?,
            api_keys: ks("api_keys", TABLE_BYTES)?,
            meta: ks("meta", TABLE_BYTES)?,
            newest_ordered: AtomicU64::new(0),
            keyed_rows_of_format_10: false,
            writing: Mutex::new(0),
            sync_commits: config.sync_commits,
            db,
        };
        // Bloom filters over the memtables' keys where most point reads are of absent keys:
        // the duplicate check of every keyed command (a new id) and the locator read of
        // every new invoice. Without them each such read searched the memtable's skiplist
        // (and any sealed one's): the applier's instructions per command 24,428 -> 23,060,
        // the processor thread's CPU about 7.0 -> 6.3 us per command in `steady` runs
        // (docs/performance-log.md). Near 2 bytes per row a memtable holds: an outcome row
        // took ~140 bytes of it and a locator row ~80 with ids as text; with format 6's
        // 17-byte ids about 37 and 18 bytes less (estimated from the keys), and an outcome
        // row 13-14 less again with format 9's tagged type name, so ~1.4 and ~1.9 bytes per row
        // now (about 11 and 15 bits).
        store.keyed_commands.set_memtable_filter_bytes(KEYED_MEMTABLE_BYTES as usize / 64);
        store.locator.set_memtable_filter_bytes(MEMTABLE_BYTES as usize / 32);
        // The gateway's ids are time-ordered, and the partitions lag one another by a few
        // milliseconds, so each flush of `commands` overlapped the one before by a sliver of
        // late keys, and every flushed table was merged once more on its way to level 1
        // (about a byte compacted per byte flushed, the store's biggest compactor). Ordered
        // keys (vendored lsm-tree, `PATCHED.md`) split the late keys and the last sixteenth
        // off each flush and move the rest down unread: 0.06 bytes compacted per byte flushed
        // against 0.95-1.13, the whole store's compaction halved in a fresh run
        // (docs/performance-log.md, 2026-11-28). Tables stay the same format.
        store.commands.set_ordered_keys(true);
        store.check_format(&config.path)?;
        if let Some(v) = store.meta.get(NEWEST_ORDERED_KEY).map_err(engine)? {
            let v = <[u8; 8]>::try_from(&*v).map_err(|_| corrupt_key("meta"))?;
            store.newest_ordered.store(u64::from_be_bytes(v), Ordering::Release);
        }
        // Rows of the old layout sort after every row of the new one (see [`KEYED_TENANT_FIRST`]).
        if let Some(kv) = store.keyed_commands.last_key_value() {
            store.keyed_rows_of_format_10 = kv.key().map_err(engine)?.first() != Some(&KEYED_TENANT_FIRST);
        }
        if let Some(kv) = store.audit.last_key_value() {
            let newest = KeyReader(&kv.key().map_err(engine)?).u64().ok_or_else(|| corrupt_key(Table::Audit.name()))?;
            *store.writing.get_mut().unwrap_or_else(|p| p.into_inner()) = newest + 1;
        }
        Ok(store)
    }

    /// What the engine reports about its tables and background work, for `/metrics`. Cheap:
    /// counters held in memory and, per table, a shared read of its current version (as every
    /// read takes); no I/O.
    pub fn engine_stats(&self) -> EngineStats {
        let tables = Table::ALL
            .iter()
            .map(|&t| (t.name(), self.keyspace(t)))
            .chain([("tenants", &self.tenants), ("api_keys", &self.api_keys), ("meta", &self.meta)])
            .map(|(name, ks)| {
                let (flushed_bytes, compacted_bytes) = ks.written_bytes();
                TableStats {
                    name,
                    l0_tables: ks.l0_table_count(),
                    tables: ks.table_count(),
                    blob_files: ks.blob_file_count(),
                    disk_bytes: ks.disk_space(),
                    flushed_bytes,
                    compacted_bytes,
                }
            })
            .collect();
        EngineStats {
            tables,
            journal_files: self.db.journal_count(),
            memtable_bytes: self.db.write_buffer_size(),
            flushes_queued: self.db.outstanding_flushes(),
            compactions_running: self.db.active_compactions(),
        }
    }

    /// Writes every table's memtable out to disk tables (and invoices to blob files) and
    /// waits for it, as a long run would. For tests that must read from disk, not memory.
    #[doc(hidden)]
    pub fn flush_memtables(&self) -> Result<(), StoreError> {
        for table in Table::ALL {
            self.keyspace(table).rotate_memtable_and_wait().map_err(engine)?;
        }
        Ok(())
    }

    /// Merges each table's disk tables into one (fjall's major compaction) and waits for it.
    /// For tests of what compaction reports.
    #[doc(hidden)]
    pub fn compact_tables(&self) -> Result<(), StoreError> {
        for table in Table::ALL {
            self.keyspace(table).major_compact().map_err(engine)?;
        }
        Ok(())
    }

    /// Refuses a store written in another layout; marks a new store with this one, and a store
    /// of format 8 or 9 too (their rows are read as they are). Then, and only then, tables are
    /// written with blocked filters: a refused store must stay readable by the build that
    /// wrote it (fjall flushes and compacts while it opens, before the marker can be read).
    fn check_format(&self, path: &std::path::Path) -> Result<(), StoreError> {
        let meta = &self.meta;
        let found = match meta.get(FORMAT_KEY).map_err(engine)? {
            Some(v) => Some(u32::from_be_bytes(<[u8; 4]>::try_from(&*v).map_err(|_| corrupt_key("meta"))?)),
            None => {
                let used = [&self.tenants, &self.offsets, &self.commands, &self.keyed_commands, &self.invoices]
                    .into_iter()
                    .any(|ks| ks.first_key_value().is_some());
                used.then_some(1)
            }
        };
        match found {
            Some(FORMAT) => {}
            // A new store (marked durably before the first blocked filter), or one whose rows
            // this build reads as they are (marked before it writes one of the new layout).
            None | Some(8..=10) => {
                meta.insert(FORMAT_KEY, FORMAT.to_be_bytes()).map_err(engine)?;
                self.db.persist(PersistMode::SyncAll).map_err(engine)?;
            }
            Some(found) => {
                return Err(StoreError::Format { path: path.display().to_string(), found, expected: FORMAT });
            }
        }
        for ks in Table::ALL.map(|t| self.keyspace(t)).into_iter().chain([&self.tenants, &self.api_keys, &self.meta]) {
            ks.set_blocked_filters(true);
        }
        Ok(())
    }

    /// Writes a batch atomically (the body of [`HotStore::apply`]).
    fn write_batch(&self, batch: &[Mutation]) -> Result<(), StoreError> {
        // Writes are collected, then inserted in key order: consecutive memtable (skiplist)
        // inserts then walk the same path, mostly in cache. Of several writes to one row (an
        // open item removed and re-inserted because a partial payment left its due date where
        // it was) only the last is inserted.
        let mut w = Writes::with_capacity(batch.len() * 2);
        let mut newest = None;
        // Taken before the audit rows' keys are made from it, so held until the commit.
        let mut next_audit_batch = self.writing.lock().unwrap_or_else(|p| p.into_inner());
        let audit_batch = *next_audit_batch;
        for m in batch {
            match m {
                Mutation::PutInvoice { invoice, bucket, previous_status } => {
                    let (t, id, year, bucket, previous_status) =
                        (&invoice.tenant_id, &invoice.invoice_id, invoice.year(), *bucket, *previous_status);
                    if let Some(prev) = previous_status.filter(|p| *p != invoice.status) {
                        w.remove(Table::ByStatus, |k| status_key(k, t, prev, year, bucket, id))?;
                    }
                    if previous_status != Some(invoice.status) {
                        w.put_raw(Table::ByStatus, |k| status_key(k, t, invoice.status, year, bucket, id), &[])?;
                    }
                    if previous_status.is_none() {
                        w.put(Table::Locator, |k| locator_key(k, t, id), &Location { year, bucket })?;
                    }
                    w.put(Table::Invoices, |k| invoice_key(k, t, year, bucket, id), invoice)?;
                }
                Mutation::PutOpenItem(item) => {
                    let key = |k| open_key(k, &item.tenant_id, item.due_date, &item.invoice_id);
                    w.put_as(Table::OpenByDue, OPEN_ITEM_SLIM, key, &OpenValue { currency: item.currency, balance_due: item.balance_due })?;
                }
                Mutation::RemoveOpenItem { tenant_id, due_date, invoice_id } => {
                    w.remove(Table::OpenByDue, |k| open_key(k, tenant_id, *due_date, invoice_id))?;
                }
                Mutation::PutTotals(key, v) => w.put(Table::Totals, |k| totals_key(k, key), v)?,
                Mutation::PutMonthPaid(key, v) => w.put(Table::MonthPaid, |k| month_key(k, key), &Amount(*v))?,
                Mutation::PutCommand { tenant_id, command_id, status } => {
                    let prefix = ordered_prefix(command_id);
                    newest = newest.max(prefix);
                    let table = Table::for_command(prefix);
                    w.put_as(table, TAGGED, |k| outcome_key(k, table, tenant_id, command_id), &StatusOut::from(status))?;
                }
                Mutation::Audit(e) => {
                    let row = AuditOut::new(&e.invoice_id, &e.events);
                    let key = |k| audit_key(k, audit_batch, &e.tenant_id, e.day, e.issued_at_ms, &e.command_id);
                    w.put_as(Table::Audit, TAGGED, key, &row)?;
                }
                Mutation::SetOffset { cluster_id, topic, partition, next_offset } => {
                    w.put_raw(Table::Offsets, |k| offset_key(k, cluster_id, topic, *partition), &next_offset.to_be_bytes())?;
                }
            }
        }
        w.sort();
        // The index rows of the batch's audit rows: one per tenant and day, read from the
        // sorted rows' keys, where each tenant's rows of a day are adjacent.
        let mut index: Vec<Vec<u8>> = Vec::new();
        let mut last_day = None;
        for op in w.ops.iter().filter(|op| op.table == Table::Audit) {
            let day = audit_tenant_day(w.key_of(op)).ok_or_else(|| corrupt_key(Table::Audit.name()))?;
            if last_day != Some(day) {
                index.push(audit_index_key_of(day, audit_batch));
                last_day = Some(day);
            }
        }
        // Room for every row at once (`Database::batch` starts empty: growing its list by
        // doubling copied it a dozen times per batch).
        let mut b = self.db.batch_with_capacity(w.ops.len() + index.len() + 1);
        if self.sync_commits {
            b = b.durability(Some(PersistMode::SyncData));
        }
        if let Some(newest) = newest.filter(|n| *n > self.newest_ordered.load(Ordering::Acquire)) {
            // Raised before the commit: until it lands, a read of these ids looks at the
            // table (and finds nothing yet) instead of being answered from a stale prefix.
            self.newest_ordered.store(newest, Ordering::Release);
            b.insert(&self.meta, NEWEST_ORDERED_KEY, newest.to_be_bytes());
        }
        let mut ops = w.ops.iter().peekable();
        while let Some(op) = ops.next() {
            if ops.peek().is_some_and(|next| next.head == op.head && w.key_of(next) == w.key_of(op)) {
                continue;
            }
            let (ks, key) = (self.keyspace(op.table), w.key_of(op));
            if op.put {
                b.insert(ks, key, w.value_of(op));
            } else {
                b.remove(ks, key);
            }
        }
        let audited = !index.is_empty();
        for key in index {
            b.insert(&self.audit_batches, key, []);
        }
        b.commit().map_err(engine)?;
        if audited {
            *next_audit_batch = audit_batch + 1;
        }
        Ok(())
    }

    fn keyspace(&self, table: Table) -> &Keyspace {
        match table {
            Table::Invoices => &self.invoices,
            Table::Locator => &self.locator,
            Table::ByStatus => &self.by_status,
            Table::OpenByDue => &self.open_by_due,
            Table::Totals => &self.totals,
            Table::MonthPaid => &self.month_paid,
            Table::Commands => &self.commands,
            Table::KeyedCommands => &self.keyed_commands,
            Table::Audit => &self.audit,
            Table::AuditIndex => &self.audit_batches,
            Table::Offsets => &self.offsets,
        }
    }

    fn get<T: serde::de::DeserializeOwned>(&self, ks: &Keyspace, table: &'static str, key: &[u8]) -> Result<Option<T>, StoreError> {
        match ks.get(key).map_err(engine)? {
            Some(v) => decode(table, &v).map(Some),
            None => Ok(None),
        }
    }

    /// One row of `table` by key.
    fn row<T: serde::de::DeserializeOwned>(&self, table: Table, key: &[u8]) -> Result<Option<T>, StoreError> {
        self.get(self.keyspace(table), table.name(), key)
    }

    fn scan(&self, ks: &Keyspace, prefix: &[u8], after: Option<&[u8]>, limit: usize) -> Result<Vec<Row>, StoreError> {
        let mut out = Vec::new();
        let iter = match after {
            // Resume after the last key of the previous page; the prefix check below ends it.
            Some(after) => ks.range::<&[u8], _>((std::ops::Bound::Excluded(after), std::ops::Bound::Unbounded)),
            None => ks.prefix(prefix),
        };
        for item in iter {
            let (k, v) = item.into_inner().map_err(engine)?;
            if !k.starts_with(prefix) {
                break;
            }
            out.push((k.to_vec(), v.to_vec()));
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }
}

#[async_trait::async_trait]
impl HotStore for FjallStore {
    async fn apply(&self, batch: &[Mutation]) -> Result<(), StoreError> {
        self.write_batch(batch)
    }

    async fn get_invoice(&self, tenant_id: &str, invoice_id: &str) -> Result<Option<Invoice>, StoreError> {
        let Some(loc) = self.row::<Location>(Table::Locator, &locator_key(Key::new(), tenant_id, invoice_id).done())? else {
            return Ok(None);
        };
        self.row(Table::Invoices, &invoice_key(Key::new(), tenant_id, loc.year, loc.bucket, invoice_id).done())
    }

    async fn get_command(&self, tenant_id: &str, command_id: &str) -> Result<Option<CommandStatus>, StoreError> {
        let prefix = ordered_prefix(command_id);
        if prefix.is_some_and(|p| p > self.newest_ordered.load(Ordering::Acquire)) {
            return Ok(None);
        }
        let table = Table::for_command(prefix);
        let ks = self.keyspace(table);
        let mut found = ks.get(outcome_key(Key::new(), table, tenant_id, command_id).done()).map_err(engine)?;
        if found.is_none() && table == Table::KeyedCommands && self.keyed_rows_of_format_10 {
            found = ks.get(command_key(Key::new(), tenant_id, command_id).done()).map_err(engine)?;
        }
        found.map(|v| decode_status(table.name(), &v)).transpose()
    }

    async fn get_totals(&self, key: &TotalsKey) -> Result<Option<Totals>, StoreError> {
        self.row(Table::Totals, &totals_key(Key::new(), key).done())
    }

    async fn get_month_paid(&self, key: &MonthKey) -> Result<Option<Decimal>, StoreError> {
        Ok(self.row::<Amount>(Table::MonthPaid, &month_key(Key::new(), key).done())?.map(|a| a.0))
    }

    async fn partition_offsets(&self, cluster_id: &str, topic: &str) -> Result<BTreeMap<i32, i64>, StoreError> {
        let prefix = Key::new().s(cluster_id).s(topic).done();
        let mut out = BTreeMap::new();
        for (k, v) in self.scan(&self.offsets, &prefix, None, usize::MAX)? {
            let partition = KeyReader(&k[prefix.len()..]).i32().ok_or_else(|| corrupt_key(Table::Offsets.name()))?;
            let next = <[u8; 8]>::try_from(v.as_slice()).map_err(|_| corrupt_key(Table::Offsets.name()))?;
            out.insert(partition, i64::from_be_bytes(next));
        }
        Ok(out)
    }

    async fn put_tenant(&self, tenant: &Tenant, api_key_hash: [u8; 32]) -> Result<(), StoreError> {
        if self.api_keys.get(api_key_hash).map_err(engine)?.is_some() {
            return Err(StoreError::Conflict("API key already registered".into()));
        }
        let mut b = self.db.batch().durability(Some(PersistMode::SyncData));
        b.insert(&self.tenants, Key::new().s(&tenant.tenant_id).done(), encode("tenants", tenant)?);
        b.insert(&self.api_keys, api_key_hash, tenant.tenant_id.as_bytes());
        b.commit().map_err(engine)
    }

    async fn get_tenant(&self, tenant_id: &str) -> Result<Option<Tenant>, StoreError> {
        self.get(&self.tenants, "tenants", &Key::new().s(tenant_id).done())
    }

    async fn tenant_for_key(&self, api_key_hash: [u8; 32]) -> Result<Option<Tenant>, StoreError> {
        match self.api_keys.get(api_key_hash).map_err(engine)? {
            Some(id) => {
                let id = std::str::from_utf8(&id).map_err(|_| corrupt_key("api_keys"))?.to_string();
                self.get_tenant(&id).await
            }
            None => Ok(None),
        }
    }

    async fn list_invoices(
        &self,
        tenant_id: &str,
        status: Option<InvoiceStatus>,
        page_token: Option<&str>,
        limit: usize,
    ) -> Result<InvoicePage, StoreError> {
        let limit = limit.max(1);
        let (ks, prefix) = match status {
            Some(st) => (&self.by_status, tenant_first(Key::new(), tenant_id).u8(st.tag()).done()),
            None => (&self.invoices, tenant_first(Key::new(), tenant_id).done()),
        };
        let after = match page_token {
            Some(t) => {
                let k = unhex(t).ok_or(StoreError::BadPageToken)?;
                if !k.starts_with(&prefix) {
                    return Err(StoreError::BadPageToken);
                }
                Some(k)
            }
            None => None,
        };
        let rows = self.scan(ks, &prefix, after.as_deref(), limit + 1)?;
        let more = rows.len() > limit;
        let mut invoices = Vec::with_capacity(rows.len().min(limit));
        let mut last = None;
        for (k, v) in rows.into_iter().take(limit) {
            let inv = match status {
                None => decode::<Invoice>(Table::Invoices.name(), &v)?,
                Some(_) => {
                    let mut r = KeyReader(&k[prefix.len()..]);
                    let (year, bucket, id) = (r.i32(), r.u32(), r.s());
                    let (Some(year), Some(bucket), Some(id)) = (year, bucket, id) else {
                        return Err(corrupt_key(Table::ByStatus.name()));
                    };
                    match self.row(Table::Invoices, &invoice_key(Key::new(), tenant_id, year, bucket, id).done())? {
                        Some(inv) => inv,
                        None => return Err(StoreError::Corrupt { table: Table::ByStatus.name(), detail: format!("dangling entry for {id}") }),
                    }
                }
            };
            invoices.push(inv);
            last = Some(k);
        }
        Ok(InvoicePage { invoices, next_page_token: if more { last.map(|k| hex(&k)) } else { None } })
    }

    async fn tenant_totals(&self, tenant_id: &str) -> Result<Vec<(TotalsKey, Totals)>, StoreError> {
        let prefix = tenant_first(Key::new(), tenant_id).done();
        let mut out = Vec::new();
        for (k, v) in self.scan(&self.totals, &prefix, None, usize::MAX)? {
            let mut r = KeyReader(&k[prefix.len()..]);
            let bucket = r.u32().ok_or_else(|| corrupt_key(Table::Totals.name()))?;
            let currency = r.s().and_then(|c| c.parse().ok()).ok_or_else(|| corrupt_key(Table::Totals.name()))?;
            out.push((TotalsKey { tenant_id: tenant_id.to_string(), bucket, currency }, decode(Table::Totals.name(), &v)?));
        }
        Ok(out)
    }

    async fn month_paid(&self, tenant_id: &str, year_month: u32) -> Result<Vec<(MonthKey, Decimal)>, StoreError> {
        let prefix = tenant_first(Key::new(), tenant_id).u32(year_month).done();
        let mut out = Vec::new();
        for (k, v) in self.scan(&self.month_paid, &prefix, None, usize::MAX)? {
            let mut r = KeyReader(&k[prefix.len()..]);
            let bucket = r.u32().ok_or_else(|| corrupt_key(Table::MonthPaid.name()))?;
            let currency = r.s().and_then(|c| c.parse().ok()).ok_or_else(|| corrupt_key(Table::MonthPaid.name()))?;
            let key = MonthKey { tenant_id: tenant_id.to_string(), year_month, bucket, currency };
            out.push((key, decode::<Amount>(Table::MonthPaid.name(), &v)?.0));
        }
        Ok(out)
    }

    async fn open_items_due_before(&self, tenant_id: &str, before: Date) -> Result<Vec<OpenItem>, StoreError> {
        let prefix = tenant_first(Key::new(), tenant_id).done();
        let end = tenant_first(Key::new(), tenant_id).i32(before.days()).done();
        let mut out = Vec::new();
        for item in self.open_by_due.range(prefix.clone()..end) {
            let (k, v) = item.into_inner().map_err(engine)?;
            out.push(decode_open_item(tenant_id, &k[prefix.len()..], &v)?);
        }
        Ok(out)
    }

    async fn audit(&self, tenant_id: &str, day: Date) -> Result<Vec<AuditEntry>, StoreError> {
        let index = audit_index_prefix(Key::new(), tenant_id, day).done();
        // Each batch's rows in (issued_at, command) order; the batches' runs merged by the
        // same order, the key's bytes after the prefix (a lagging partition can commit an
        // earlier command in a later batch).
        let mut rows = Vec::new();
        for (k, _) in self.scan(&self.audit_batches, &index, None, usize::MAX)? {
            let batch = KeyReader(&k[index.len()..]).u64().ok_or_else(|| corrupt_key(Table::AuditIndex.name()))?;
            let prefix = audit_batch_prefix(Key::new(), batch, tenant_id, day).done();
            rows.extend(self.scan(&self.audit, &prefix, None, usize::MAX)?.into_iter().map(|(mut k, v)| {
                k.drain(..prefix.len());
                (k, v)
            }));
        }
        rows.sort_by(|a, b| a.0.cmp(&b.0));
        let mut out = Vec::with_capacity(rows.len());
        for (k, v) in rows {
            let mut r = KeyReader(&k);
            let (Some(issued_at_ms), Some(command_id)) = (r.i64(), r.id()) else {
                return Err(corrupt_key(Table::Audit.name()));
            };
            let (invoice_id, events) = decode_audit(Table::Audit.name(), &v)?;
            out.push(AuditEntry { tenant_id: tenant_id.to_string(), day, issued_at_ms, command_id: command_id.into_owned(), invoice_id, events });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::conformance::sample_invoice;
    use crate::store::tagged::AuditText;
    use crate::store::{AuditEvent, CommandState, CommandStatus};
    use fjall::AbstractTree;

    /// Tables read by key keep their bloom filters; tables only scanned build none, and the
    /// invoices none in their last level (see [`FjallStore::open`]). Every table gets a row
    /// and a flushed disk table first.
    #[test]
    fn only_tables_read_by_key_build_filters() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let store = FjallStore::open(&FjallConfig::new(dir.path())).expect("open");
        let tenant = "t_0123456789abcdef0123456789abcdef";
        let invoice = sample_invoice(tenant, "inv-1", 2026);
        let (issued_at_ms, command_id) = (1_780_000_000_000, "0199a1b2-3c4d-7e5f-8a9b-0c1d2e3f4a5b");
        let batch = [
            Mutation::PutOpenItem(OpenItem {
                tenant_id: tenant.into(),
                due_date: invoice.due_date,
                invoice_id: invoice.invoice_id.clone(),
                currency: invoice.currency,
                balance_due: invoice.total,
            }),
            Mutation::PutInvoice { invoice: Arc::new(invoice), bucket: 0, previous_status: None },
            Mutation::PutCommand {
                tenant_id: tenant.into(),
                command_id: command_id.into(),
                status: CommandStatus {
                    command_type: "create_invoice".into(),
                    invoice_id: "inv-1".into(),
                    state: CommandState::Applied,
                    issued_at_ms,
                    partition: 0,
                    offset: 0,
                },
            },
            Mutation::Audit(AuditEntry {
                tenant_id: tenant.into(),
                day: Date::from_unix_millis(issued_at_ms),
                issued_at_ms,
                command_id: command_id.into(),
                invoice_id: "inv-1".into(),
                events: Vec::new(),
            }),
            Mutation::SetOffset { cluster_id: "c".into(), topic: "billing.commands".into(), partition: 0, next_offset: 1 },
        ];
        store.write_batch(&batch).expect("write");
        store.flush_memtables().expect("flush");
        let filter_bytes = |table: Table| {
            let ks = store.keyspace(table);
            assert!(ks.first_key_value().is_some(), "{} holds a row", table.name());
            ks.tree.filter_size()
        };
        for table in [Table::Invoices, Table::Locator, Table::Commands] {
            assert!(filter_bytes(table) > 0, "{} is read by key and keeps its filter", table.name());
            let kinds = store.keyspace(table).tree.filter_kinds().expect("filters");
            assert_eq!(kinds, (1, 0), "{}: one table, its filter blocked", table.name());
        }
        for table in [Table::ByStatus, Table::OpenByDue, Table::Audit, Table::AuditIndex, Table::Offsets] {
            assert_eq!(filter_bytes(table), 0, "{} is only scanned and builds no filter", table.name());
        }
        // Merged into the last level: the locator keeps its filter, the invoices drop theirs
        // and are still read by key.
        for table in [Table::Invoices, Table::Locator] {
            store.keyspace(table).major_compact().expect("compact");
        }
        assert!(filter_bytes(Table::Locator) > 0);
        assert_eq!(filter_bytes(Table::Invoices), 0);
        let key = invoice_key(Key::new(), tenant, 2026, 0, "inv-1").done();
        let read: Option<Invoice> = store.row(Table::Invoices, &key).expect("read");
        assert_eq!(read.map(|i| i.invoice_id), Some("inv-1".to_string()));
    }

    /// A format-8 store (type names as text in outcome and audit rows, derived ids' outcomes
    /// keyed by id first) opens as the current format: its rows read back as they were, and
    /// the rows written from then on have tagged names.
    #[tokio::test]
    async fn format_8_rows_read_back_after_the_upgrade() {
        use crate::store::HotStore;
        let dir = tempfile::tempdir().expect("temporary directory");
        let config = FjallConfig::new(dir.path());
        let tenant = "t_0123456789abcdef0123456789abcdef";
        let issued_at_ms = 1_780_000_000_000;
        let status = |command_type: &'static str, state| CommandStatus {
            command_type: command_type.into(),
            invoice_id: "inv-1".into(),
            state,
            issued_at_ms,
            partition: 3,
            offset: 41,
        };
        let rejected = CommandState::Rejected { code: "overpayment".into(), message: "too much".into() };
        // A gateway id (`commands`) and a derived one (`commands_keyed`).
        let outcomes = [
            ("0199a1b2-3c4d-7e5f-8a9b-0c1d2e3f4a5b", status("create_invoice", CommandState::Applied)),
            ("5d0f5c2e-8a4b-5c3d-9e1f-2a3b4c5d6e7f", status("record_payment", rejected)),
        ];
        let entry = AuditEntry {
            tenant_id: tenant.into(),
            day: Date::from_unix_millis(issued_at_ms),
            issued_at_ms,
            command_id: outcomes[0].0.into(),
            invoice_id: "inv-1".into(),
            events: vec![
                AuditEvent { kind: "invoice_created".into(), detail: "total 1.00 EUR".into() },
                AuditEvent { kind: "some_later_event".into(), detail: String::new() },
            ],
        };
        {
            let store = FjallStore::open(&config).expect("open");
            let mut batch: Vec<_> = outcomes
                .iter()
                .map(|(id, s)| Mutation::PutCommand { tenant_id: tenant.into(), command_id: (*id).into(), status: s.clone() })
                .collect();
            batch.push(Mutation::Audit(entry.clone()));
            store.write_batch(&batch).expect("write");
            // The same rows as format 8 wrote them (the derived id's under its old key only).
            for (id, s) in &outcomes {
                let table = Table::for_command(ordered_prefix(id));
                let key = command_key(Key::new(), tenant, id).done();
                store.keyspace(table).insert(key, encode(table.name(), s).expect("encode")).expect("rewrite");
            }
            store.keyed_commands.remove(keyed_command_key(Key::new(), tenant, outcomes[1].0).done()).expect("remove");
            let key = store.audit.first_key_value().expect("the audit row").key().expect("key");
            let old = AuditText { invoice_id: entry.invoice_id.clone(), events: entry.events.clone() };
            store.audit.insert(key, encode(Table::Audit.name(), &old).expect("encode")).expect("rewrite");
            store.meta.insert(FORMAT_KEY, 8u32.to_be_bytes()).expect("marker");
        }
        let store = FjallStore::open(&config).expect("a format-8 store opens");
        let marker = store.meta.get(FORMAT_KEY).expect("read").expect("marked");
        assert_eq!(*marker, FORMAT.to_be_bytes(), "marked {FORMAT} when opened");
        for (id, s) in &outcomes {
            let raw = store.keyspace(Table::for_command(ordered_prefix(id))).get(command_key(Key::new(), tenant, id).done());
            assert_eq!(raw.expect("read").expect("stored")[0], VALUE_VERSION, "{id} is still a format-8 row");
            assert_eq!(store.get_command(tenant, id).await.expect("read").as_ref(), Some(s), "{id}");
        }
        assert_eq!(store.audit.first_key_value().expect("row").value().expect("value")[0], VALUE_VERSION);
        assert_eq!(store.audit(tenant, entry.day).await.expect("read"), std::slice::from_ref(&entry));

        // Written again by this build: tagged, and read back the same.
        let (id, s) = &outcomes[1];
        let again = Mutation::PutCommand { tenant_id: tenant.into(), command_id: (*id).into(), status: s.clone() };
        store.write_batch(&[again, Mutation::Audit(entry.clone())]).expect("write");
        let raw = store.keyed_commands.get(keyed_command_key(Key::new(), tenant, id).done()).expect("read").expect("stored");
        assert_eq!(raw[0], TAGGED);
        assert_eq!(store.get_command(tenant, id).await.expect("read").as_ref(), Some(s));
        assert_eq!(store.audit.last_key_value().expect("row").value().expect("value")[0], TAGGED);
        assert_eq!(store.audit(tenant, entry.day).await.expect("read"), [entry.clone(), entry]);
    }

    /// A format-10 store's outcomes of derived ids (keyed by id, then tenant) read back after it
    /// is opened as format 11, beside outcomes written since (tenant, then id); for tenant and
    /// command ids of both key forms. A store that never held the old layout reopens without
    /// looking under it.
    #[tokio::test]
    async fn format_10_keyed_outcomes_read_back_after_the_upgrade() {
        use crate::store::HotStore;
        let dir = tempfile::tempdir().expect("temporary directory");
        let config = FjallConfig::new(dir.path());
        let tenants = ["t_0123456789abcdef0123456789abcdef", "acme"];
        let status = |tenant: &str, id: &str| CommandStatus {
            command_type: "record_payment".into(),
            invoice_id: format!("{tenant}/{id}"),
            state: CommandState::Applied,
            issued_at_ms: 1_780_000_000_000,
            partition: 2,
            offset: 7,
        };
        let put = |tenant: &str, id: &str| Mutation::PutCommand {
            tenant_id: tenant.into(),
            command_id: id.into(),
            status: status(tenant, id),
        };
        let old_ids = ["5d0f5c2e-8a4b-5c3d-9e1f-2a3b4c5d6e7f", "order-17/payment"];
        {
            let store = FjallStore::open(&config).expect("open");
            for tenant in tenants {
                for id in old_ids {
                    // Written by this build, then moved to the key format 10 gave it.
                    store.write_batch(&[put(tenant, id)]).expect("write");
                    let new_key = keyed_command_key(Key::new(), tenant, id).done();
                    let row = store.keyed_commands.get(&new_key).expect("read").expect("written tenant first");
                    store.keyed_commands.remove(new_key).expect("remove");
                    store.keyed_commands.insert(command_key(Key::new(), tenant, id).done(), row).expect("rewrite");
                }
            }
            store.meta.insert(FORMAT_KEY, 10u32.to_be_bytes()).expect("marker");
        }
        let store = FjallStore::open(&config).expect("a format-10 store opens");
        assert_eq!(*store.meta.get(FORMAT_KEY).expect("read").expect("marked"), FORMAT.to_be_bytes());
        assert!(store.keyed_rows_of_format_10);
        let new_id = "9a8b7c6d-5e4f-5a3b-8c2d-1e0f9a8b7c6d";
        store.write_batch(&[put(tenants[0], new_id)]).expect("write");
        assert!(store.keyed_commands.get(command_key(Key::new(), tenants[0], new_id).done()).expect("read").is_none());
        for tenant in tenants {
            for id in old_ids {
                assert_eq!(store.get_command(tenant, id).await.expect("read"), Some(status(tenant, id)), "{tenant} {id}");
            }
        }
        assert_eq!(store.get_command(tenants[0], new_id).await.expect("read"), Some(status(tenants[0], new_id)));
        assert_eq!(store.get_command(tenants[1], new_id).await.expect("read"), None, "another tenant's id");
        assert_eq!(store.get_command(tenants[0], "never-sent").await.expect("read"), None);
        drop(store);

        let fresh = tempfile::tempdir().expect("temporary directory");
        let store = FjallStore::open(&FjallConfig::new(fresh.path())).expect("open");
        store.write_batch(&[put(tenants[1], old_ids[1])]).expect("write");
        drop(store);
        let store = FjallStore::open(&FjallConfig::new(fresh.path())).expect("reopen");
        assert!(!store.keyed_rows_of_format_10, "only rows of the new layout");
        assert_eq!(store.get_command(tenants[1], old_ids[1]).await.expect("read"), Some(status(tenants[1], old_ids[1])));
    }

    /// A format-9 store's open items (the whole item in the value) read back after it is
    /// opened by this build, beside items written since, which keep only the currency and the
    /// balance in the value; for tenant ids of both key forms, and due dates before the epoch.
    #[tokio::test]
    async fn format_9_open_items_read_back_after_the_upgrade() {
        use crate::store::HotStore;
        let dir = tempfile::tempdir().expect("temporary directory");
        let config = FjallConfig::new(dir.path());
        let item = |tenant: &str, days, id: &str, balance: &str| OpenItem {
            tenant_id: tenant.into(),
            due_date: Date::from_days(days),
            invoice_id: id.into(),
            currency: "JPY".parse().expect("currency"),
            balance_due: balance.parse().expect("decimal"),
        };
        let tenants = ["t_0123456789abcdef0123456789abcdef", "acme"];
        let old: Vec<_> = tenants.iter().flat_map(|t| [item(t, -3, "inv-1", "12"), item(t, 20_500, "inv-2", "0.5")]).collect();
        {
            let store = FjallStore::open(&config).expect("open");
            // The rows as format 9 wrote them.
            for i in &old {
                let key = open_key(Key::new(), &i.tenant_id, i.due_date, &i.invoice_id).done();
                store.open_by_due.insert(key, encode(Table::OpenByDue.name(), i).expect("encode")).expect("write");
            }
            store.meta.insert(FORMAT_KEY, 9u32.to_be_bytes()).expect("marker");
        }
        let store = FjallStore::open(&config).expect("a format-9 store opens");
        assert_eq!(*store.meta.get(FORMAT_KEY).expect("read").expect("marked"), FORMAT.to_be_bytes());
        let before = Date::from_days(30_000);
        for t in tenants {
            let mine: Vec<_> = old.iter().filter(|i| i.tenant_id == t).cloned().collect();
            assert_eq!(store.open_items_due_before(t, before).await.expect("read"), mine, "{t}");
        }

        // Written by this build: the key's fields are not in the value, and read back the same.
        let new = item(tenants[1], 100, "inv-3", "7");
        store.write_batch(&[Mutation::PutOpenItem(new.clone())]).expect("write");
        let key = open_key(Key::new(), &new.tenant_id, new.due_date, &new.invoice_id).done();
        let value = store.open_by_due.get(&key).expect("read").expect("stored");
        assert_eq!(value[0], OPEN_ITEM_SLIM);
        assert!(!value.windows(new.invoice_id.len()).any(|w| w == new.invoice_id.as_bytes()), "{value:?}");
        assert!(value.len() <= 8, "currency and balance only: {value:?}");
        let mut expected = vec![old[2].clone(), new, old[3].clone()];
        assert_eq!(store.open_items_due_before(tenants[1], before).await.expect("read"), expected);
        expected.truncate(2);
        assert_eq!(store.open_items_due_before(tenants[1], Date::from_days(101)).await.expect("read"), expected);
    }

    /// The index row a batch derives from an audit row's key is the one built from the row's
    /// tenant, day and batch, for every form of tenant id (a text id with a byte that a
    /// tagged form could be mistaken for included) and days on both sides of the epoch.
    #[test]
    fn audit_index_key_read_from_the_row_key() {
        let tenants = ["t_0123456789abcdef0123456789abcdef", "0199a1b2-3c4d-7e5f-8a9b-0c1d2e3f4a5b", "acme", "\u{1}x", "T_0123456789ABCDEF0123456789ABCDEF"];
        for tenant in tenants {
            for day in [Date::from_days(-1), Date::from_days(0), Date::from_days(20_410)] {
                let row = audit_key(Key::new(), 7, tenant, day, 1_780_000_000_000, "0199a1b2-3c4d-7e5f-8a9b-0c1d2e3f4a5b").done();
                let expected = audit_index_key(Key::new(), tenant, day, 7).done();
                let tenant_day = audit_tenant_day(&row).expect("an audit row's key");
                assert_eq!(audit_index_key_of(tenant_day, 7), expected, "{tenant} on {day:?}");
            }
        }
        assert_eq!(audit_tenant_day(&[0; 8]), None, "no tenant");
        assert_eq!(audit_tenant_day(&[0, 0, 0, 0, 0, 0, 0, 0, 9]), None, "an unknown form");
        assert_eq!(audit_tenant_day(&audit_key(Key::new(), 7, "acme", Date::from_days(0), 0, "c").done()[..13]), None, "cut short");
    }

    /// A batch's writes sort as their tables, then their whole keys, do: keys that share the
    /// head (15 bytes) or end inside it, and zero bytes where a shorter key's head is padded;
    /// of writes to one key, the last stays last.
    #[test]
    fn writes_sort_by_table_then_whole_key() {
        let keys: [&[u8]; 9] = [b"", b"a", b"a\0", b"a\0\0", b"0123456789abcde", b"0123456789abcdeX", b"0123456789abcde\0", b"0123456789abcdf", b"\xff"];
        let mut w = Writes::with_capacity(64);
        let mut expected = Vec::new();
        let mut n = 0u8;
        for table in [Table::Offsets, Table::Invoices, Table::Audit] {
            for key in keys.iter().rev().chain(&keys) {
                n += 1;
                w.put_raw(table, |k| k.raw(key), &[n]).expect("write");
                expected.push((table, key.to_vec(), n));
            }
        }
        w.sort();
        expected.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
        let sorted: Vec<_> = w.ops.iter().map(|op| (op.table, w.key_of(op).to_vec(), w.value_of(op)[0])).collect();
        assert_eq!(sorted, expected);
    }
}
