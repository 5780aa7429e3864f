//! An attacker on the path: a relay between the sites that passes bytes
//! through, flips one, injects a frame, replays a recorded session or
//! presents its own certificate. Only the honest relay gets a cycle
//! through; every other case is refused, leaves the replica as it was and
//! is reported to the site's alarm hook.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferry_replicator::identity::Identity;
use ferry_replicator::replication::message::Message;
use ferry_replicator::replication::tls::is_tls_refusal;
use ferry_replicator::replication::{CycleProgress, LinkTls, WireError, run_cycle};

use super::support::*;

#[derive(Clone, Copy)]
enum Tamper {
    Pass,
    /// Flips one bit of the byte at this offset of the sender's stream.
    Flip(usize),
    /// Puts a well-formed plaintext frame into the stream at this offset.
    Inject(usize),
}

/// Relays one connection to `upstream`, tampering with what the sender
/// says; everything the sender said is kept in `recorded`.
fn relay(upstream: String, tamper: Tamper, recorded: Arc<Mutex<Vec<u8>>>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        let (client, _) = listener.accept().unwrap();
        let server = TcpStream::connect(&upstream).unwrap();
        let (mut c_read, mut s_write) = (client.try_clone().unwrap(), server.try_clone().unwrap());
        let back = std::thread::spawn({
            let (mut s_read, mut c_write) = (server, client);
            move || {
                let _ = std::io::copy(&mut s_read, &mut c_write);
                let _ = c_write.shutdown(Shutdown::Both);
            }
        });
        let mut seen = 0usize;
        let mut buf = vec![0u8; 16 << 10];
        loop {
            let n = match c_read.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let chunk = &mut buf[..n];
            recorded.lock().unwrap().extend_from_slice(chunk);
            let mut extra = Vec::new();
            match tamper {
                Tamper::Flip(at) if (seen..seen + n).contains(&at) => chunk[at - seen] ^= 0x10,
                Tamper::Inject(at) if (seen..seen + n).contains(&at) => {
                    let mut payload = Vec::new();
                    let end = Message::End {
                        instance: 2,
                        blocks: 0,
                    };
                    end.encode(&mut payload);
                    extra = ((payload.len() + 2) as u32).to_be_bytes().to_vec();
                    extra.extend_from_slice(&[end.kind(), 0]);
                    extra.extend_from_slice(&payload);
                }
                _ => {}
            }
            seen += n;
            if s_write.write_all(chunk).is_err() || s_write.write_all(&extra).is_err() {
                break;
            }
        }
        let _ = s_write.shutdown(Shutdown::Both);
        let _ = back.join();
    });
    addr
}

/// A source VM with enough changed data that the stream runs to many
/// TLS records past the handshake.
fn busy_vm(dir: &std::path::Path, seed: u64) -> ferry_replicator::storage::TrackedVm {
    let vm = open_vm(dir, 1, 1 << 20);
    let mut data = vec![0u8; 256 << 10];
    Rng::new(seed).fill(&mut data);
    vm.disks()[0].write_at(&data, 0).unwrap();
    vm
}

fn wait_refusals(receiver: &TestReceiver, at_least: usize) {
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while receiver.refusals.load(Ordering::SeqCst) < at_least {
        assert!(
            std::time::Instant::now() < deadline,
            "the receiver did not report a refusal"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_relay_that_tampers_is_refused_and_changes_nothing() {
    let source = tempfile::tempdir().unwrap();
    let target_dir = tempfile::tempdir().unwrap();
    let receiver = TestReceiver::start(target_dir.path());
    let vm = busy_vm(source.path(), 1);

    // (a) An honest relay: the cycle goes through.
    let recorded = Arc::new(Mutex::new(Vec::new()));
    let addr = relay(receiver.addr.clone(), Tamper::Pass, recorded.clone());
    let report = cycle(&vm, &addr).unwrap();
    assert_eq!(report.instance, 1);
    let before = replica_contents(&receiver.replica_dir());
    assert_eq!(before.1, source_contents(&vm));
    // The relay carried the whole cycle, yet saw none of the guest's data.
    let session = recorded.lock().unwrap().clone();
    assert!(session.len() > 256 << 10, "{} bytes relayed", session.len());
    let mut guest = vec![0u8; 64];
    Rng::new(1).fill(&mut guest);
    assert!(
        !session.windows(guest.len()).any(|w| w == guest),
        "guest data visible on the wire"
    );

    // New data for the cycles the relay will spoil.
    let mut data = vec![0u8; 128 << 10];
    Rng::new(2).fill(&mut data);
    vm.disks()[0].write_at(&data, 512 << 10).unwrap();

    let mut refusals = 0;
    for (name, tamper) in [
        ("flipped byte", Tamper::Flip(40_000)),
        ("injected frame", Tamper::Inject(40_000)),
    ] {
        let addr = relay(
            receiver.addr.clone(),
            tamper,
            Arc::new(Mutex::new(Vec::new())),
        );
        let outcome = cycle(&vm, &addr);
        assert!(outcome.is_err(), "{name}: the cycle went through");
        refusals += 1;
        wait_refusals(&receiver, refusals);
        assert_eq!(
            replica_contents(&receiver.replica_dir()),
            before,
            "{name}: the replica changed"
        );
    }

    // (d) The recorded honest session, replayed: refused in the handshake.
    let mut replay = TcpStream::connect(&receiver.addr).unwrap();
    let _ = replay.write_all(&session);
    replay
        .set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    let mut sink = Vec::new();
    let _ = replay.read_to_end(&mut sink);
    refusals += 1;
    wait_refusals(&receiver, refusals);
    assert_eq!(replica_contents(&receiver.replica_dir()), before, "replay");

    // A cleartext client on the TLS port: refused before any frame.
    let mut cleartext = TcpStream::connect(&receiver.addr).unwrap();
    let _ = cleartext.write_all(&open_frame());
    refusals += 1;
    wait_refusals(&receiver, refusals);
    assert_eq!(
        replica_contents(&receiver.replica_dir()),
        before,
        "cleartext"
    );

    // And the honest path still works afterwards.
    let report = cycle(&vm, &receiver.addr).unwrap();
    assert_eq!(report.instance, 2);
    assert_eq!(
        replica_contents(&receiver.replica_dir()).1,
        source_contents(&vm)
    );
}

#[test]
fn a_relay_with_its_own_certificate_is_refused_by_the_sender() {
    let source = tempfile::tempdir().unwrap();
    let vm = busy_vm(source.path(), 3);
    // The relay ends TLS itself, with a certificate of its own, as a
    // man in the middle would.
    let impostor = Identity::ephemeral().unwrap();
    let tls = LinkTls::new(&impostor, Some(SENDER.fingerprint)).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let relay = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        tls.accept(stream).map(|_| ())
    });
    let outcome = run_cycle(VM, &vm, &target(&addr), false, &CycleProgress::default());
    match outcome {
        Err(WireError::Io(e)) if is_tls_refusal(&e) => {
            assert!(e.to_string().contains("not the pinned"), "{e}");
        }
        Err(other) => panic!("refused for the wrong reason: {other}"),
        Ok(_) => panic!("the sender shipped a cycle to an impostor"),
    }
    assert!(relay.join().unwrap().is_err(), "the impostor got a session");
}
