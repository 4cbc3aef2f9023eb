//! Connection threads: each accepted connection is served from start to end
//! on one thread running a single-threaded runtime of its own, the thread
//! with the fewest connections when it arrives. Everything else (accepting,
//! signals, maintenance) stays on the main runtime.
//!
//! Why: on tokio's work-stealing runtime a busy connection's task kept
//! moving between the two workers, woken on one by its socket and on the
//! other by the upload's hashing and writing threads, and every move cost
//! a cross-CPU wake-up (expensive in a VM). The same server with one worker
//! used 5-6% less CPU per 1 GiB push and pushed 3-9% faster, but served
//! 24% fewer manifest GETs over 64 connections. A thread per core keeps a
//! connection in one place without giving up the second core (the layout of
//! nginx's worker processes). The cost: no stealing, so two busy
//! connections that land on one thread share it while the other has only
//! idle ones.

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::runtime::Handle;
use tokio::sync::oneshot;

/// One connection thread: its runtime, and the connections it serves now.
struct Thread {
    handle: Handle,
    open: Arc<AtomicUsize>,
    /// Dropping it ends the thread's runtime (its tasks are dropped).
    _stop: oneshot::Sender<()>,
}

pub struct Threads {
    threads: Vec<Thread>,
    /// Where the search for the least loaded thread starts, rotated so that
    /// short connections one after another spread across threads.
    next: AtomicUsize,
}

/// Counts a connection against its thread until the connection ends.
struct Open(Arc<AtomicUsize>);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Threads {
    /// Starts one thread per available CPU.
    pub fn start() -> io::Result<Threads> {
        Threads::with(std::thread::available_parallelism().map_or(1, |n| n.get()))
    }

    fn with(n: usize) -> io::Result<Threads> {
        let threads = (0..n.max(1)).map(start_one).collect::<io::Result<_>>()?;
        Ok(Threads {
            threads,
            next: AtomicUsize::new(0),
        })
    }

    /// Runs the future `make` returns on the least loaded thread. `make`
    /// runs there too, so sockets it registers belong to that thread.
    pub fn spawn<F, Fut>(&self, make: F)
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let first = self.next.fetch_add(1, Ordering::Relaxed);
        let n = self.threads.len();
        let t = (0..n)
            .map(|i| &self.threads[(first + i) % n])
            .min_by_key(|t| t.open.load(Ordering::Relaxed))
            .expect("at least one connection thread");
        t.open.fetch_add(1, Ordering::Relaxed);
        let open = Open(t.open.clone());
        t.handle.spawn(async move {
            let _open = open;
            make().await
        });
    }
}

fn start_one(i: usize) -> io::Result<Thread> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let handle = rt.handle().clone();
    let (stop, stopped) = oneshot::channel::<()>();
    std::thread::Builder::new()
        .name(format!("conn-{i}"))
        .spawn(move || {
            let _ = rt.block_on(stopped);
        })?;
    Ok(Thread {
        handle,
        open: Arc::new(AtomicUsize::new(0)),
        _stop: stop,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Connections open at once go to different threads; one that has
    /// ended no longer counts, so the next goes where it was.
    #[test]
    fn connections_go_to_the_least_loaded_thread() {
        let threads = Threads::with(2).unwrap();
        let (names_tx, names_rx) = std::sync::mpsc::channel();
        let mut releases = vec![];
        for _ in 0..2 {
            let (release, released) = oneshot::channel::<()>();
            releases.push(release);
            let names = names_tx.clone();
            threads.spawn(move || async move {
                let name = std::thread::current().name().map(String::from);
                names.send(name).unwrap();
                let _ = released.await;
            });
        }
        let first = names_rx.recv_timeout(Duration::from_secs(10)).unwrap();
        let second = names_rx.recv_timeout(Duration::from_secs(10)).unwrap();
        assert_ne!(first, second, "both on one thread");
        let open = |i: usize| threads.threads[i].open.load(Ordering::Relaxed);
        assert_eq!((open(0), open(1)), (1, 1));
        let (release, ended) = (releases.remove(0), std::time::Instant::now());
        release.send(()).unwrap();
        while open(0) + open(1) != 1 {
            assert!(
                ended.elapsed() < Duration::from_secs(10),
                "count not released"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        let busy = if open(0) == 1 { "conn-0" } else { "conn-1" };
        let names = names_tx.clone();
        threads.spawn(move || async move {
            names
                .send(std::thread::current().name().map(String::from))
                .unwrap();
        });
        let third = names_rx.recv_timeout(Duration::from_secs(10)).unwrap();
        assert_ne!(third.as_deref(), Some(busy), "went to the busy thread");
    }
}
