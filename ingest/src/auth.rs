//! API keys: made once, stored only as a SHA-256 hash, looked up per request.

use billstream_processors::store::Tenant;
use billstream_processors::{HotStore, StoreError};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::RwLock;

/// The header that carries the key.
pub const API_KEY_HEADER: &str = "x-api-key";

/// SHA-256 of a key: what the store keeps. Keys are 256-bit random, so an unsalted fast
/// hash is enough (there is nothing to brute-force).
pub fn hash_key(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// A fresh tenant id and API key.
pub fn new_tenant_credentials() -> (String, String) {
    let id = format!("t_{}", uuid::Uuid::new_v4().simple());
    let key = format!("bsk_{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple());
    (id, key)
}

/// Creates a tenant and returns it with its API key (shown once; only the hash is stored).
pub async fn create_tenant(store: &dyn HotStore, name: &str, buckets: u32, now_ms: i64) -> Result<(Tenant, String), StoreError> {
    let (tenant_id, key) = new_tenant_credentials();
    let tenant = Tenant { tenant_id, name: name.to_string(), buckets: buckets.max(1), created_at_ms: now_ms };
    store.put_tenant(&tenant, hash_key(&key)).await?;
    Ok((tenant, key))
}

/// Resolves API keys to tenants, caching hits (a key never moves to another tenant).
#[derive(Debug, Default)]
pub struct KeyCache {
    hits: RwLock<HashMap<[u8; 32], Tenant>>,
}

impl KeyCache {
    /// The tenant a key belongs to, or `None` for an unknown key.
    pub async fn tenant(&self, store: &dyn HotStore, key: &str) -> Result<Option<Tenant>, StoreError> {
        let hash = hash_key(key);
        if let Some(t) = self.hits.read().unwrap_or_else(|p| p.into_inner()).get(&hash) {
            return Ok(Some(t.clone()));
        }
        let found = store.tenant_for_key(hash).await?;
        if let Some(t) = &found {
            self.hits.write().unwrap_or_else(|p| p.into_inner()).insert(hash, t.clone());
        }
        Ok(found)
    }
}
