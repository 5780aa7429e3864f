//! A chaos proxy for tests: a TCP relay on 127.0.0.1 in front of a
//! loopback upstream (a site's replication listener) that adds latency and
//! jitter, caps bandwidth, resets connections, pauses, corrupts bytes and
//! partitions one way, as a bad WAN link does. The faults are knobs turned
//! while the proxy runs; every thread it starts ends when it is dropped, or
//! at its lifetime limit, so a test that forgets it cannot hang.

use std::collections::VecDeque;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long a proxy lives at most, whatever the test does.
pub const LIFETIME: Duration = Duration::from_secs(300);
/// How often blocked threads look at the knobs and the stop flag.
const TICK: Duration = Duration::from_millis(5);

/// The faults, by direction where it matters: `up` is what the client (the
/// sender) says to the upstream, `down` the replies.
#[derive(Debug, Clone, Default)]
pub struct Knobs {
    /// Added one way, to each direction.
    pub latency: Duration,
    /// Up to this much more, random per chunk; order is kept.
    pub jitter: Duration,
    /// Bytes per second, each direction; `None` is unlimited.
    pub bandwidth: Option<u64>,
    /// Nothing moves either way (bytes wait) while set.
    pub paused: bool,
    /// Bytes going up are dropped (the connection stays open): a one-way
    /// partition; the sender sees silence.
    pub drop_up: bool,
    /// The same for the replies.
    pub drop_down: bool,
    /// New connections are accepted and closed at once.
    pub refuse: bool,
    /// This many further bytes going up have one bit flipped each, spread
    /// one per chunk.
    pub corrupt_up: u64,
}

/// What went through the proxy.
#[derive(Debug, Default)]
pub struct ChaosCounts {
    pub connections: AtomicU64,
    pub bytes_up: AtomicU64,
    pub bytes_down: AtomicU64,
    pub corrupted: AtomicU64,
}

struct Shared {
    knobs: Mutex<Knobs>,
    counts: ChaosCounts,
    stop: AtomicBool,
    /// Open sockets, for resets.
    open: Mutex<Vec<TcpStream>>,
    upstream: SocketAddr,
    deadline: Instant,
}

impl Shared {
    fn knobs(&self) -> MutexGuard<'_, Knobs> {
        self.knobs.lock().unwrap_or_else(|e| e.into_inner())
    }
    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed) || Instant::now() >= self.deadline
    }
}

/// A running proxy; stops, closing every connection, when dropped.
pub struct Chaos {
    addr: String,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

impl Chaos {
    /// Starts a proxy in front of `upstream`, which must be on loopback.
    pub fn start(upstream: &str) -> Self {
        let upstream: SocketAddr = upstream.parse().expect("upstream is an ip:port");
        assert!(
            upstream.ip().is_loopback(),
            "the chaos proxy is loopback only"
        );
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the chaos proxy");
        listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        let addr = listener.local_addr().expect("proxy address").to_string();
        let shared = Arc::new(Shared {
            knobs: Mutex::new(Knobs::default()),
            counts: ChaosCounts::default(),
            stop: AtomicBool::new(false),
            open: Mutex::new(Vec::new()),
            upstream,
            deadline: Instant::now() + LIFETIME,
        });
        let accept = std::thread::spawn({
            let shared = shared.clone();
            move || accept_loop(listener, shared)
        });
        Self {
            addr,
            shared,
            accept: Some(accept),
        }
    }

    /// Where to connect instead of the upstream.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Turns the knobs.
    pub fn set(&self, change: impl FnOnce(&mut Knobs)) {
        change(&mut self.shared.knobs());
    }

    /// Back to a clean link (open connections stay).
    pub fn heal(&self) {
        *self.shared.knobs() = Knobs::default();
    }

    /// Resets every open connection, as a middlebox dropping its state does.
    pub fn reset_all(&self) {
        let open = std::mem::take(&mut *self.shared.open.lock().unwrap_or_else(|e| e.into_inner()));
        for s in open {
            let _ = s.shutdown(Shutdown::Both);
        }
    }

    pub fn counts(&self) -> &ChaosCounts {
        &self.shared.counts
    }
}

impl Drop for Chaos {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        self.reset_all();
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut workers = Vec::new();
    while !shared.stopped() {
        match listener.accept() {
            Ok((client, _)) => {
                shared.counts.connections.fetch_add(1, Ordering::Relaxed);
                if shared.knobs().refuse {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
                let Ok(server) =
                    TcpStream::connect_timeout(&shared.upstream, Duration::from_secs(2))
                else {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                };
                let _ = client.set_nonblocking(false);
                for s in [&client, &server] {
                    let _ = s.set_nodelay(true);
                    let _ = s.set_read_timeout(Some(TICK * 4));
                    if let Ok(c) = s.try_clone() {
                        shared
                            .open
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .push(c);
                    }
                }
                if let (Ok(c2), Ok(s2)) = (client.try_clone(), server.try_clone()) {
                    workers.push(pump(client, s2, Direction::Up, shared.clone()));
                    workers.push(pump(server, c2, Direction::Down, shared.clone()));
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => std::thread::sleep(TICK),
            Err(_) => std::thread::sleep(TICK),
        }
        workers.retain(|w: &JoinHandle<()>| !w.is_finished());
    }
    for s in std::mem::take(&mut *shared.open.lock().unwrap_or_else(|e| e.into_inner())) {
        let _ = s.shutdown(Shutdown::Both);
    }
    for w in workers {
        let _ = w.join();
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Direction {
    Up,
    Down,
}

/// One direction: a reader that applies drops and corruption and stamps
/// each chunk with when it may arrive, and a writer that delivers it then,
/// no faster than the bandwidth cap.
fn pump(mut from: TcpStream, to: TcpStream, dir: Direction, shared: Arc<Shared>) -> JoinHandle<()> {
    let (tx, rx) = mpsc::channel::<(Instant, Vec<u8>)>();
    let writer = std::thread::spawn({
        let shared = shared.clone();
        move || deliver(rx, to, dir, shared)
    });
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 16 << 10];
        let mut last = Instant::now();
        let mut rng = 0x9E37_79B9_7F4A_7C15u64 ^ (dir == Direction::Up) as u64;
        while !shared.stopped() {
            let n = match from.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    continue;
                }
                Err(_) => break,
            };
            let mut chunk = buf[..n].to_vec();
            let (delay, dropped) = {
                let mut k = shared.knobs();
                let dropped = match dir {
                    Direction::Up => k.drop_up,
                    Direction::Down => k.drop_down,
                };
                if dir == Direction::Up && k.corrupt_up > 0 && !dropped {
                    rng ^= rng << 13;
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    let at = (rng % n as u64) as usize;
                    chunk[at] ^= 0x20;
                    k.corrupt_up -= 1;
                    shared.counts.corrupted.fetch_add(1, Ordering::Relaxed);
                }
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                let jitter = if k.jitter.is_zero() {
                    Duration::ZERO
                } else {
                    Duration::from_nanos(rng % k.jitter.as_nanos().max(1) as u64)
                };
                (k.latency + jitter, dropped)
            };
            if dropped {
                continue;
            }
            // Jitter never reorders: a chunk arrives no earlier than the one before.
            let due = (Instant::now() + delay).max(last);
            last = due;
            if tx.send((due, chunk)).is_err() {
                break;
            }
        }
        drop(tx);
        let _ = writer.join();
        let _ = from.shutdown(Shutdown::Both);
    })
}

fn deliver(
    rx: mpsc::Receiver<(Instant, Vec<u8>)>,
    mut to: TcpStream,
    dir: Direction,
    shared: Arc<Shared>,
) {
    let mut queue: VecDeque<(Instant, Vec<u8>)> = VecDeque::new();
    // When the cap lets the next byte go.
    let mut next_free = Instant::now();
    let mut upstream_open = true;
    'link: while !shared.stopped() {
        // Sleep until the front chunk is due and the cap allows it (a tick
        // at most, to see the knobs and the stop flag), or a chunk comes.
        let paused = shared.knobs().paused;
        let now = Instant::now();
        let wait = match queue.front() {
            Some((due, _)) if !paused => (*due).max(next_free).saturating_duration_since(now),
            _ => TICK,
        }
        .min(TICK);
        if upstream_open {
            match rx.recv_timeout(wait) {
                Ok(item) => queue.push_back(item),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => upstream_open = false,
            }
            while let Ok(item) = rx.try_recv() {
                queue.push_back(item);
            }
        } else if queue.is_empty() {
            break;
        } else {
            std::thread::sleep(wait);
        }
        // Deliver every chunk that is due, as fast as the cap allows: one
        // chunk per wake-up would cap the link at a chunk per tick.
        loop {
            let now = Instant::now();
            let (paused, bandwidth) = {
                let k = shared.knobs();
                (k.paused, k.bandwidth)
            };
            if paused || now < next_free {
                break;
            }
            match queue.front() {
                Some((due, _)) if *due <= now => {}
                _ => break,
            }
            let Some((_, mut chunk)) = queue.pop_front() else {
                break;
            };
            if let Some(rate) = bandwidth {
                // Send at most a tick's worth at once so a cap stays smooth.
                let most = ((rate as u128 * TICK.as_nanos() / 1_000_000_000) as usize).max(1);
                if chunk.len() > most {
                    let rest = chunk.split_off(most);
                    queue.push_front((now, rest));
                }
                // A wake-up late by up to a tick may catch up; an idle link
                // earns no more credit than that.
                next_free = next_free.max(now.checked_sub(TICK).unwrap_or(now))
                    + Duration::from_nanos(
                        (chunk.len() as u128 * 1_000_000_000 / rate.max(1) as u128) as u64,
                    );
            }
            if to.write_all(&chunk).is_err() {
                break 'link;
            }
            let counter = match dir {
                Direction::Up => &shared.counts.bytes_up,
                Direction::Down => &shared.counts.bytes_down,
            };
            counter.fetch_add(chunk.len() as u64, Ordering::Relaxed);
        }
    }
    let _ = to.shutdown(Shutdown::Both);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn echo() -> (String, JoinHandle<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let t = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut buf = [0u8; 4096];
            while let Ok(n) = s.read(&mut buf) {
                if n == 0 || s.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        });
        (addr, t)
    }

    fn roundtrip(chaos: &Chaos, data: &[u8]) -> (Vec<u8>, Duration) {
        let mut c = TcpStream::connect(chaos.addr()).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let start = Instant::now();
        c.write_all(data).unwrap();
        let mut got = vec![0u8; data.len()];
        c.read_exact(&mut got).unwrap();
        (got, start.elapsed())
    }

    #[test]
    fn latency_cap_and_corruption_are_applied() {
        let (addr, _t) = echo();
        let chaos = Chaos::start(&addr);
        chaos.set(|k| {
            k.latency = Duration::from_millis(50);
            k.bandwidth = Some(400_000);
        });
        let data: Vec<u8> = (0..100_000u32).map(|i| i as u8).collect();
        let (got, took) = roundtrip(&chaos, &data);
        assert_eq!(got, data);
        // 100 ms of latency both ways, 250 ms per direction at the cap,
        // which overlap: at least the latency and one direction's transfer.
        assert!(took >= Duration::from_millis(330), "{took:?}");
        drop(chaos);

        let (addr, _t) = echo();
        let chaos = Chaos::start(&addr);
        chaos.set(|k| k.corrupt_up = 1);
        let (got, _) = roundtrip(&chaos, &data);
        assert_eq!(got.iter().zip(&data).filter(|(a, b)| a != b).count(), 1);
        assert_eq!(chaos.counts().corrupted.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn a_dropped_direction_is_silent_and_a_reset_ends_it() {
        let (addr, _t) = echo();
        let chaos = Chaos::start(&addr);
        chaos.set(|k| k.drop_up = true);
        let mut c = TcpStream::connect(chaos.addr()).unwrap();
        c.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        c.write_all(b"hello").unwrap();
        let mut buf = [0u8; 5];
        assert!(c.read(&mut buf).is_err(), "a partitioned link answered");
        chaos.reset_all();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        assert!(matches!(c.read(&mut buf), Ok(0) | Err(_)));
    }
}
