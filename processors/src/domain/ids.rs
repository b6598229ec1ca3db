//! Deterministic ids derived from a command id (UUID v5 under a fixed namespace).

use sha1::{Digest, Sha1};
use uuid::Uuid;

/// The namespace every billstream-derived UUID lives in.
const NAMESPACE: Uuid = Uuid::from_u128(0x6b1f_0c55_7d4e_4a3b_9d0e_2f1a_b5c3_e801);

/// `Uuid::new_v5(NAMESPACE, kind ␟ part ␟ part …)`, hashed with the `sha1` crate, which uses
/// the CPU's SHA instructions where it has them: uuid's portable SHA-1 was 15 % of the
/// processor's instructions (one event id per event, one payment id per payment;
/// docs/performance-log.md). The name is hashed in pieces, never assembled.
fn derive(kind: &str, parts: &[&str]) -> String {
    derive_uuid(kind, parts).to_string()
}

fn derive_uuid(kind: &str, parts: &[&str]) -> Uuid {
    let mut h = Sha1::new();
    h.update(NAMESPACE.as_bytes());
    h.update(kind.as_bytes());
    for p in parts {
        h.update("\u{1f}".as_bytes());
        h.update(p.as_bytes());
    }
    let digest = h.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_sha1_bytes(bytes).into_uuid()
}

/// The id of the `index`-th event caused by a command.
pub fn event_id(command_id: &str, index: usize) -> String {
    event_uuid(command_id, index).to_string()
}

/// [`event_id`] written into `buf`, without allocating.
pub fn event_id_in<'b>(command_id: &str, index: usize, buf: &'b mut [u8; uuid::fmt::Hyphenated::LENGTH]) -> &'b str {
    event_uuid(command_id, index).hyphenated().encode_lower(buf)
}

fn event_uuid(command_id: &str, index: usize) -> Uuid {
    const DIGITS: [&str; 4] = ["0", "1", "2", "3"];
    match DIGITS.get(index) {
        Some(i) => derive_uuid("event", &[command_id, i]),
        None => derive_uuid("event", &[command_id, &index.to_string()]),
    }
}

/// The id of the payment a `record_payment` command creates.
pub fn payment_id(command_id: &str) -> String {
    derive("payment", &[command_id])
}

/// The command id for a request carrying an Idempotency-Key: the same key from the same
/// tenant always names the same command, so a retried request is the same command.
pub fn command_id_for_key(tenant_id: &str, idempotency_key: &str) -> String {
    derive("idempotency-key", &[tenant_id, idempotency_key])
}

/// A time-ordered (v7) command id for a request without an idempotency key: the Unix
/// milliseconds, then 74 random bits. Time order matters to the store: the commands table is
/// keyed by id first, so new ids land at the end of its key space, where the duplicate check
/// finds them without probing older tables and compaction moves files instead of merging them
/// (docs/performance-log.md). Uniqueness is all that is needed of the random part, not secrecy: a
/// per-thread generator seeded once from the OS avoids a system call per command.
pub fn random_command_id() -> String {
    use std::cell::Cell;
    thread_local! {
        static STATE: Cell<u64> = Cell::new(Uuid::new_v4().as_u64_pair().0 | 1);
    }
    let next = || {
        STATE.with(|s| {
            let mut z = s.get().wrapping_add(0x9E37_79B9_7F4A_7C15);
            s.set(z);
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        })
    };
    let mut random = [0u8; 10];
    random[..8].copy_from_slice(&next().to_le_bytes());
    random[8..].copy_from_slice(&next().to_le_bytes()[..2]);
    let millis = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
    uuid::Builder::from_unix_timestamp_millis(millis, &random).into_uuid().to_string()
}

/// The invoice id of a create command whose caller did not choose one.
pub fn invoice_id_for(command_id: &str) -> String {
    format!("inv_{}", derive("invoice", &[command_id]).replace('-', ""))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ids published and stored by earlier builds (which used `Uuid::new_v5` on the joined
    /// name) are the ones derived now: replays must emit the same ids.
    #[test]
    fn same_ids_as_uuid_v5_of_the_joined_name() {
        let v5 = |name: &str| Uuid::new_v5(&NAMESPACE, name.as_bytes()).to_string();
        for (i, c) in ["c1", "0199a1b2-3c4d-7e5f-8a9b-0c1d2e3f4a5b", "ünï\u{1f}code", ""].into_iter().enumerate() {
            for index in [0, 1, 3, 4, 12] {
                assert_eq!(event_id(c, index), v5(&format!("event\u{1f}{c}\u{1f}{index}")), "{i} {index}");
                assert_eq!(event_id_in(c, index, &mut [0; 36]), event_id(c, index), "{i} {index}");
            }
            assert_eq!(payment_id(c), v5(&format!("payment\u{1f}{c}")));
            assert_eq!(command_id_for_key("t-1", c), v5(&format!("idempotency-key\u{1f}t-1\u{1f}{c}")));
        }
        // Computed independently (Python's uuid.uuid5).
        assert_eq!(event_id("c1", 0), "6b687031-0232-5453-9123-e0c04012e9e2");
        assert_eq!(payment_id("c1"), "a654dbff-8be2-5213-9462-c0f823d75e70");
    }

    #[test]
    fn stable_and_distinct() {
        assert_eq!(event_id("c1", 0), event_id("c1", 0));
        assert_ne!(event_id("c1", 0), event_id("c1", 1));
        assert_ne!(payment_id("c1"), event_id("c1", 0));
        assert_ne!(command_id_for_key("t1", "k"), command_id_for_key("t2", "k"));
        assert!(invoice_id_for("c").starts_with("inv_"));
        let ids: std::collections::HashSet<String> = (0..10_000).map(|_| random_command_id()).collect();
        assert_eq!(ids.len(), 10_000);
        assert!(ids.iter().all(|i| Uuid::parse_str(i).map(|u| u.get_version_num()) == Ok(7)));
        // Time-ordered: an id made a few milliseconds later sorts after.
        let before = random_command_id();
        std::thread::sleep(std::time::Duration::from_millis(3));
        assert!(random_command_id() > before);
    }
}
