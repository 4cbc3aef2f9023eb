//! One upstream fetch per item however many clients ask at once: the first
//! takes the item's lock and fetches; the others wait for it, then find the
//! item cached. A failed fetch leaves nothing, and the next waiter tries.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use tokio::sync::OwnedMutexGuard;

#[derive(Default)]
pub struct Flights {
    locks: Mutex<HashMap<String, Weak<tokio::sync::Mutex<()>>>>,
}

/// Held while fetching an item; dropped when it is stored (or failed).
pub type Flight = OwnedMutexGuard<()>;

impl Flights {
    pub async fn enter(&self, key: String) -> Flight {
        let lock = {
            let mut locks = self.locks.lock().unwrap_or_else(|e| e.into_inner());
            locks.retain(|_, w| w.strong_count() > 0);
            match locks.get(&key).and_then(Weak::upgrade) {
                Some(l) => l,
                None => {
                    let l = Arc::new(tokio::sync::Mutex::new(()));
                    locks.insert(key, Arc::downgrade(&l));
                    l
                }
            }
        };
        lock.lock_owned().await
    }
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn a_second_caller_waits_for_the_first() {
        let f = std::sync::Arc::new(super::Flights::default());
        let first = f.enter("k".into()).await;
        let f2 = f.clone();
        let second = tokio::spawn(async move { f2.enter("k".into()).await });
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(!second.is_finished());
        let _other = f.enter("other".into()).await;
        drop(first);
        second.await.unwrap();
    }
}
