//! Slow and hostile API clients against a real pair of sites on loopback:
//! 150 connections that never finish their headers and 150 that send their
//! headers and then trickle the body are held open while the API answers
//! every call in bounded time and replication keeps completing cycles; the
//! site cuts every one of them off by its timeouts. A flood of calls with
//! bad tokens is refused, audited, and leaves the audit log within the
//! bound site.toml gives it.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ferry_replicator::access::Role;
use ferry_replicator::config::{GuestSeed, VmSeed};
use ferry_testkit::{
    SiteConfigBuilder, SiteProcess, config, free_port, site_fingerprint, wait_until,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::support::SiteApi;

const TOKEN: &str = "hardening-admin-token";
const SLOW: usize = 150;
/// The site's header and body timeouts are 10 s; a cut-off comes within
/// this of opening the connection.
const CUT_OFF: Duration = Duration::from_secs(25);

const BIN: &str = env!("CARGO_BIN_EXE_ferry-replicator");

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// site-a with one replicating VM, paired with an empty site-b.
fn pair(work: &Path) -> (SiteProcess, SiteProcess, String) {
    let (dir_a, dir_b) = (work.join("a"), work.join("b"));
    let (fp_a, fp_b) = (site_fingerprint(&dir_a), site_fingerprint(&dir_b));
    let ports = [free_port(), free_port(), free_port(), free_port()];
    let addr = |i: usize| format!("127.0.0.1:{}", ports[i]);
    let site = |dir: &Path, name: &str, own: [usize; 2], peer: (&str, [usize; 2], &str), vms| {
        SiteConfigBuilder::new(name)
            .listen(&addr(own[0]), &addr(own[1]))
            .peer(
                peer.0,
                &format!("http://{}", addr(peer.1[0])),
                &addr(peer.1[1]),
                peer.2,
            )
            .token("admin", Role::Admin, TOKEN)
            .vms(vms)
            .write(dir);
        SiteProcess::spawn(Path::new(BIN), &["--config"], dir, "warn")
    };
    let vm = VmSeed {
        guest: GuestSeed {
            records_per_second: 20.0,
            overwrite_kib_per_second: 256,
        },
        replication: Some(config::replication(5)),
        ..config::vm("vm-0", 8)
    };
    let b = site(&dir_b, "site-b", [2, 3], ("site-a", [0, 1], &fp_a), vec![]);
    let a = site(
        &dir_a,
        "site-a",
        [0, 1],
        ("site-b", [2, 3], &fp_b),
        vec![vm],
    );
    let api = a.api.clone();
    (a, b, api)
}

/// Opens a connection that sends `head` and then, if `trickle`, one byte
/// every half second; counts it in `open` once connected and in `cut`
/// once the site closed it (and a trickled body in `timeouts` if the
/// answer was a 408).
async fn slow_client(
    api: String,
    head: String,
    trickle: bool,
    open: Arc<AtomicUsize>,
    cut: Arc<AtomicUsize>,
    timeouts: Arc<AtomicUsize>,
) {
    let addr = api.trim_start_matches("http://").to_string();
    let Ok(mut stream) = tokio::net::TcpStream::connect(&addr).await else {
        return;
    };
    if stream.write_all(head.as_bytes()).await.is_err() {
        return;
    }
    open.fetch_add(1, Ordering::SeqCst);
    let mut answer = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        let read = if trickle {
            tokio::select! {
                read = stream.read(&mut buf) => Some(read),
                () = tokio::time::sleep(Duration::from_millis(500)) => None,
            }
        } else {
            Some(stream.read(&mut buf).await)
        };
        match read {
            Some(Ok(0) | Err(_)) => break,
            Some(Ok(n)) => answer.extend_from_slice(&buf[..n]),
            None => {
                if stream.write_all(b" ").await.is_err() {
                    // Closed while we wrote; what it said may still be there.
                    while let Ok(n) = stream.read(&mut buf).await {
                        if n == 0 {
                            break;
                        }
                        answer.extend_from_slice(&buf[..n]);
                    }
                    break;
                }
            }
        }
    }
    if trickle && String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 408") {
        timeouts.fetch_add(1, Ordering::SeqCst);
    }
    cut.fetch_add(1, Ordering::SeqCst);
}

#[test]
fn slow_clients_neither_block_the_api_nor_replication_and_are_cut_off() {
    let work = tempfile::tempdir().unwrap();
    let (_a, _b, api) = pair(work.path());
    let site_a = SiteApi::new(&api, TOKEN);
    let vm_id = wait_until(
        "site-a's first cycle",
        Duration::from_secs(60),
        Duration::from_millis(100),
        || match site_a.first_replication() {
            Some(r) if r.last_sync.is_some() => Ok(r.vm_id),
            other => Err(format!("{other:?}")),
        },
    );

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let [open, cut, timeouts] = [(); 3].map(|()| Arc::new(AtomicUsize::new(0)));
    let opened = Instant::now();
    let slow_header = "GET /api/v1/site HTTP/1.1\r\nHost: site-a\r\nAuthor".to_string();
    let slow_body = format!(
        "PUT /api/v1/replications/{vm_id} HTTP/1.1\r\nHost: site-a\r\n\
         Authorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\n\
         Content-Length: 4096\r\n\r\n{{"
    );
    for i in 0..2 * SLOW {
        let (head, trickle) = match i % 2 {
            0 => (slow_header.clone(), false),
            _ => (slow_body.clone(), true),
        };
        runtime.spawn(slow_client(
            api.clone(),
            head,
            trickle,
            open.clone(),
            cut.clone(),
            timeouts.clone(),
        ));
    }
    wait_until(
        "every slow client connected",
        Duration::from_secs(5),
        Duration::from_millis(20),
        || match open.load(Ordering::SeqCst) {
            n if n == 2 * SLOW => Ok(()),
            n => Err(format!("{n} of {}", 2 * SLOW)),
        },
    );

    // While all of them are held: the API answers quickly, every time, and
    // a new cycle completes.
    let after = now_ms();
    let mut slowest = Duration::ZERO;
    let mut calls = 0;
    let cycle = loop {
        let asked = Instant::now();
        let now = site_a
            .first_replication()
            .expect("the API answers while slow clients hold on");
        slowest = slowest.max(asked.elapsed());
        calls += 1;
        if let Some(last) = now.last_sync.filter(|l| l.finished_at > after) {
            break last;
        }
        // Before the site's 10 s timeouts: every slow client still held.
        assert!(
            opened.elapsed() < Duration::from_secs(9),
            "no cycle completed while the slow clients were held ({calls} calls)"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        slowest < Duration::from_secs(2),
        "slowest API call {slowest:?} over {calls} calls"
    );
    assert!(!cycle.full, "a delta cycle, as before");

    // Each slow client is cut off by the site's timeouts.
    wait_until(
        "every slow client cut off",
        CUT_OFF,
        Duration::from_millis(100),
        || match cut.load(Ordering::SeqCst) {
            n if n == 2 * SLOW => Ok(()),
            n => Err(format!("{n} of {} cut off", 2 * SLOW)),
        },
    );
    assert_eq!(
        timeouts.load(Ordering::SeqCst),
        SLOW,
        "each trickled body answered 408"
    );
    eprintln!(
        "{calls} API calls, slowest {slowest:?}; {} slow clients cut off within {:?}",
        2 * SLOW,
        opened.elapsed()
    );
}

#[test]
fn a_flood_of_bad_tokens_is_audited_within_the_audit_bound() {
    const KEEP: u64 = 150;
    const FLOOD: usize = 600;
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    SiteConfigBuilder::new("site-f")
        .token("admin", Role::Admin, TOKEN)
        .audit_keep_rows(KEEP)
        .write(dir);
    let site = SiteProcess::spawn(Path::new(BIN), &["--config"], dir, "warn");
    let refused = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for t in 0..8 {
            let (api, refused) = (&site.api, &refused);
            s.spawn(move || {
                let http = reqwest::blocking::Client::new();
                for i in 0..FLOOD / 8 {
                    let status = http
                        .get(format!("{api}/api/v1/site"))
                        .bearer_auth(format!("guess-{t}-{i}"))
                        .timeout(Duration::from_secs(10))
                        .send()
                        .expect("the site answers")
                        .status();
                    if status == 401 {
                        refused.fetch_add(1, Ordering::SeqCst);
                    }
                }
            });
        }
    });
    assert_eq!(refused.load(Ordering::SeqCst), FLOOD);
    let db = rusqlite::Connection::open(dir.join("site.db")).unwrap();
    let (rows, unauthorized): (u64, u64) = db
        .query_row("SELECT count(*), sum(status = 401) FROM audit", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert!(
        rows <= KEEP && unauthorized >= KEEP - 8,
        "{rows} audit rows ({unauthorized} refusals) for a bound of {KEEP}"
    );
}
