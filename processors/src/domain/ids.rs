//! Deterministic ids derived from a command id (UUID v5 under a fixed namespace).

use uuid::Uuid;

/// The namespace every billstream-derived UUID lives in.
const NAMESPACE: Uuid = Uuid::from_u128(0x6b1f_0c55_7d4e_4a3b_9d0e_2f1a_b5c3_e801);

fn derive(kind: &str, parts: &[&str]) -> String {
    let mut name = String::with_capacity(kind.len() + parts.iter().map(|p| p.len() + 1).sum::<usize>());
    name.push_str(kind);
    for p in parts {
        name.push('\u{1f}');
        name.push_str(p);
    }
    Uuid::new_v5(&NAMESPACE, name.as_bytes()).to_string()
}

/// The id of the `index`-th event caused by a command.
pub fn event_id(command_id: &str, index: usize) -> String {
    derive("event", &[command_id, &index.to_string()])
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
/// (README, Performance). Uniqueness is all that is needed of the random part, not secrecy: a
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
