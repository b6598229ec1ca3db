//! Topic names and partition keys: the contract between producers and processors.

/// Where commands are published. Key: [`partition_key`].
pub const COMMANDS: &str = "billing.commands";
/// Where processors publish outcomes. Key: the same as the command's.
pub const EVENTS: &str = "billing.events";
/// Where undecodable commands go, bytes untouched, with headers saying why.
pub const DLQ: &str = "billing.dlq";

/// DLQ header: short error class (`framing`, `avro_decode`, `invalid_field`, ...).
pub const DLQ_HEADER_CLASS: &str = "x-billstream-error-class";
/// DLQ header: the human-readable reason.
pub const DLQ_HEADER_REASON: &str = "x-billstream-error-reason";
/// DLQ header: source topic.
pub const DLQ_HEADER_TOPIC: &str = "x-billstream-source-topic";
/// DLQ header: source partition.
pub const DLQ_HEADER_PARTITION: &str = "x-billstream-source-partition";
/// DLQ header: source offset.
pub const DLQ_HEADER_OFFSET: &str = "x-billstream-source-offset";
/// DLQ header: when the processor first saw it (Unix milliseconds).
pub const DLQ_HEADER_FIRST_SEEN: &str = "x-billstream-first-seen-ms";
/// Kafka header carrying the correlation id end to end.
pub const HEADER_CORRELATION_ID: &str = "x-correlation-id";

/// The bucket of an invoice within a tenant split into `buckets` keys: FNV-1a (64 bit) of
/// the invoice id, modulo the bucket count. Stable across releases and languages.
pub fn bucket_of(invoice_id: &str, buckets: u32) -> u32 {
    if buckets <= 1 {
        return 0;
    }
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in invoice_id.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    (h % u64::from(buckets)) as u32
}

/// The Kafka key of a command: the tenant id, or `tenant/bucket` when the tenant is split
/// into more than one bucket. Kafka's murmur2 partitioner maps the key to a partition, so a
/// Java producer using the same key lands on the same partition.
pub fn partition_key(tenant_id: &str, buckets: u32, invoice_id: &str) -> String {
    if buckets <= 1 {
        tenant_id.to_string()
    } else {
        format!("{tenant_id}/{}", bucket_of(invoice_id, buckets))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys() {
        assert_eq!(partition_key("t1", 1, "inv-1"), "t1");
        let k = partition_key("t1", 8, "inv-1");
        assert!(k.starts_with("t1/"));
        assert_eq!(k, partition_key("t1", 8, "inv-1"));
        let spread: std::collections::HashSet<u32> =
            (0..100).map(|i| bucket_of(&format!("inv-{i}"), 8)).collect();
        assert_eq!(spread.len(), 8);
    }
}
