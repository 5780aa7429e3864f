//! The frame codec's tests: every message round-trips, truncated or garbled
//! payloads are refused, wire.md lists every kind, and a changed block fails
//! its hash.

use super::*;

fn samples() -> Vec<Message<'static>> {
    vec![
        Message::ClientHello {
            version: 1,
            site: "site-a",
            nonce: [3; 32],
        },
        Message::ServerHello {
            version: 1,
            site: "site-b",
            nonce: [4; 32],
            proof: [5; 32],
        },
        Message::ClientProof { proof: [6; 32] },
        Message::Welcome,
        Message::Open {
            vm: "db-01",
            datastore: "ds1",
            block_size: 65536,
            disk_sizes: vec![1 << 30, 2 << 30],
            retention: ferry_api::retention::RetentionPolicy {
                keep_all_seconds: 3_600,
                per_period: 4,
                period: ferry_api::retention::Period::Day,
                thin_days: 7,
            },
        },
        Message::Opened {
            instance: Some(0),
            point_time_ms: 99,
        },
        Message::Opened {
            instance: None,
            point_time_ms: 0,
        },
        Message::Begin {
            instance: 4,
            point_time_ms: 5,
            full: true,
        },
        Message::Hashes {
            disk: 1,
            first_block: 64,
            hashes: vec![[1; 16], [2; 16]],
        },
        Message::Blocks {
            disk: 0,
            entries: vec![
                BlockEntry {
                    block: 1,
                    len: 3,
                    data: Some(b"abc"),
                },
                BlockEntry {
                    block: 7,
                    len: 65536,
                    data: None,
                },
            ],
        },
        Message::End {
            instance: 4,
            blocks: 2,
        },
        Message::Committed { instance: 4 },
        Message::Consolidated { instance: 4 },
        Message::Refused { reason: "busy" },
    ]
}

#[test]
fn every_message_roundtrips() {
    for message in samples() {
        let mut buf = Vec::new();
        message.encode(&mut buf);
        assert_eq!(decode(message.kind(), &buf).unwrap(), message);
    }
}

#[test]
fn every_truncation_and_extension_is_malformed() {
    for message in samples() {
        let mut buf = Vec::new();
        message.encode(&mut buf);
        for cut in 0..buf.len() {
            assert!(
                decode(message.kind(), &buf[..cut]).is_err(),
                "{message:?} cut {cut}"
            );
        }
        buf.push(0);
        assert!(decode(message.kind(), &buf).is_err());
    }
}

/// The rows of the "Message kinds" table in `docs/wire.md`: number and
/// name (the header and the separator row do not parse as a number).
fn documented_kinds() -> Vec<(u8, String)> {
    let doc = include_str!("../../docs/wire.md");
    let section = doc
        .split("\n## ")
        .find(|s| s.starts_with("Message kinds"))
        .expect("wire.md has a \"Message kinds\" section");
    // The first table of the section; the block entry's follows it.
    section
        .lines()
        .skip_while(|line| !line.starts_with('|'))
        .take_while(|line| line.starts_with('|'))
        .filter_map(|line| {
            let mut cells = line.split('|').map(str::trim).skip(1);
            let number = cells.next()?.parse().ok()?;
            let name = cells.next()?.trim_matches('`').to_string();
            Some((number, name))
        })
        .collect()
}

#[test]
fn wire_md_lists_every_kind() {
    let documented = documented_kinds();
    let declared: Vec<(u8, String)> = Kind::ALL
        .iter()
        .map(|&k| (k as u8, k.name().to_string()))
        .collect();
    for row in &documented {
        assert!(
            declared.contains(row),
            "wire.md lists {row:?}, the Kind enum does not"
        );
    }
    for kind in &declared {
        assert!(documented.contains(kind), "wire.md does not list {kind:?}");
    }
    assert_eq!(
        documented.len(),
        declared.len(),
        "a kind listed twice in wire.md"
    );
}

#[test]
fn kinds_round_trip_through_their_byte() {
    for &kind in Kind::ALL {
        assert_eq!(Kind::from_byte(kind as u8), Some(kind));
        assert_eq!(kind_name(kind as u8), kind.name());
    }
    assert_eq!(Kind::from_byte(0), None);
    assert_eq!(kind_name(0), "unknown kind 0");
    for message in samples() {
        assert_eq!(message.kind(), message.frame_kind() as u8);
        assert_eq!(message.name(), message.frame_kind().name());
    }
}

#[test]
fn garbage_never_panics() {
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    for _ in 0..20_000 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let len = (seed % 64) as usize;
        let bytes: Vec<u8> = (0..len).map(|i| (seed >> (i % 8 * 8)) as u8).collect();
        let _ = decode((seed >> 56) as u8 % 15, &bytes);
    }
}

#[test]
fn a_block_changed_after_its_read_is_refused() {
    let mut payload = Vec::new();
    begin_blocks(&mut payload, 0);
    push_block(&mut payload, 3, 8, Some(&[7; 8]));
    set_block_count(&mut payload, 1);
    assert!(decode(BLOCKS_KIND, &payload).is_ok());
    let last = payload.len() - 1;
    payload[last] ^= 1;
    assert!(
        matches!(decode(BLOCKS_KIND, &payload), Err(WireError::Integrity(_))),
        "a changed block was taken"
    );
}
