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
    }
}
