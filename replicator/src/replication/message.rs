//! The messages of the replication protocol and their binary encoding.
//! Pure: no I/O, so every decoder can be fed garbage in tests.
//!
//! A session: `ClientHello` → `ServerHello` → `ClientProof` → `Welcome`
//! (see [`super::handshake`]); then per VM `Open` → `Opened`, and per cycle
//! `Begin`, (for a full sync the receiver streams `Hashes`), `Blocks`…,
//! `End` → `Committed` → `Consolidated`. Either side may send `Refused` and
//! close. Instead of `Open`, a session may carry site-to-site calls:
//! `Control` → `ControlReply`, each body a JSON document the site layer
//! defines. `replicator/docs/wire.md` gives every field's encoding.

use ferry_api::retention::{Period, RetentionPolicy};

use super::error::WireError;
use crate::storage::{BlockHash, hash_block};

/// 2: blocks carry the sender's hash of what it read. 3: `Open` carries
/// the replication's retention policy.
pub const PROTOCOL_VERSION: u16 = 3;

/// One block in a `Blocks` message: its bytes, or `None` for all zeros. On
/// the wire a block's bytes follow the sender's hash of them, which
/// decoding checks, so a block altered anywhere between the source's read
/// and the receiver's redo log is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockEntry<'a> {
    pub block: u64,
    pub len: u32,
    pub data: Option<&'a [u8]>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message<'a> {
    ClientHello {
        version: u16,
        site: &'a str,
        nonce: [u8; 32],
    },
    ServerHello {
        version: u16,
        site: &'a str,
        nonce: [u8; 32],
        proof: [u8; 32],
    },
    ClientProof {
        proof: [u8; 32],
    },
    Welcome,
    Open {
        vm: &'a str,
        datastore: &'a str,
        block_size: u32,
        disk_sizes: Vec<u64>,
        /// The older instances the replica keeps, set with the replication
        /// at the protected site and applied from this cycle on.
        retention: RetentionPolicy,
    },
    Opened {
        instance: Option<u64>,
        point_time_ms: u64,
    },
    Begin {
        instance: u64,
        point_time_ms: u64,
        full: bool,
    },
    Hashes {
        disk: u16,
        first_block: u64,
        hashes: Vec<BlockHash>,
    },
    Blocks {
        disk: u16,
        entries: Vec<BlockEntry<'a>>,
    },
    End {
        instance: u64,
        blocks: u64,
    },
    Committed {
        instance: u64,
    },
    Consolidated {
        instance: u64,
    },
    Refused {
        reason: &'a str,
    },
    Control {
        body: &'a [u8],
    },
    ControlReply {
        body: &'a [u8],
    },
}

/// Declares the frame kinds once: the `Kind` enum with its wire numbers and
/// names, and the mapping from each [`Message`] variant to its kind (which
/// must exist, so a message without a kind or a kind without a message does
/// not compile). `docs/wire.md` lists the same table; a test holds the two
/// together.
macro_rules! kinds {
    ($($(#[doc = $doc:literal])* $name:ident = $number:literal,)*) => {
        /// The kind byte of a frame: which message its payload holds.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[repr(u8)]
        pub enum Kind {
            $($(#[doc = $doc])* $name = $number,)*
        }

        impl Kind {
            /// Every kind, in wire order.
            pub const ALL: &[Kind] = &[$(Kind::$name,)*];

            /// The kind a frame's kind byte names, if any.
            pub fn from_byte(byte: u8) -> Option<Kind> {
                match byte {
                    $($number => Some(Kind::$name),)*
                    _ => None,
                }
            }

            /// The message's name, as errors and `docs/wire.md` spell it.
            pub fn name(self) -> &'static str {
                match self {
                    $(Kind::$name => stringify!($name),)*
                }
            }
        }

        impl Message<'_> {
            /// The kind of frame that carries this message.
            pub fn frame_kind(&self) -> Kind {
                match self {
                    $(Message::$name { .. } => Kind::$name,)*
                }
            }
        }
    };
}

kinds! {
    /// Client → server: opens the handshake.
    ClientHello = 1,
    /// Server → client: answers the hello and proves the secret.
    ServerHello = 2,
    /// Client → server: proves the secret.
    ClientProof = 3,
    /// Server → client: the handshake succeeded.
    Welcome = 4,
    /// Sender → receiver: names the VM whose replica the session writes.
    Open = 5,
    /// Receiver → sender: the replica's complete instance.
    Opened = 6,
    /// Sender → receiver: starts a cycle.
    Begin = 7,
    /// Receiver → sender: the replica's block hashes, in a full sync.
    Hashes = 8,
    /// Sender → receiver: a batch of one disk's blocks.
    Blocks = 9,
    /// Sender → receiver: ends a cycle.
    End = 10,
    /// Receiver → sender: the instance is complete (redo log committed).
    Committed = 11,
    /// Receiver → sender: the instance is in the base disks.
    Consolidated = 12,
    /// Either side: why it closes the connection.
    Refused = 13,
    /// Caller → callee: a site-to-site call.
    Control = 14,
    /// Callee → caller: the answer to a `Control`.
    ControlReply = 15,
}

/// The human name of a frame kind, for errors.
pub fn kind_name(kind: u8) -> String {
    Kind::from_byte(kind).map_or_else(|| format!("unknown kind {kind}"), |k| k.name().to_string())
}

impl Message<'_> {
    /// The kind byte of the frame that carries this message.
    pub fn kind(&self) -> u8 {
        self.frame_kind() as u8
    }

    pub fn name(&self) -> String {
        kind_name(self.kind())
    }

    /// Appends the payload (not the frame header) to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let mut w = Writer(out);
        match self {
            Self::ClientHello {
                version,
                site,
                nonce,
            } => {
                w.u16(*version);
                w.str(site);
                w.bytes(nonce);
            }
            Self::ServerHello {
                version,
                site,
                nonce,
                proof,
            } => {
                w.u16(*version);
                w.str(site);
                w.bytes(nonce);
                w.bytes(proof);
            }
            Self::ClientProof { proof } => w.bytes(proof),
            Self::Welcome => {}
            Self::Open {
                vm,
                datastore,
                block_size,
                disk_sizes,
                retention,
            } => {
                w.str(vm);
                w.str(datastore);
                w.u32(*block_size);
                w.u32(disk_sizes.len() as u32);
                disk_sizes.iter().for_each(|&s| w.u64(s));
                w.u64(retention.keep_all_seconds);
                w.u32(retention.per_period);
                w.bytes(&[match retention.period {
                    Period::Hour => 0,
                    Period::Day => 1,
                }]);
                w.u32(retention.thin_days);
            }
            Self::Opened {
                instance,
                point_time_ms,
            } => {
                w.u64(instance.map_or(0, |i| i + 1));
                w.u64(*point_time_ms);
            }
            Self::Begin {
                instance,
                point_time_ms,
                full,
            } => {
                w.u64(*instance);
                w.u64(*point_time_ms);
                w.bytes(&[u8::from(*full)]);
            }
            Self::Hashes {
                disk,
                first_block,
                hashes,
            } => {
                w.u16(*disk);
                w.u64(*first_block);
                w.u32(hashes.len() as u32);
                hashes.iter().for_each(|h| w.bytes(h));
            }
            Self::Blocks { disk, entries } => {
                let start = w.0.len();
                let mut payload = Vec::new();
                begin_blocks(&mut payload, *disk);
                for entry in entries {
                    push_block(&mut payload, entry.block, entry.len, entry.data);
                }
                set_block_count(&mut payload, entries.len() as u32);
                w.0.truncate(start);
                w.bytes(&payload);
            }
            Self::End { instance, blocks } => {
                w.u64(*instance);
                w.u64(*blocks);
            }
            Self::Committed { instance } | Self::Consolidated { instance } => w.u64(*instance),
            Self::Refused { reason } => w.str(reason),
            Self::Control { body } | Self::ControlReply { body } => w.bytes(body),
        }
    }
}

/// Decodes a payload of frame kind `kind`. Anything short, long or out of
/// shape is `Malformed`.
pub fn decode(kind: u8, payload: &[u8]) -> Result<Message<'_>, WireError> {
    let Some(kind) = Kind::from_byte(kind) else {
        return Err(WireError::malformed(format!("unknown message kind {kind}")));
    };
    let mut r = Reader(payload);
    let message = match kind {
        Kind::ClientHello => Message::ClientHello {
            version: r.u16()?,
            site: r.str()?,
            nonce: r.array()?,
        },
        Kind::ServerHello => Message::ServerHello {
            version: r.u16()?,
            site: r.str()?,
            nonce: r.array()?,
            proof: r.array()?,
        },
        Kind::ClientProof => Message::ClientProof { proof: r.array()? },
        Kind::Welcome => Message::Welcome,
        Kind::Open => {
            let vm = r.str()?;
            let datastore = r.str()?;
            let block_size = r.u32()?;
            let count = r.u32()? as usize;
            if count > r.0.len() / 8 {
                return Err(WireError::malformed("Open: more disks than bytes"));
            }
            let disk_sizes = (0..count).map(|_| r.u64()).collect::<Result<_, _>>()?;
            let keep_all_seconds = r.u64()?;
            let per_period = r.u32()?;
            let period = match r.take(1)?[0] {
                0 => Period::Hour,
                1 => Period::Day,
                other => {
                    return Err(WireError::malformed(format!(
                        "Open: retention period {other}"
                    )));
                }
            };
            Message::Open {
                vm,
                datastore,
                block_size,
                disk_sizes,
                retention: RetentionPolicy {
                    keep_all_seconds,
                    per_period,
                    period,
                    thin_days: r.u32()?,
                },
            }
        }
        Kind::Opened => Message::Opened {
            instance: r.u64()?.checked_sub(1),
            point_time_ms: r.u64()?,
        },
        Kind::Begin => Message::Begin {
            instance: r.u64()?,
            point_time_ms: r.u64()?,
            full: match r.take(1)?[0] {
                0 => false,
                1 => true,
                other => return Err(WireError::malformed(format!("Begin: full flag {other}"))),
            },
        },
        Kind::Hashes => {
            let disk = r.u16()?;
            let first_block = r.u64()?;
            let count = r.u32()? as usize;
            if count.checked_mul(16) != Some(r.0.len()) {
                return Err(WireError::malformed("Hashes: count does not match length"));
            }
            let hashes = (0..count).map(|_| r.array()).collect::<Result<_, _>>()?;
            Message::Hashes {
                disk,
                first_block,
                hashes,
            }
        }
        Kind::Blocks => {
            let disk = r.u16()?;
            let count = r.u32()? as usize;
            if count > r.0.len() / 13 {
                return Err(WireError::malformed("Blocks: more entries than bytes"));
            }
            let mut entries = Vec::with_capacity(count);
            for _ in 0..count {
                let block = r.u64()?;
                let len = r.u32()?;
                let data = match r.take(1)?[0] {
                    0 => None,
                    1 => {
                        let hash: BlockHash = r.array()?;
                        let data = r.take(len as usize)?;
                        if hash_block(data) != hash {
                            return Err(WireError::Integrity(format!(
                                "block {block} of disk {disk} does not match the hash the sender read"
                            )));
                        }
                        Some(data)
                    }
                    other => {
                        return Err(WireError::malformed(format!("Blocks: entry kind {other}")));
                    }
                };
                entries.push(BlockEntry { block, len, data });
            }
            Message::Blocks { disk, entries }
        }
        Kind::End => Message::End {
            instance: r.u64()?,
            blocks: r.u64()?,
        },
        Kind::Committed => Message::Committed { instance: r.u64()? },
        Kind::Consolidated => Message::Consolidated { instance: r.u64()? },
        Kind::Refused => Message::Refused { reason: r.str()? },
        Kind::Control => Message::Control {
            body: std::mem::take(&mut r.0),
        },
        Kind::ControlReply => Message::ControlReply {
            body: std::mem::take(&mut r.0),
        },
    };
    if !r.0.is_empty() {
        return Err(WireError::malformed(format!(
            "{}: {} trailing bytes",
            kind.name(),
            r.0.len()
        )));
    }
    Ok(message)
}

/// Writes the header of a `Blocks` payload for `disk` into an empty `out`.
/// Entries follow with [`push_block`]; [`set_block_count`] fixes the count.
/// Building the payload in place copies each block's data once.
pub fn begin_blocks(out: &mut Vec<u8>, disk: u16) {
    out.clear();
    out.extend_from_slice(&disk.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
}

/// Appends one block: its bytes (after their hash), or `None` when it is
/// all zeros.
pub fn push_block(out: &mut Vec<u8>, block: u64, len: u32, data: Option<&[u8]>) {
    out.extend_from_slice(&block.to_le_bytes());
    out.extend_from_slice(&len.to_le_bytes());
    match data {
        Some(data) => {
            out.push(1);
            out.extend_from_slice(&hash_block(data));
            out.extend_from_slice(data);
        }
        None => out.push(0),
    }
}

pub fn set_block_count(out: &mut [u8], count: u32) {
    out[2..6].copy_from_slice(&count.to_le_bytes());
}

/// The frame kind of a `Blocks` message.
pub const BLOCKS_KIND: u8 = Kind::Blocks as u8;

struct Writer<'a>(&'a mut Vec<u8>);

impl Writer<'_> {
    fn bytes(&mut self, b: &[u8]) {
        self.0.extend_from_slice(b);
    }
    fn u16(&mut self, v: u16) {
        self.bytes(&v.to_le_bytes());
    }
    fn u32(&mut self, v: u32) {
        self.bytes(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.bytes(&v.to_le_bytes());
    }
    fn str(&mut self, s: &str) {
        let len = u16::try_from(s.len()).unwrap_or(u16::MAX);
        self.u16(len);
        self.bytes(&s.as_bytes()[..usize::from(len)]);
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        let (head, tail) = self
            .0
            .split_at_checked(n)
            .ok_or_else(|| WireError::malformed("message ends early"))?;
        self.0 = tail;
        Ok(head)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], WireError> {
        let mut out = [0; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }
    fn u16(&mut self) -> Result<u16, WireError> {
        Ok(u16::from_le_bytes(self.array()?))
    }
    fn u32(&mut self) -> Result<u32, WireError> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    fn u64(&mut self) -> Result<u64, WireError> {
        Ok(u64::from_le_bytes(self.array()?))
    }
    fn str(&mut self) -> Result<&'a str, WireError> {
        let len = usize::from(self.u16()?);
        std::str::from_utf8(self.take(len)?)
            .map_err(|_| WireError::malformed("string is not UTF-8"))
    }
}

#[cfg(test)]
#[path = "message_tests.rs"]
mod tests;
