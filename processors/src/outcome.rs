//! Lets a caller wait until the processors resolved a command (`?wait=applied`).
//!
//! The processors call [`OutcomeHub::resolved`] after each committed batch. A waiter
//! registers first, then checks the store, then waits: whichever comes first wins, so a
//! command resolved between the check and the wait is not missed.

use std::collections::HashMap;
use std::sync::Mutex;
use tokio::sync::oneshot;

/// Waiters by command id.
#[derive(Debug, Default)]
pub struct OutcomeHub {
    waiters: Mutex<HashMap<String, Vec<oneshot::Sender<()>>>>,
}

impl OutcomeHub {
    /// An empty hub.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers interest in a command; the receiver fires when it is resolved.
    pub fn subscribe(&self, command_id: &str) -> oneshot::Receiver<()> {
        let (tx, rx) = oneshot::channel();
        self.lock().entry(command_id.to_string()).or_default().push(tx);
        rx
    }

    /// Drops interest (after a timeout), so the map does not grow.
    pub fn unsubscribe(&self, command_id: &str) {
        let mut w = self.lock();
        if let Some(list) = w.get_mut(command_id) {
            list.retain(|tx| !tx.is_closed());
            if list.is_empty() {
                w.remove(command_id);
            }
        }
    }

    /// Wakes everyone waiting on any of these commands.
    pub fn resolved<'a>(&self, command_ids: impl IntoIterator<Item = &'a str>) {
        let mut w = self.lock();
        if w.is_empty() {
            return;
        }
        for id in command_ids {
            if let Some(list) = w.remove(id) {
                for tx in list {
                    let _ = tx.send(());
                }
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<oneshot::Sender<()>>>> {
        self.waiters.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn wakes_waiters_and_forgets_them() {
        let hub = OutcomeHub::new();
        let a = hub.subscribe("c1");
        let b = hub.subscribe("c1");
        let other = hub.subscribe("c2");
        hub.resolved(["c1", "c9"]);
        assert!(a.await.is_ok() && b.await.is_ok());
        drop(other);
        hub.unsubscribe("c2");
        assert!(hub.lock().is_empty(), "nothing left behind");
    }
}
