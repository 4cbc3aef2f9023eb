//! Connection slots: at most `privateregistry.limits.maxconnections`
//! connections are served at once. When every slot is taken, a new
//! connection takes the slot of the one idle longest (no request in flight:
//! a keep-alive connection between requests, or one that never sent its
//! first), which is asked to close, as nginx reuses idle keep-alive
//! connections when it runs out. Only when every connection is busy does the
//! new one wait. So neither silent nor idle connections, from one address or
//! many, can keep new clients out. Shutdown asks every connection to close
//! the same way and waits for them.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

/// A connection's state, as eviction sees it.
struct Entry {
    /// Requests whose response is not yet fully sent.
    busy: u32,
    /// Requests started, for the first-request deadline.
    started: u64,
    /// When `busy` last fell to zero (or the connection opened).
    idle_since: Instant,
    /// Already asked to close: not chosen again.
    closing: bool,
    close: Arc<Notify>,
}

pub struct Slots {
    limit: Arc<Semaphore>,
    open: Mutex<HashMap<u64, Entry>>,
    next_id: AtomicU64,
    draining: AtomicBool,
    /// Signalled when a connection becomes idle (a waiting newcomer may now
    /// evict it) and when one closes (shutdown may be complete).
    changed: Notify,
}

/// A taken slot; dropping it (when the connection ends) frees it.
pub struct Slot {
    handle: SlotHandle,
    close: Arc<Notify>,
    _permit: OwnedSemaphorePermit,
}

/// What a connection's requests need of its slot.
#[derive(Clone)]
pub struct SlotHandle {
    slots: Arc<Slots>,
    id: u64,
}

/// Marks a request in flight until dropped (with its response body).
pub struct Busy(SlotHandle);

impl Slots {
    pub fn new(max: usize) -> Arc<Slots> {
        Arc::new(Slots {
            limit: Arc::new(Semaphore::new(max)),
            open: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(0),
            draining: AtomicBool::new(false),
            changed: Notify::new(),
        })
    }

    fn table(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Entry>> {
        self.open.lock().expect("slots lock")
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.table().len()
    }

    /// A slot for a connection just accepted: a free one, else the longest
    /// idle connection's once it has closed, else the first to free up.
    /// `full` runs once if the newcomer has to wait for a busy connection.
    pub async fn acquire(self: &Arc<Self>, full: impl FnOnce()) -> Option<Slot> {
        let mut full = Some(full);
        loop {
            if let Ok(permit) = self.limit.clone().try_acquire_owned() {
                return Some(self.register(permit));
            }
            let changed = self.changed.notified();
            if !self.close_longest_idle()
                && let Some(f) = full.take()
            {
                f();
            }
            tokio::select! {
                permit = self.limit.clone().acquire_owned() => {
                    return Some(self.register(permit.ok()?));
                }
                _ = changed => {}
            }
        }
    }

    fn register(self: &Arc<Self>, permit: OwnedSemaphorePermit) -> Slot {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let close = Arc::new(Notify::new());
        if self.draining.load(Ordering::Relaxed) {
            close.notify_one();
        }
        let entry = Entry {
            busy: 0,
            started: 0,
            idle_since: Instant::now(),
            closing: false,
            close: close.clone(),
        };
        self.table().insert(id, entry);
        Slot {
            handle: SlotHandle {
                slots: self.clone(),
                id,
            },
            close,
            _permit: permit,
        }
    }

    /// Asks the connection idle longest to close; false if none is idle.
    fn close_longest_idle(&self) -> bool {
        let mut open = self.table();
        let victim = open
            .values_mut()
            .filter(|e| e.busy == 0 && !e.closing)
            .min_by_key(|e| e.idle_since);
        match victim {
            Some(e) => {
                e.closing = true;
                e.close.notify_one();
                true
            }
            None => false,
        }
    }

    /// Asks every connection to close once its requests are answered, and
    /// returns when all have.
    pub async fn drain(&self) {
        self.draining.store(true, Ordering::Relaxed);
        loop {
            let changed = self.changed.notified();
            {
                let mut open = self.table();
                if open.is_empty() {
                    return;
                }
                for e in open.values_mut().filter(|e| !e.closing) {
                    e.closing = true;
                    e.close.notify_one();
                }
            }
            changed.await;
        }
    }
}

impl Slot {
    pub fn handle(&self) -> SlotHandle {
        self.handle.clone()
    }

    /// Resolves when the connection is asked to close (another client needs
    /// its slot, or the server is shutting down).
    pub async fn closing(&self) {
        self.close.notified().await
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let slots = &self.handle.slots;
        slots.table().remove(&self.handle.id);
        slots.changed.notify_waiters();
    }
}

impl SlotHandle {
    /// Marks a request started on this connection.
    pub fn busy(&self) -> Busy {
        if let Some(e) = self.slots.table().get_mut(&self.id) {
            e.busy += 1;
            e.started += 1;
        }
        Busy(self.clone())
    }

    /// Whether a request is in flight on this connection.
    pub fn is_busy(&self) -> bool {
        self.slots.table().get(&self.id).is_some_and(|e| e.busy > 0)
    }

    /// Whether any request has started on this connection.
    pub fn has_started(&self) -> bool {
        self.slots
            .table()
            .get(&self.id)
            .is_some_and(|e| e.started > 0)
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        let slots = &self.0.slots;
        let mut open = slots.table();
        if let Some(e) = open.get_mut(&self.0.id) {
            e.busy -= 1;
            if e.busy == 0 {
                e.idle_since = Instant::now();
                drop(open);
                slots.changed.notify_waiters();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    async fn closes_soon(slot: &Slot) -> bool {
        tokio::time::timeout(Duration::from_millis(200), slot.closing())
            .await
            .is_ok()
    }

    #[tokio::test]
    async fn a_newcomer_takes_the_longest_idle_slot() {
        let slots = Slots::new(2);
        let old = slots.acquire(|| {}).await.unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
        let young = slots.acquire(|| {}).await.unwrap();
        let newcomer = {
            let slots = slots.clone();
            tokio::spawn(async move { slots.acquire(|| {}).await.map(|_| ()) })
        };
        assert!(closes_soon(&old).await, "the longest idle is asked to go");
        assert!(!closes_soon(&young).await);
        drop(old);
        newcomer.await.unwrap().unwrap();
        assert_eq!(slots.open(), 1);
    }

    #[tokio::test]
    async fn busy_connections_are_left_alone() {
        let slots = Slots::new(1);
        let slot = slots.acquire(|| {}).await.unwrap();
        let busy = slot.handle().busy();
        let newcomer = {
            let slots = slots.clone();
            tokio::spawn(async move { slots.acquire(|| {}).await.map(|_| ()) })
        };
        assert!(!closes_soon(&slot).await, "closed mid-request");
        assert!(slot.handle().has_started());
        drop(busy);
        assert!(closes_soon(&slot).await, "idle now, so it gives way");
        drop(slot);
        newcomer.await.unwrap().unwrap();
    }
}
