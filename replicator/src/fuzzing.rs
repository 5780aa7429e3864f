//! Entry points for the fuzzers (`replicator/fuzz/`, cargo-fuzz) and for
//! the test that replays their committed corpus: each takes any bytes and
//! must return without panicking, whatever they are. Every parser that
//! reads what a peer, a disk or an operator wrote has one here.
//!
//! Files that end in a checksum are also decoded with the checksum made
//! valid for the bytes before it: the fuzzer cannot forge an xxh3, and
//! without this it would only ever exercise the checksum's refusal.

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use xxhash_rust::xxh3::{Xxh3Default, xxh3_64};

use crate::replication::frame::FrameReader;
use crate::replication::message;
use crate::storage::fs::sim::SimFs;
use crate::storage::fs::{FileLayer, Open};
use crate::storage::{Geometry, ReplicaState, promote, redo_log, tracked_vm};

/// A fuzz target: any bytes in, no panic.
pub type Target = fn(&[u8]);

/// The targets by name, as the fuzz project and the corpus directories
/// name them.
pub const TARGETS: &[(&str, Target)] = &[
    ("frames", frames),
    ("replica_state", replica_state),
    ("promote_marker", promote_marker),
    ("redo_log", redo_log),
    ("tracking", tracking),
    ("site_toml", site_toml),
    ("api_json", api_json),
    ("handshake", handshake),
    ("callout", callout),
    ("block_sums", block_sums),
];

/// A stream off the wire: frames, each decoded as a message.
pub fn frames(data: &[u8]) {
    let mut reader = FrameReader::new(Cursor::new(data), 1 << 20);
    for _ in 0..1024 {
        match reader.read() {
            Ok((kind, payload)) => {
                let _ = message::decode(kind, payload);
            }
            Err(_) => return,
        }
    }
}

/// `replica.state`: what decodes must encode back to the same state, and
/// describe disks that divide into blocks.
pub fn replica_state(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let sealed = format!("{text}checksum {:016x}\n", xxh3_64(text.as_bytes()));
    for text in [text, &sealed] {
        if let Some(state) = ReplicaState::decode(text) {
            for &size in &state.disk_sizes {
                let _ = Geometry::new(size, state.block_size).block_count();
            }
            let again = String::from_utf8(state.encode()).ok();
            assert_eq!(again.as_deref().and_then(ReplicaState::decode), Some(state));
        }
    }
}

/// `data` followed by its xxh3, as checksummed files end.
fn sealed(data: &[u8]) -> Vec<u8> {
    let mut out = data.to_vec();
    out.extend_from_slice(&xxh3_64(data).to_le_bytes());
    out
}

/// A promote's marker.
pub fn promote_marker(data: &[u8]) {
    if let Some(point) = promote::decode_marker(data) {
        assert_eq!(promote::encode_marker(point).as_bytes(), data);
    }
}

/// A redo log as found at open: read as committed or not, and every data
/// record of a committed one read back; then again with a commit record
/// appended that vouches for the records before it.
pub fn redo_log(data: &[u8]) {
    let sealed = sealed_redo_log(data);
    for data in std::iter::once(data).chain(sealed.as_deref()) {
        let fs = SimFs::new();
        let path = Path::new("/r/redo.log");
        let Ok(file) = fs.open(path, Open::Write) else {
            return;
        };
        if file.write_all_at(data, 0).is_err() {
            return;
        }
        drop(file);
        let layer: Arc<dyn FileLayer> = Arc::new(fs);
        if let Ok(Some(log)) = redo_log::read_committed(&*layer, path) {
            let _ = log.verify();
            let mut buf = Vec::new();
            for record in log.records.iter().take(4096) {
                let _ = log.read_data(record, &mut buf);
            }
        }
    }
}

/// `data` cut after its last whole record, with the commit record the
/// writer would have appended: the records are walked as `redo_log.rs`
/// lays them out (a 36-byte fixed header, 8 bytes per disk and 8 more,
/// then 23-byte record heads, a data record's bytes after its head).
fn sealed_redo_log(data: &[u8]) -> Option<Vec<u8>> {
    const HEAD: usize = 23;
    const DATA: u8 = 1;
    const COMMIT: u8 = 3;
    let disks = u32::from_le_bytes(data.get(32..36)?.try_into().ok()?) as usize;
    let header = data.get(..disks.checked_mul(8)?.checked_add(44)?)?;
    let mut chain = Xxh3Default::new();
    chain.update(header);
    let (mut at, mut records) = (header.len(), 0u64);
    while let Some(head) = data.get(at..at + HEAD) {
        let len = u32::from_le_bytes(head[11..15].try_into().ok()?) as usize;
        let end = at + HEAD + if head[0] == DATA { len } else { 0 };
        if head[0] == COMMIT || end > data.len() {
            break;
        }
        chain.update(head);
        records += 1;
        at = end;
    }
    let mut commit = vec![COMMIT];
    commit.extend_from_slice(&header[12..20]);
    commit.extend_from_slice(&records.to_le_bytes());
    commit.extend_from_slice(&chain.digest().to_le_bytes());
    commit.extend_from_slice(&xxh3_64(&commit).to_le_bytes());
    Some([&data[..at], &commit].concat())
}

/// Saved change tracking, for a two-disk VM.
pub fn tracking(data: &[u8]) {
    let disks = [
        (PathBuf::from("/v/disk-0.raw"), Geometry::new(1 << 20, 4096)),
        (
            PathBuf::from("/v/disk-1.raw"),
            Geometry::new(300_000, 65536),
        ),
    ];
    let _ = tracked_vm::tracking_is_trusted(data, &disks);
    let _ = tracked_vm::tracking_is_trusted(&sealed(data), &disks);
}

/// `site.toml`, parsed and validated.
pub fn site_toml(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(site) = toml::from_str::<crate::config::SiteConfig>(text) {
        let _ = crate::config::validate(&site);
    }
}

/// The API's JSON request bodies.
pub fn api_json(data: &[u8]) {
    use ferry_api::model;
    use ferry_api::types;
    let _ = serde_json::from_slice::<types::PeerRequest>(data);
    let _ = serde_json::from_slice::<types::PowerRequest>(data);
    let _ = serde_json::from_slice::<types::ReplicationRequest>(data);
    let _ = serde_json::from_slice::<model::RunRequest>(data);
    let _ = serde_json::from_slice::<model::GroupSpec>(data);
    let _ = serde_json::from_slice::<model::PlanSpec>(data);
    let _ = serde_json::from_slice::<model::MappingSpec>(data);
}

/// A peer's side of the handshake, as both the server and the client
/// read it: every message in any order, nothing may panic or authenticate.
pub fn handshake(data: &[u8]) {
    use crate::replication::frame::FrameWriter;
    use crate::replication::handshake::{PairingSecret, client, server};
    let secret = PairingSecret::from_key([7; 32]);
    for serve in [true, false] {
        let mut reader = FrameReader::new(Cursor::new(data), 1 << 16);
        let mut writer = FrameWriter::new(std::io::sink());
        let peer = if serve {
            server(&mut reader, &mut writer, &secret, "site-b")
        } else {
            client(&mut reader, &mut writer, &secret, "site-a")
        };
        // The nonce is fresh, so no recorded or made-up input can prove
        // it holds the secret.
        assert!(peer.is_err(), "authenticated from fuzz input: {peer:?}");
    }
}

/// Callout text: a command's output as the run keeps it, and callouts as a
/// plan spec carries them, validated.
pub fn callout(data: &[u8]) {
    let kept = crate::site::runs::output_tail(data);
    assert!(kept.len() <= 3 * 4096 + 3, "kept {} bytes", kept.len());
    if let Ok(callouts) = serde_json::from_slice::<Vec<ferry_api::model::Callout>>(data) {
        let spec = ferry_api::model::PlanSpec {
            name: "plan".into(),
            description: String::new(),
            groups: vec!["group".into()],
            vms: Vec::new(),
            pre_power_on: callouts.clone(),
            post_power_on: callouts,
        };
        let _ = ferry_api::plan::validate(&spec, &Default::default());
    }
}

/// `blocks.sum`: what decodes must encode back to the same bytes.
pub fn block_sums(data: &[u8]) {
    for data in [data.to_vec(), sealed(data)] {
        if let Some(sums) = crate::storage::replica::BlockSums::decode(&data) {
            assert_eq!(sums.encode(), data);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replication::message::Message;
    use crate::storage::{RedoHeader, Replica};

    fn corpus() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus")
    }

    /// Every committed input of every target, through the same function
    /// the fuzzer calls: what it once found stays fixed.
    #[test]
    fn the_committed_corpus_replays_without_a_panic() {
        let mut inputs = 0;
        for (name, target) in TARGETS {
            let dir = corpus().join(name);
            let entries = std::fs::read_dir(&dir)
                .unwrap_or_else(|e| panic!("no corpus for {name} at {}: {e}", dir.display()));
            for entry in entries {
                let path = entry.unwrap().path();
                target(&std::fs::read(&path).unwrap());
                inputs += 1;
            }
        }
        assert!(inputs >= TARGETS.len() * 2, "only {inputs} inputs");
    }

    /// The sealed inputs get past the checksums: a torn log sealed reads
    /// as committed with the records it still holds whole, and a body
    /// sealed decodes as the file it came from.
    #[test]
    fn sealing_reaches_past_the_checksums() {
        let read = |bytes: &[u8]| {
            let fs = SimFs::new();
            let path = Path::new("/r/redo.log");
            fs.open(path, Open::Write)
                .unwrap()
                .write_all_at(bytes, 0)
                .unwrap();
            redo_log::read_committed(&fs, path).unwrap()
        };
        let log = std::fs::read(corpus().join("redo_log/committed")).unwrap();
        let whole = read(&log).expect("the seed log is committed");
        let torn = &log[..log.len() - 40];
        assert!(read(torn).is_none());
        let resealed = read(&sealed_redo_log(torn).unwrap()).expect("sealed reads as committed");
        assert_eq!(resealed.header, whole.header);
        assert_eq!(resealed.records.len(), whole.records.len() - 1);
        resealed.verify().unwrap();

        let sums = std::fs::read(corpus().join("block_sums/two-disks")).unwrap();
        let body = &sums[..sums.len() - 8];
        assert!(crate::storage::replica::BlockSums::decode(body).is_none());
        assert_eq!(sealed(body), sums);
    }

    /// A stable-toolchain stand-in for cargo-fuzz where nightly is not at
    /// hand: random byte flips, inserts, truncations and splices of the
    /// corpus, `FERRY_FUZZ_ROUNDS` per target (default 20,000).
    #[test]
    #[ignore = "a mutation run: minutes, not for CI"]
    fn mutate_the_corpus() {
        let rounds: u64 = std::env::var("FERRY_FUZZ_ROUNDS")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(20_000);
        let mut rng = 0x2545_F491_4F6C_DD1Du64;
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        for (name, target) in TARGETS {
            let seeds: Vec<Vec<u8>> = std::fs::read_dir(corpus().join(name))
                .unwrap()
                .map(|e| std::fs::read(e.unwrap().path()).unwrap())
                .collect();
            for _ in 0..rounds {
                let mut input = seeds[(next() % seeds.len() as u64) as usize].clone();
                for _ in 0..1 + next() % 4 {
                    let at = (next() % (input.len() as u64 + 1)) as usize;
                    match next() % 5 {
                        0 if at < input.len() => input[at] ^= 1 << (next() % 8),
                        1 => input.insert(at, next() as u8),
                        2 => input.truncate(at),
                        3 if at < input.len() => {
                            input[at] = [0, 0xff, b'\n', b' '][(next() % 4) as usize]
                        }
                        _ => {
                            let other = &seeds[(next() % seeds.len() as u64) as usize];
                            let from = (next() % (other.len() as u64 + 1)) as usize;
                            input.splice(at..at, other[from..].iter().copied());
                        }
                    }
                }
                target(&input);
            }
            eprintln!("{name}: {rounds} mutated inputs, no panic");
        }
    }

    fn frame(out: &mut Vec<u8>, message: &Message) {
        let mut payload = Vec::new();
        message.encode(&mut payload);
        out.extend_from_slice(&((payload.len() + 2) as u32).to_be_bytes());
        out.extend_from_slice(&[message.kind(), 0]);
        out.extend_from_slice(&payload);
    }

    /// Writes the seed inputs (valid ones, from the real encoders) into
    /// the corpus: `cargo test -p ferry-replicator --lib fuzzing -- --ignored`.
    #[test]
    #[ignore = "writes the seed corpus"]
    fn write_seed_corpus() {
        let put = |target: &str, name: &str, bytes: &[u8]| {
            let dir = corpus().join(target);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join(name), bytes).unwrap();
        };
        let mut stream = Vec::new();
        frame(
            &mut stream,
            &Message::End {
                instance: 2,
                blocks: 7,
            },
        );
        frame(
            &mut stream,
            &Message::End {
                instance: 3,
                blocks: 0,
            },
        );
        put("frames", "end-end", &stream);
        put("frames", "truncated", &stream[..stream.len() - 3]);

        let state = ReplicaState {
            instance: Some(4),
            point_time_ms: 1_700_000_000_000,
            block_size: 65536,
            disk_sizes: vec![8 << 20, 1 << 20],
        };
        put("replica_state", "two-disks", &state.encode());
        put("replica_state", "none", &ReplicaState::default().encode());
        put(
            "promote_marker",
            "point",
            promote::encode_marker(42).as_bytes(),
        );
        put("promote_marker", "empty", b"");

        let fs = SimFs::new();
        let dir = Path::new("/r");
        let mut replica = Replica::open_in(Arc::new(fs.clone()), dir).unwrap();
        let header = |instance| RedoHeader {
            instance,
            point_time_ms: 1000 * instance,
            block_size: 4096,
            disk_sizes: vec![16384, 8192],
        };
        for instance in 1..=2 {
            let mut writer = replica.begin(&header(instance)).unwrap();
            writer.append_data(0, 1, &[7u8; 4096]).unwrap();
            writer.append_zero(1, 0, 4096).unwrap();
            replica.commit(writer).unwrap();
        }
        let log = fs.contents(&dir.join("redo.log")).unwrap();
        put("redo_log", "committed", &log);
        put("redo_log", "torn", &log[..log.len() / 2]);

        let mut hello = Vec::new();
        frame(
            &mut hello,
            &Message::ClientHello {
                version: crate::replication::message::PROTOCOL_VERSION,
                site: "site-a",
                nonce: [3; 32],
            },
        );
        frame(&mut hello, &Message::ClientProof { proof: [4; 32] });
        put("handshake", "hello-proof", &hello);
        put("callout", "command-prompt", br#"[{"kind":"command","command":"echo hi","timeout_seconds":5},{"kind":"prompt","message":"check DNS"}]"#);
        put("callout", "output", b"build ok\n\x1b[31mred\xff");
        let sums = crate::storage::replica::BlockSums {
            instance: 2,
            point_time_ms: 2000,
            block_size: 4096,
            disk_sizes: vec![16384, 6000],
            sums: vec![vec![1, 2, 3, 4], vec![5, 6]],
        };
        put("block_sums", "two-disks", &sums.encode());

        put("tracking", "empty", b"");
        put("tracking", "short", &[0u8; 16]);
        let site = ferry_testkit::SiteConfigBuilder::new("site-a")
            .vm(ferry_testkit::config::vm("vm-0", 8));
        put("site_toml", "one-vm", site.to_toml().as_bytes());
        put("site_toml", "garbage", b"[[[");
        put(
            "api_json",
            "replication",
            br#"{"rpo_seconds":60,"datastore":"ds1","compress":true}"#,
        );
        put("api_json", "power", br#"{"state":"off"}"#);
        put(
            "api_json",
            "nested",
            br#"{"a":[[[[{"b":null}]]]],"rpo_seconds":1e400}"#,
        );
    }
}
