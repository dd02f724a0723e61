//! Precise latency for the simulator. tokio's timer counts whole milliseconds
//! and fires from the runtime's park, so a 20 ms `sleep` answers after 20–22
//! ms: up to a tenth slower than the latency asked for, which a benchmark that
//! divides by that latency (`contrib/bench/pipeline.sh`) would charge to the
//! client. One thread keeps the deadlines and wakes each request's task at its
//! instant, as late as the OS timer makes it (tens of microseconds).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::mpsc;
use std::time::Instant;
use tokio::sync::oneshot;

/// A deadline and the task to wake at it, ordered by the deadline alone
/// (requests due at one instant are woken together, in no order).
struct Entry {
    at: Instant,
    wake: oneshot::Sender<()>,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.at == other.at
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.at.cmp(&other.at)
    }
}

/// The deadline thread (stops when this is dropped and nothing waits).
#[derive(Debug)]
pub struct Delays {
    tx: mpsc::Sender<Entry>,
}

impl Delays {
    /// Starts the thread; `None` when the OS refuses one (callers then sleep
    /// on tokio's timer).
    pub fn start() -> Option<Delays> {
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("sim-delays".into())
            .spawn(move || run(&rx))
            .ok()?;
        Some(Delays { tx })
    }

    /// Resolves at `at` (at once when it has passed).
    pub async fn until(&self, at: Instant) {
        let (wake, woken) = oneshot::channel();
        if self.tx.send(Entry { at, wake }).is_err() || woken.await.is_err() {
            // The thread is gone: the coarser timer still keeps the latency.
            tokio::time::sleep_until(at.into()).await;
        }
    }
}

fn run(rx: &mpsc::Receiver<Entry>) {
    let mut heap: BinaryHeap<Reverse<Entry>> = BinaryHeap::new();
    loop {
        let now = Instant::now();
        while heap.peek().is_some_and(|Reverse(e)| e.at <= now) {
            if let Some(Reverse(e)) = heap.pop() {
                // A request that went away no longer waits.
                let _ = e.wake.send(());
            }
        }
        let got = match heap.peek() {
            None => rx.recv().map_err(|_| ()),
            Some(Reverse(e)) => match rx.recv_timeout(e.at - now) {
                Ok(e) => Ok(e),
                Err(mpsc::RecvTimeoutError::Timeout) => continue,
                Err(mpsc::RecvTimeoutError::Disconnected) => Err(()),
            },
        };
        let Ok(e) = got else {
            // Dropped: whoever still waits falls back to tokio's timer.
            return;
        };
        heap.push(Reverse(e));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn wakes_each_deadline_in_order_and_not_before_it() {
        let d = Delays::start().expect("a thread");
        let t0 = Instant::now();
        let order = std::sync::Mutex::new(Vec::new());
        let wait = |ms: u64| {
            let (d, order) = (&d, &order);
            async move {
                let at = t0 + Duration::from_millis(ms);
                d.until(at).await;
                assert!(Instant::now() >= at, "woken before its deadline");
                order.lock().unwrap().push(ms);
            }
        };
        tokio::join!(wait(30), wait(10), wait(20), wait(0));
        assert_eq!(*order.lock().unwrap(), [0, 10, 20, 30]);
    }
}
