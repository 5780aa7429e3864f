//! Who may do what: API roles and bearer tokens, stored only as hashes.

use serde::{Deserialize, Serialize};

/// API roles: the API's own type, so a client reads the role a site names.
pub use ferry_api::types::Role;

/// The stored form of a token: BLAKE3 of its text, as hex.
pub fn hash_token(token: &str) -> String {
    blake3::hash(token.as_bytes()).to_hex().to_string()
}

/// A token as the site keeps it: a name, a role, and the hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenEntry {
    pub name: String,
    pub role: Role,
    pub hash: String,
}

/// Finds the token entry `token` hashes to. The comparison of hashes runs in
/// constant time and visits every entry, so timing tells nothing about which
/// entry, or how much of a hash, matched.
pub fn authenticate<'a>(entries: &'a [TokenEntry], token: &str) -> Option<&'a TokenEntry> {
    let presented = blake3::hash(token.as_bytes());
    let mut found = None;
    for entry in entries {
        if let Ok(stored) = blake3::Hash::from_hex(&entry.hash)
            && stored == presented
        {
            found = Some(entry);
        }
    }
    found
}

/// A fresh random token: 32 bytes as hex.
pub fn new_token() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the OS random source is available");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_match_only_their_hash() {
        let entries = vec![
            TokenEntry {
                name: "ops".into(),
                role: Role::Operator,
                hash: hash_token("secret-1"),
            },
            TokenEntry {
                name: "boss".into(),
                role: Role::Admin,
                hash: hash_token("secret-2"),
            },
        ];
        assert_eq!(
            authenticate(&entries, "secret-2").unwrap().role,
            Role::Admin
        );
        assert!(authenticate(&entries, "secret-3").is_none());
        assert!(Role::Admin > Role::Operator && Role::Operator > Role::Viewer);
        assert_ne!(new_token(), new_token());
    }
}
