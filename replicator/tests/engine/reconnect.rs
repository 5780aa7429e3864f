//! A sender that reconnects at once (after a restart or a dropped link) is
//! served, not refused as a second writer: the receiver waits out the old
//! session, whose thread may not have seen the close yet. A session that is
//! still alive keeps its replica to itself.

use std::time::{Duration, Instant};

use ferry_replicator::replication::WireError;
use ferry_replicator::replication::connection::Connection;
use ferry_replicator::replication::message::Message;

use super::support::*;

fn opened(conn: &mut Connection, what: &str) {
    match conn.recv() {
        Ok(Message::Opened { .. }) => {}
        Ok(other) => panic!("{what}: {other:?}"),
        Err(e) => panic!("{what}: {e}"),
    }
}

#[test]
fn a_reconnect_right_after_a_dropped_connection_is_not_refused() {
    let source = tempfile::tempdir().unwrap();
    let target_dir = tempfile::tempdir().unwrap();
    let receiver = TestReceiver::start(target_dir.path());
    let vm = open_vm(source.path(), 1, 1 << 20);
    cycle(&vm, &receiver.addr).unwrap();
    // Many rounds: each is a race the old session's thread used to win or
    // lose by chance.
    for round in 0..20u8 {
        let mut old = open_session(&receiver.addr);
        opened(&mut old, "the first session");
        // The new connection asks while the old one is still open, and the
        // old one drops.
        let mut new = open_session(&receiver.addr);
        drop(old);
        opened(&mut new, &format!("round {round}: the reconnect"));
        drop(new);
        // And a whole cycle at once after that drop.
        vm.disks()[0].write_at(&[round; 4096], 0).unwrap();
        if let Err(e) = cycle(&vm, &receiver.addr) {
            panic!("round {round}: the cycle after a drop: {e}");
        }
    }
    let (_, disks) = replica_contents(&receiver.replica_dir());
    assert_same("after the reconnects", &disks, &source_contents(&vm));
}

#[test]
fn a_second_writer_is_refused_while_the_first_session_lives() {
    let source = tempfile::tempdir().unwrap();
    let target_dir = tempfile::tempdir().unwrap();
    let receiver = TestReceiver::start(target_dir.path());
    let vm = open_vm(source.path(), 1, 1 << 20);
    cycle(&vm, &receiver.addr).unwrap();
    let mut first = open_session(&receiver.addr);
    opened(&mut first, "the first session");
    let asked = Instant::now();
    let mut second = open_session(&receiver.addr);
    match second.recv() {
        Err(WireError::Refused(reason)) => {
            assert!(reason.contains("already receiving"), "{reason}")
        }
        other => panic!("a second writer was not refused: {other:?}"),
    }
    // Refused only after the wait for the first to end, and not for ever.
    let waited = asked.elapsed();
    assert!(waited >= Duration::from_secs(4), "refused after {waited:?}");
    assert!(waited < Duration::from_secs(30), "refused after {waited:?}");
    drop(first);
}
