//! What trust costs, measured in one run on loopback:
//!
//! - replication end to end: a full sync of a 1 GiB disk onto an empty
//!   replica, then a 256 MiB delta, between a sender and an in-process
//!   receiver, once over the link's TLS 1.3 and once over the same link with
//!   bare TCP under the frames (`LinkTls::plain_for_benches`), everything
//!   else identical: the sender reading and hashing, the receiver checking
//!   hashes, writing and fsyncing its redo log, committing, consolidating.
//!   Throughput and CPU seconds per GiB shipped (both ends: one process);
//! - the link: `Blocks` frames of 16 × 64 KiB blocks (each with its
//!   sender-side hash, checked by decoding at the other end) shipped over
//!   TLS 1.3 with the link's pinned certificates, against the same codec
//!   over a bare TCP socket pair (the codec alone, without the link's
//!   reader and writer); throughput, CPU seconds per GiB and context
//!   switches per GiB (both ends run in this process: getrusage counts
//!   both);
//! - where TLS's time goes: the same bytes through rustls's record layer
//!   alone (a client and a server session with the link's configuration,
//!   records passed in memory on one thread, no socket), so the link's
//!   extra cost splits into TLS itself and the rest;
//! - the API: p50/p99 of `GET /api/v1/replications` with 1,000 VMs, over
//!   HTTPS (pinned) and over plain HTTP (`api_tls = false`), on one site
//!   whose peer is absent (its replications listed, none cycling).
//!
//! `cargo bench -p ferry-replicator --bench trust`; `FERRY_CYCLE_MIB`
//! (1024, the disk) and `FERRY_DELTA_MIB` (256), `FERRY_TRUST_GIB` (1, the link),
//! `FERRY_API_VMS` (1000), `FERRY_API_CALLS` (300) shorten or lengthen it.

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Ports, TOKEN, env_or, free_port, vms};
use ferry_api::pin::PinnedCert;
use ferry_replicator::identity::{CERT_NAME, Identity};
use ferry_replicator::replication::frame::{FrameReader, FrameWriter};
use ferry_replicator::replication::message::{
    BLOCKS_KIND, begin_blocks, decode, push_block, set_block_count,
};
use ferry_replicator::replication::{
    CycleProgress, CycleReport, LinkTls, Receiver, ReceiverConfig, SyncTarget, receiver, run_cycle,
};
use ferry_replicator::storage::{DEFAULT_BLOCK_SIZE, Geometry, TrackedVm};
use ferry_testkit::{SiteConfigBuilder, SiteProcess};

const BLOCK: usize = 64 * 1024;
const PER_FRAME: usize = 16;

fn usage() -> libc::rusage {
    // SAFETY: getrusage fills the struct it is given.
    unsafe {
        let mut usage = std::mem::zeroed::<libc::rusage>();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    }
}

/// User + system CPU seconds of this process so far.
fn cpu_seconds() -> f64 {
    let usage = usage();
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

/// User CPU seconds of this process so far: hashing, copying and crypto,
/// without the kernel's share (page cache, reclaim, fsync), which swings
/// with the rest of the machine.
fn user_seconds() -> f64 {
    let usage = usage();
    usage.ru_utime.tv_sec as f64 + usage.ru_utime.tv_usec as f64 / 1e6
}

/// Context switches of this process so far (a thread that blocks on its
/// socket, or is put aside for another): the price of small reads.
fn switches() -> f64 {
    let usage = usage();
    (usage.ru_nvcsw + usage.ru_nivcsw) as f64
}

/// Ships `bytes` of blocks from `writer` to `reader` (read on a thread of
/// its own); returns the wall time, the CPU seconds both ends used and
/// their context switches.
fn ship<R, W>(reader: R, writer: W, bytes: u64) -> (Duration, f64, f64)
where
    R: std::io::Read + Send + 'static,
    W: Write,
{
    let frames = bytes / (BLOCK * PER_FRAME) as u64;
    let receiving = std::thread::spawn(move || {
        let mut reader = FrameReader::new(reader, 4 << 20);
        let mut blocks = 0u64;
        for _ in 0..frames {
            let (kind, payload) = reader.read().expect("a frame");
            match decode(kind, payload).expect("a Blocks message that checks") {
                ferry_replicator::replication::message::Message::Blocks { entries, .. } => {
                    blocks += entries.len() as u64;
                }
                other => panic!("unexpected {}", other.name()),
            }
        }
        blocks
    });
    let mut data = vec![0u8; BLOCK];
    for (i, b) in data.iter_mut().enumerate() {
        *b = (i * 7 + 13) as u8;
    }
    let mut writer = FrameWriter::new(writer);
    let mut payload = Vec::with_capacity(PER_FRAME * (BLOCK + 32) + 8);
    let (cpu, switched) = (cpu_seconds(), switches());
    let start = Instant::now();
    for f in 0..frames {
        begin_blocks(&mut payload, 0);
        for b in 0..PER_FRAME {
            data[0] = b as u8;
            push_block(
                &mut payload,
                f * PER_FRAME as u64 + b as u64,
                BLOCK as u32,
                Some(&data),
            );
        }
        set_block_count(&mut payload, PER_FRAME as u32);
        writer.write(BLOCKS_KIND, &payload).expect("written");
    }
    writer.flush().expect("flushed");
    let blocks = receiving.join().expect("the reader");
    assert_eq!(blocks, frames * PER_FRAME as u64);
    (start.elapsed(), cpu_seconds() - cpu, switches() - switched)
}

/// The link's two sessions, with the link's settings (TLS 1.3 only, ring,
/// each pinning the other), but no socket: for the in-memory measure.
fn sessions() -> (rustls::ClientConnection, rustls::ServerConnection) {
    let (a, b) = (
        Identity::ephemeral().expect("identity"),
        Identity::ephemeral().expect("identity"),
    );
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let client = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("TLS 1.3")
        .dangerous()
        .with_custom_certificate_verifier(PinnedCert::new(Some(b.fingerprint)))
        .with_client_auth_cert(vec![a.cert.clone()], a.key.clone_key())
        .expect("client config");
    let server = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("TLS 1.3")
        .with_client_cert_verifier(PinnedCert::new(Some(a.fingerprint)))
        .with_single_cert(vec![b.cert.clone()], b.key.clone_key())
        .expect("server config");
    let name = rustls::pki_types::ServerName::try_from(CERT_NAME).expect("name");
    let client = rustls::ClientConnection::new(Arc::new(client), name).expect("client");
    let server = rustls::ServerConnection::new(Arc::new(server)).expect("server");
    (client, server)
}

/// Moves every record `from` has to send into `to`, and lets `to` read them.
fn pass(from: &mut rustls::Connection, to: &mut rustls::Connection, wire: &mut Vec<u8>) {
    wire.clear();
    while from.wants_write() {
        from.write_tls(wire).expect("records out");
    }
    let mut records = &wire[..];
    while !records.is_empty() {
        to.read_tls(&mut records).expect("records in");
        to.process_new_packets().expect("records that check");
    }
}

/// CPU seconds per GiB for encrypting and decrypting `bytes` in rustls's
/// record layer, in the link's 1 MiB writes, on one thread.
fn record_layer(bytes: u64) -> f64 {
    let (client, server) = sessions();
    let (mut client, mut server): (rustls::Connection, rustls::Connection) =
        (client.into(), server.into());
    let mut wire = Vec::new();
    while client.is_handshaking() || server.is_handshaking() {
        pass(&mut client, &mut server, &mut wire);
        pass(&mut server, &mut client, &mut wire);
    }
    client.set_buffer_limit(None);
    let chunk = vec![0x5au8; BLOCK * PER_FRAME];
    let mut out = vec![0u8; chunk.len()];
    let cpu = cpu_seconds();
    let mut records = Vec::new();
    for _ in 0..bytes / chunk.len() as u64 {
        client.writer().write_all(&chunk).expect("encrypted");
        records.clear();
        while client.wants_write() {
            client.write_tls(&mut records).expect("records out");
        }
        // The receiving end takes records as a socket gives them: in
        // pieces, reading the plaintext out as it goes.
        let (mut input, mut got) = (&records[..], 0);
        while got < out.len() {
            if !input.is_empty() {
                server.read_tls(&mut input).expect("records in");
                server.process_new_packets().expect("records that check");
            }
            match server.reader().read(&mut out[got..]) {
                Ok(n) => got += n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => panic!("reading: {e}"),
            }
        }
        assert_eq!(out[out.len() - 1], 0x5a);
    }
    (cpu_seconds() - cpu) / (bytes as f64 / (1u64 << 30) as f64)
}

fn link(gib: u64) {
    let bytes = gib << 30;
    let report = |what: &str, (wall, cpu, switched): (Duration, f64, f64)| {
        let mib_s = bytes as f64 / (1 << 20) as f64 / wall.as_secs_f64();
        let (cpu_gib, switches_gib) = (cpu / gib as f64, switched / gib as f64);
        println!(
            "link {what:<28} {mib_s:>8.0} MiB/s  {cpu_gib:>6.2} CPU s/GiB (both ends)  \
             {switches_gib:>7.0} context switches/GiB"
        );
        mib_s
    };

    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let sender = TcpStream::connect(addr).expect("connect");
    let (receiver, _) = listener.accept().expect("accept");
    let plain = report("plain TCP (baseline)", ship(receiver, sender, bytes));

    let (a, b) = (
        Identity::ephemeral().expect("identity"),
        Identity::ephemeral().expect("identity"),
    );
    let (tls_a, tls_b) = (
        LinkTls::new(&a, Some(b.fingerprint)).expect("tls"),
        LinkTls::new(&b, Some(a.fingerprint)).expect("tls"),
    );
    let accepting = std::thread::spawn(move || {
        let (tcp, _) = listener.accept().expect("accept");
        tls_b.accept(tcp).expect("handshake")
    });
    // The unused halves stay alive: dropping one would close the session.
    let (_sender_reader, writer) = tls_a
        .connect(TcpStream::connect(addr).expect("connect"))
        .expect("handshake");
    let (reader, _receiver_writer) = accepting.join().expect("accepted");
    let tls = report("TLS 1.3, pinned", ship(reader, writer, bytes));
    println!("link TLS / plain: {:.2}x (target >= 0.8x)", tls / plain);
    println!(
        "TLS record layer alone (in memory, one thread): {:.2} CPU s/GiB",
        record_layer(bytes)
    );
}

/// A receiver on a free loopback port, on a runtime of its own, until the
/// returned sender is dropped.
fn start_receiver(
    tls: LinkTls,
    datastore: &Path,
) -> (
    String,
    tokio::sync::oneshot::Sender<()>,
    std::thread::JoinHandle<()>,
) {
    let config = ReceiverConfig {
        site: "site-b".into(),
        tls,
        datastores: BTreeMap::from([("ds".to_string(), datastore.to_path_buf())]),
    };
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            addr_tx
                .send(listener.local_addr().expect("addr"))
                .expect("send");
            receiver::serve(listener, Receiver::new(config), async {
                let _ = stopped.await;
            })
            .await;
        });
    });
    let addr = addr_rx.recv().expect("receiver address").to_string();
    (addr, stop, serving)
}

/// Fills `blocks` of the VM's disk with pseudo-random bytes from `seed`
/// (the same seed writes the same bytes, so both links ship the same disk).
fn scribble(vm: &TrackedVm, blocks: impl Iterator<Item = u64>, seed: &mut u64) {
    let mut buf = vec![0u8; DEFAULT_BLOCK_SIZE as usize];
    for block in blocks {
        for word in buf.chunks_exact_mut(8) {
            *seed ^= *seed << 13;
            *seed ^= *seed >> 7;
            *seed ^= *seed << 17;
            word.copy_from_slice(&seed.to_le_bytes());
        }
        vm.disks()[0]
            .write_at(&buf, block * DEFAULT_BLOCK_SIZE as u64)
            .expect("write");
    }
}

/// One cycle with the CPU seconds (all, user) both ends spent on it.
fn timed_cycle(vm: &TrackedVm, target: &SyncTarget) -> (CycleReport, (f64, f64)) {
    let (cpu, user) = (cpu_seconds(), user_seconds());
    let report = run_cycle("vm", vm, target, false, &CycleProgress::default()).expect("cycle");
    (report, (cpu_seconds() - cpu, user_seconds() - user))
}

/// A full sync of a `disk_mib` disk onto an empty replica, then a delta of
/// `delta_mib` in random blocks, over TLS or bare TCP; returns
/// (full, delta) as (MiB/s, CPU s and user CPU s per GiB shipped).
fn replicate(work: &Path, disk_mib: u64, delta_mib: u64, plain: bool) -> [(f64, f64, f64); 2] {
    let (a, b) = (
        Identity::ephemeral().expect("identity"),
        Identity::ephemeral().expect("identity"),
    );
    let link = if plain {
        LinkTls::plain_for_benches
    } else {
        LinkTls::new
    };
    let dir = work.join(if plain { "plain" } else { "tls" });
    let (addr, stop, serving) = start_receiver(
        link(&b, Some(a.fingerprint)).expect("link"),
        &dir.join("ds"),
    );
    let target = SyncTarget {
        addr,
        tls: link(&a, Some(b.fingerprint)).expect("link"),
        site: "site-a".into(),
        datastore: "ds".into(),
        compress: false,
        retention: Default::default(),
    };
    let block = DEFAULT_BLOCK_SIZE as u64;
    let blocks = (disk_mib << 20) / block;
    let vm = TrackedVm::open(
        &dir.join("src"),
        &[(
            dir.join("src").join("disk-0.raw"),
            Geometry::new(blocks * block, DEFAULT_BLOCK_SIZE),
        )],
    )
    .expect("open VM");
    let mut seed = 0x5eed_1234_abcd_ef01u64;
    scribble(&vm, 0..blocks, &mut seed);
    let (full, full_cpu) = timed_cycle(&vm, &target);
    assert!(
        full.full,
        "the first cycle onto an empty replica is a full sync"
    );
    // A delta of every `stride`-th block, offset so it is not block 0 on.
    let stride = (blocks / ((delta_mib << 20) / block)).max(1);
    scribble(
        &vm,
        (3 % stride..blocks).step_by(stride as usize),
        &mut seed,
    );
    let (delta, delta_cpu) = timed_cycle(&vm, &target);
    assert!(!delta.full);
    drop(vm);
    let _ = stop.send(());
    serving.join().expect("the receiver");
    let _ = std::fs::remove_dir_all(&dir);
    let figures = |report: &CycleReport, (cpu, user): (f64, f64)| {
        let gib = report.data_bytes as f64 / (1 << 30) as f64;
        (
            gib * 1024.0 / report.duration.as_secs_f64(),
            cpu / gib,
            user / gib,
        )
    };
    [figures(&full, full_cpu), figures(&delta, delta_cpu)]
}

/// `FERRY_CYCLE_ROUNDS` rounds (2), alternating which link goes first, so
/// neither always meets a colder page cache or a busier disk.
fn replication(work: &Path) {
    let (disk, delta, rounds) = (
        env_or("FERRY_CYCLE_MIB", 1024),
        env_or("FERRY_DELTA_MIB", 256),
        env_or("FERRY_CYCLE_ROUNDS", 2),
    );
    let names = [
        format!("full sync, {disk} MiB onto empty"),
        format!("delta, {delta} MiB of blocks"),
    ];
    println!(
        "{:<32} {:>22} {:>22} {:>7} {:>7} {:>7}",
        "replication end to end", "plain TCP", "TLS 1.3, pinned", "MiB/s", "CPU s", "user s"
    );
    println!(
        "{:<32} {:>22} {:>22} {:>7} {:>7} {:>7}",
        "", "MiB/s CPU(user) s/GiB", "MiB/s CPU(user) s/GiB", "TLS/pl", "TLS/pl", "TLS/pl"
    );
    for round in 0..rounds {
        let tls_first = round % 2 == 1;
        let first = replicate(work, disk, delta, !tls_first);
        let second = replicate(work, disk, delta, tls_first);
        let (plain, tls) = if tls_first {
            (second, first)
        } else {
            (first, second)
        };
        let order = if tls_first {
            "TLS first"
        } else {
            "plain first"
        };
        for (i, name) in names.iter().enumerate() {
            let ((pm, pc, pu), (tm, tc, tu)) = (plain[i], tls[i]);
            println!(
                "{name:<32} {pm:>7.0} {pc:>6.2} ({pu:>4.2}) {tm:>7.0} {tc:>6.2} ({tu:>4.2}) \
                 {:>6.2}x {:>6.2}x {:>6.2}x  (round {}, {order})",
                tm / pm,
                tc / pc,
                tu / pu,
                round + 1
            );
        }
    }
    println!("(target: TLS throughput >= 0.8x plain; CPU seconds are both ends together)\n");
}

/// p50 and p99 of `GET /api/v1/replications` on a site with `count` VMs.
fn api(work: &Path, count: u64, calls: u64, tls: bool) -> (f64, f64) {
    let dir = work.join(if tls { "https" } else { "http" });
    let fingerprint = ferry_testkit::site_fingerprint(&dir);
    let absent = Identity::ephemeral()
        .expect("identity")
        .fingerprint
        .to_string();
    let ports = Ports {
        api: free_port(),
        repl: free_port(),
    };
    SiteConfigBuilder::new("site-a")
        .listen(
            &format!("127.0.0.1:{}", ports.api),
            &format!("127.0.0.1:{}", ports.repl),
        )
        .api_tls(tls)
        // A peer that is never there: the replications are listed (not
        // active), and no cycle competes with the API for the CPU.
        .peer("site-b", "http://127.0.0.1:9", "127.0.0.1:9", &absent)
        .token("bench", ferry_replicator::access::Role::Admin, TOKEN)
        .vms(vms(count, 1, false, 0, 300))
        .write(&dir);
    let mut site = SiteProcess::spawn(
        Path::new(env!("CARGO_BIN_EXE_ferry-replicator")),
        &["--config"],
        &dir,
        "warn",
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let client = ferry_api::Client::pinned(
        "site-a",
        &site.api,
        TOKEN,
        Duration::from_secs(30),
        tls.then_some(fingerprint.as_str()),
    )
    .expect("client");
    let mut times = Vec::new();
    for i in 0..calls + 20 {
        let t = Instant::now();
        let n = runtime
            .block_on(client.replications())
            .expect("replications")
            .len();
        assert_eq!(n as u64, count);
        if i >= 20 {
            times.push(t.elapsed());
        }
    }
    site.terminate();
    times.sort();
    let pct = |p: f64| times[((times.len() - 1) as f64 * p) as usize].as_secs_f64() * 1e3;
    (pct(0.5), pct(0.99))
}

fn main() {
    let work = tempfile::Builder::new()
        .prefix("ferry-trust")
        .tempdir_in(std::env::var_os("FERRY_BENCH_DIR").unwrap_or_else(|| "/var/tmp".into()))
        .expect("work dir");
    replication(work.path());
    link(env_or("FERRY_TRUST_GIB", 1));
    let count = env_or("FERRY_API_VMS", 1000);
    let calls = env_or("FERRY_API_CALLS", 300);
    for tls in [false, true] {
        let (p50, p99) = api(work.path(), count, calls, tls);
        println!(
            "api GET /api/v1/replications, {count} VMs, {}: p50 {p50:.2} ms, p99 {p99:.2} ms",
            if tls { "HTTPS (pinned)" } else { "HTTP" }
        );
    }
}
