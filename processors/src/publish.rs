//! Publishing a batch of records and waiting until the broker acknowledged all of them.
//!
//! rdkafka's `FutureProducer` gives every record a oneshot channel, a boxed sender and a
//! future, and wakes the waiting task once per acknowledgement: with a few hundred records
//! per HTTP batch and thousands per processor batch that bookkeeping was 10–14 % of the
//! gateway thread's samples. Here a batch shares one counter: each record carries a small
//! ticket (the batch and its index), the delivery callback counts it down and records only
//! failures, and the waiter is woken once, when the last record is acknowledged.

use rdkafka::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::message::OwnedHeaders;
use rdkafka::producer::{BaseRecord, DeliveryResult, ProducerContext, ThreadedProducer};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

/// One record to publish, borrowed from its caller.
pub struct Record<'a> {
    /// Topic.
    pub topic: &'a str,
    /// Key.
    pub key: &'a [u8],
    /// Value.
    pub payload: &'a [u8],
    /// Headers, if any.
    pub headers: Option<OwnedHeaders>,
    /// The record's timestamp (Unix milliseconds, CreateTime); `None` for the time of the
    /// send.
    pub timestamp_ms: Option<i64>,
}

/// A producer that acknowledges records by batch.
pub struct BatchProducer {
    producer: ThreadedProducer<AckContext>,
}

impl std::fmt::Debug for BatchProducer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchProducer").finish_non_exhaustive()
    }
}

impl BatchProducer {
    /// A producer with `config` (it polls for acknowledgements on a thread of its own).
    pub fn new(config: &ClientConfig) -> KafkaResult<Self> {
        Ok(BatchProducer { producer: config.create_with_context(AckContext)? })
    }

    /// The underlying producer (metadata, flush).
    pub fn inner(&self) -> &ThreadedProducer<AckContext> {
        &self.producer
    }

    /// Enqueues record `index` of `batch`. On failure (the queue is full, say) the record
    /// comes back with the error: send it again or give it up with [`Batch::fail`]; either
    /// way every index of a batch must be sent or failed once, or [`Batch::wait`] never ends.
    // The record comes back by value, as rdkafka's own `send` returns it: the error path is
    // the rare full queue, not worth a box on every call.
    #[allow(clippy::result_large_err)]
    pub fn send<'a>(&self, batch: &Batch, index: usize, record: Record<'a>) -> Result<(), (KafkaError, Record<'a>)> {
        debug_assert!(index < batch.len);
        let ticket = Box::new(Ticket { acks: batch.acks.clone(), index, resolved: false });
        let mut base = BaseRecord::with_opaque_to(record.topic, ticket).key(record.key).payload(record.payload);
        if let Some(h) = record.headers {
            base = base.headers(h);
        }
        if let Some(t) = record.timestamp_ms {
            base = base.timestamp(t);
        }
        self.producer.send(base).map_err(|(e, back)| {
            // Not enqueued: the caller sends it again or fails it, so its ticket stays silent.
            let mut ticket = back.delivery_opaque;
            ticket.resolved = true;
            let record = Record {
                topic: back.topic,
                key: back.key.unwrap_or_default(),
                payload: back.payload.unwrap_or_default(),
                headers: back.headers,
                timestamp_ms: back.timestamp,
            };
            (e, record)
        })
    }
}

/// The records of one batch in flight.
pub struct Batch {
    acks: Arc<Acks>,
    len: usize,
}

impl Batch {
    /// A batch of `len` records.
    pub fn new(len: usize) -> Self {
        Batch { acks: Arc::new(Acks { remaining: AtomicUsize::new(len), failed: Mutex::default(), done: Notify::new() }), len }
    }

    /// Gives record `index` up with `error` (it was never enqueued).
    pub fn fail(&self, index: usize, error: KafkaError) {
        self.acks.resolve(index, Err(error));
    }

    /// Waits until every record is acknowledged or failed; one result per record, in order.
    pub async fn wait(self) -> Vec<Result<(), KafkaError>> {
        while self.acks.remaining.load(Ordering::Acquire) > 0 {
            // `notify_one` leaves a permit when nobody waits yet, so the last
            // acknowledgement cannot slip in between the check and this wait.
            self.acks.done.notified().await;
        }
        let mut results: Vec<Result<(), KafkaError>> = (0..self.len).map(|_| Ok(())).collect();
        for (index, e) in std::mem::take(&mut *self.acks.failed.lock().unwrap_or_else(|p| p.into_inner())) {
            results[index] = Err(e);
        }
        results
    }
}

/// What a batch's records share.
struct Acks {
    remaining: AtomicUsize,
    failed: Mutex<Vec<(usize, KafkaError)>>,
    done: Notify,
}

impl Acks {
    fn resolve(&self, index: usize, result: Result<(), KafkaError>) {
        if let Err(e) = result {
            self.failed.lock().unwrap_or_else(|p| p.into_inner()).push((index, e));
        }
        // Release: the failure pushed above is visible to whoever sees the count reach zero.
        if self.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.done.notify_one();
        }
    }
}

/// What a record carries to its delivery callback.
pub struct Ticket {
    acks: Arc<Acks>,
    index: usize,
    resolved: bool,
}

impl Drop for Ticket {
    /// A record librdkafka gave up without a delivery report counts as failed (cancelled),
    /// as a dropped oneshot sender did: its batch must not wait for it forever.
    fn drop(&mut self) {
        if !self.resolved {
            self.acks.resolve(self.index, Err(KafkaError::Canceled));
        }
    }
}

/// Counts acknowledgements down (librdkafka calls it once per record, on the polling thread).
pub struct AckContext;

impl ClientContext for AckContext {}

impl ProducerContext for AckContext {
    type DeliveryOpaque = Box<Ticket>;

    fn delivery(&self, result: &DeliveryResult<'_>, mut ticket: Box<Ticket>) {
        ticket.resolved = true;
        ticket.acks.resolve(ticket.index, result.as_ref().map(|_| ()).map_err(|(e, _)| e.clone()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ticket_dropped_unreported_fails_its_record() {
        let batch = Batch::new(3);
        let ticket = |index| Ticket { acks: batch.acks.clone(), index, resolved: false };
        let mut reported = ticket(0);
        reported.resolved = true;
        reported.acks.resolve(0, Ok(()));
        drop(reported);
        drop(ticket(1));
        batch.fail(2, KafkaError::Canceled);
        // Each record counted once: a second count for the reported one would wrap this.
        assert_eq!(batch.acks.remaining.load(Ordering::Acquire), 0);
        let runtime = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
        let results = runtime.block_on(batch.wait());
        assert!(results[0].is_ok());
        assert!(matches!(results[1], Err(KafkaError::Canceled)));
        assert!(matches!(results[2], Err(KafkaError::Canceled)));
    }
}
