//! Bad input off the wire: every malformed, oversized, unauthenticated or
//! explosive frame closes that connection, changes no replica, and leaves the
//! receiver serving everyone else.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use ferry_replicator::identity::Identity;
use ferry_replicator::replication::connection::Connection;
use ferry_replicator::replication::message::{Message, begin_blocks, push_block, set_block_count};
use ferry_replicator::replication::tls::is_tls_refusal;
use ferry_replicator::replication::{LinkTls, WireError};

use super::support::*;

/// True once the receiver has closed `stream` (EOF or reset).
fn closed_by_peer(stream: &mut TcpStream) -> bool {
    stream
        .set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue, // e.g. a Refused frame before the close
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return false,
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => return false,
            Err(_) => return true,
        }
    }
}

fn raw(addr: &str, bytes: &[u8]) -> TcpStream {
    let mut stream = TcpStream::connect(addr).unwrap();
    let _ = stream.write_all(bytes);
    stream
}

/// An authenticated session that has opened the VM and begun its next cycle.
fn begun(addr: &str, instance: u64) -> Connection {
    let mut conn = open_session(addr);
    assert!(matches!(conn.recv().unwrap(), Message::Opened { .. }));
    conn.send_now(&Message::Begin {
        instance,
        point_time_ms: 1,
        full: false,
    })
    .unwrap();
    conn
}

fn send_raw(conn: &mut Connection, bytes: &[u8]) {
    // Inside TLS, so the receiver sees exactly these bytes as frames.
    let _ = conn.writer.get_mut().unwrap().write_all(bytes);
}

fn blocks_payload(block: u64, len: u32, data: &[u8]) -> Vec<u8> {
    let mut payload = Vec::new();
    begin_blocks(&mut payload, 0);
    push_block(&mut payload, block, len, Some(data));
    set_block_count(&mut payload, 1);
    payload
}

#[test]
fn bad_frames_close_the_connection_and_change_nothing() {
    let source = tempfile::tempdir().unwrap();
    let target_dir = tempfile::tempdir().unwrap();
    let receiver = TestReceiver::start(target_dir.path());
    let vm = open_vm(source.path(), 1, 1 << 20);
    vm.disks()[0].write_at(&[5; 8192], 4096).unwrap();
    cycle(&vm, &receiver.addr).unwrap();
    let before = replica_contents(&receiver.replica_dir());
    assert_eq!(before.0, Some(1));

    // A slow stranger holds a connection open the whole time.
    let idle = TcpStream::connect(&receiver.addr).unwrap();

    let mut rng = Rng::new(7);
    let mut garbage = vec![0u8; 4000];
    rng.fill(&mut garbage);
    let bomb = zstd::bulk::compress(&vec![0u8; 32 << 20], 3).unwrap();
    let mut bomb_payload = 4096u32.to_be_bytes().to_vec();
    bomb_payload.extend_from_slice(&bomb);

    type Case<'a> = (&'a str, Box<dyn Fn() -> TcpStream + 'a>);
    let cases: Vec<Case> = vec![
        ("garbage", Box::new(|| raw(&receiver.addr, &garbage))),
        (
            "oversized before auth",
            Box::new(|| raw(&receiver.addr, &frame(1, 0, &vec![0; 64 << 10]))),
        ),
        (
            "huge length prefix",
            Box::new(|| raw(&receiver.addr, &[0xff, 0xff, 0xff, 0xff, 1, 0])),
        ),
        (
            "truncated",
            Box::new(|| {
                let stream = raw(&receiver.addr, &[0, 0, 0, 40, 1, 0, 1]);
                stream.shutdown(std::net::Shutdown::Write).unwrap();
                stream
            }),
        ),
        (
            "Open before auth",
            Box::new(|| raw(&receiver.addr, &open_frame())),
        ),
        (
            "compression bomb after auth",
            Box::new(|| {
                let mut conn = begun(&receiver.addr, 2);
                send_raw(&mut conn, &frame(9, 1, &bomb_payload));
                conn.reader.get_ref().tcp().try_clone().unwrap()
            }),
        ),
        (
            "oversized after auth",
            Box::new(|| {
                let mut conn = begun(&receiver.addr, 2);
                let mut head = ((9u32 << 20) + 2).to_be_bytes().to_vec();
                head.extend_from_slice(&[9, 0]);
                send_raw(&mut conn, &head);
                conn.reader.get_ref().tcp().try_clone().unwrap()
            }),
        ),
        (
            "block beyond the disk",
            Box::new(|| {
                let mut conn = begun(&receiver.addr, 2);
                send_raw(
                    &mut conn,
                    &frame(9, 0, &blocks_payload(256, 4096, &[1; 4096])),
                );
                conn.reader.get_ref().tcp().try_clone().unwrap()
            }),
        ),
        (
            "short block",
            Box::new(|| {
                let mut conn = begun(&receiver.addr, 2);
                send_raw(&mut conn, &frame(9, 0, &blocks_payload(3, 100, &[1; 100])));
                conn.reader.get_ref().tcp().try_clone().unwrap()
            }),
        ),
        (
            "End that does not add up",
            Box::new(|| {
                let mut conn = begun(&receiver.addr, 2);
                send_raw(
                    &mut conn,
                    &frame(9, 0, &blocks_payload(3, 4096, &[1; 4096])),
                );
                conn.send_now(&Message::End {
                    instance: 2,
                    blocks: 5,
                })
                .unwrap();
                conn.reader.get_ref().tcp().try_clone().unwrap()
            }),
        ),
        (
            "instance out of order",
            Box::new(|| {
                begun(&receiver.addr, 7)
                    .reader
                    .get_ref()
                    .tcp()
                    .try_clone()
                    .unwrap()
            }),
        ),
    ];
    for (name, case) in cases {
        let mut stream = case();
        assert!(closed_by_peer(&mut stream), "{name}: connection not closed");
        assert_eq!(
            replica_contents(&receiver.replica_dir()),
            before,
            "{name}: the replica changed"
        );
    }

    // A stranger's certificate: refused by TLS before any frame.
    let stranger = Identity::ephemeral().unwrap();
    let tls = LinkTls::new(&stranger, Some(RECEIVER.fingerprint)).unwrap();
    let refused = Connection::connect(&receiver.addr, &tls, "site-x").and_then(|mut conn| {
        conn.send_now(&Message::Open {
            vm: VM,
            datastore: "ds",
            block_size: 4096,
            disk_sizes: vec![1 << 20],
            retention: Default::default(),
        })?;
        conn.recv().map(|_| ())
    });
    match refused {
        Err(WireError::Io(e)) if is_tls_refusal(&e) => {}
        Err(other) => panic!("stranger: {other}"),
        Ok(()) => panic!("a stranger's certificate was accepted"),
    }
    // And a receiver that is not the pinned one is refused by the sender.
    let unpinned = LinkTls::new(&SENDER, Some(stranger.fingerprint)).unwrap();
    match Connection::connect(&receiver.addr, &unpinned, "site-a") {
        Err(WireError::Io(e)) if is_tls_refusal(&e) => {}
        Err(other) => panic!("unpinned receiver: {other}"),
        Ok(_) => panic!("the sender accepted a receiver it did not pin"),
    }
    // A path-escaping VM id and an unknown datastore are refused.
    for (vm_id, datastore) in [("../escape", "ds"), (VM, "nope")] {
        let tls = sender_tls(RECEIVER.fingerprint);
        let mut conn = Connection::connect(&receiver.addr, &tls, "site-a").unwrap();
        conn.send_now(&Message::Open {
            vm: vm_id,
            datastore,
            block_size: 4096,
            disk_sizes: vec![1 << 20],
            retention: Default::default(),
        })
        .unwrap();
        assert!(
            matches!(conn.recv(), Err(WireError::Refused(_))),
            "{vm_id} in {datastore}"
        );
    }
    assert!(!target_dir.path().join("escape").exists());
    assert_eq!(replica_contents(&receiver.replica_dir()), before);

    // The receiver still serves a good peer, with the stranger still idle.
    vm.disks()[0].write_at(&[6; 4096], 0).unwrap();
    let report = cycle(&vm, &receiver.addr).unwrap();
    assert_eq!(report.instance, 2);
    let (_, disks) = replica_contents(&receiver.replica_dir());
    assert_same("after the bad frames", &disks, &source_contents(&vm));
    // The idle stranger is dropped at the handshake timeout; not waited for.
    idle.set_nonblocking(true).unwrap();
}
