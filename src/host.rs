//! A host's key: the identity (scheme, host, port) the circuit, the retry budget and the hedge
//! delay keep their per-host state under, and the maps that hold that state.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// A 64-bit hash of `url`'s scheme, host and port (no copy of the host is made on the healthy
/// path; two hosts would share state only on a 64-bit collision).
pub(crate) fn key(url: &reqwest::Url) -> u64 {
    let mut hasher = FastHasher::default();
    hasher.write(url.scheme().as_bytes());
    hasher.write_u8(0xff);
    hasher.write(url.host_str().unwrap_or("").as_bytes());
    hasher.write_u16(url.port_or_known_default().unwrap_or(0));
    hasher.finish()
}

/// A fast, unkeyed 64-bit hash of short strings (URLs, host names), eight bytes a step with a
/// final avalanche, in place of SipHash on every request. Not keyed: the strings it hashes are
/// the URLs the application itself calls, not input an attacker picks to collide (and std's
/// `DefaultHasher::new()`, used before, was not keyed either).
#[derive(Default)]
pub(crate) struct FastHasher {
    state: u64,
}

const K: u64 = 0x9e37_79b9_7f4a_7c15;

impl FastHasher {
    fn mix(&mut self, word: u64) {
        self.state = (self.state.rotate_left(23) ^ word).wrapping_mul(K);
    }
}

impl Hasher for FastHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.mix(u64::from_le_bytes(word));
        }
        // The tail's bytes (fewer than eight) gathered one by one, little-endian: a copy of a
        // length known only now would be a call to `memcpy`.
        let tail = chunks
            .remainder()
            .iter()
            .rev()
            .fold(0u64, |word, &byte| (word << 8) | u64::from(byte));
        // The length goes in with the tail, so "a" and "a\0" differ.
        self.mix(tail ^ ((bytes.len() as u64) << 56));
    }

    fn write_u8(&mut self, n: u8) {
        self.mix(u64::from(n));
    }

    fn write_u16(&mut self, n: u16) {
        self.mix(u64::from(n));
    }

    fn finish(&self) -> u64 {
        // murmur3's 64-bit finalizer: every input bit moves every output bit.
        let mut h = self.state;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^ (h >> 33)
    }
}

/// Hashes a key that is already a 64-bit hash ([`key`]) by passing it through.
#[derive(Default)]
pub(crate) struct KeyIsHash(u64);

impl Hasher for KeyIsHash {
    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used by the maps below; anything else still hashes.
        let mut hasher = FastHasher { state: self.0 };
        hasher.write(bytes);
        self.0 = hasher.finish();
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// Per-host state, under a host's [`key`] (hashed once, not again by the map).
pub(crate) type HostMap<V> = HashMap<u64, V, BuildHasherDefault<KeyIsHash>>;

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> reqwest::Url {
        s.parse().unwrap()
    }

    #[test]
    fn a_host_is_its_scheme_host_and_port() {
        assert_eq!(
            key(&url("http://a.example/x")),
            key(&url("http://a.example:80/y?q"))
        );
        assert_ne!(
            key(&url("http://a.example/")),
            key(&url("https://a.example/"))
        );
        assert_ne!(
            key(&url("http://a.example/")),
            key(&url("http://a.example:81/"))
        );
        assert_ne!(
            key(&url("http://a.example/")),
            key(&url("http://b.example/"))
        );
        assert_ne!(
            key(&url("http://ab.example/")),
            key(&url("http://a.bexample/"))
        );
    }

    #[test]
    fn similar_hosts_spread() {
        // Hosts that differ in one character, as replicas are named, all get keys of their own.
        let keys: std::collections::HashSet<u64> = (0..10_000)
            .map(|i| key(&url(&format!("http://replica-{i}.svc.cluster.local:8080/"))))
            .collect();
        assert_eq!(keys.len(), 10_000);
    }

    #[test]
    fn a_strings_tail_is_hashed_as_its_little_endian_word() {
        // Every length from empty to two words and a tail: the tail's bytes go into the last
        // word as a zero-padded little-endian word would hold them.
        let bytes: Vec<u8> = (1..=23).map(|i| i * 11).collect();
        for len in 0..=bytes.len() {
            let input = &bytes[..len];
            let mut expected = FastHasher::default();
            let mut chunks = input.chunks_exact(8);
            for chunk in &mut chunks {
                expected.mix(u64::from_le_bytes(chunk.try_into().unwrap()));
            }
            let mut word = [0u8; 8];
            word[..chunks.remainder().len()].copy_from_slice(chunks.remainder());
            expected.mix(u64::from_le_bytes(word) ^ ((len as u64) << 56));
            let mut hasher = FastHasher::default();
            hasher.write(input);
            assert_eq!(hasher.finish(), expected.finish(), "{len} bytes");
        }
    }

    #[test]
    fn lengths_are_part_of_the_hash() {
        let hash = |b: &[u8]| {
            let mut h = FastHasher::default();
            h.write(b);
            h.finish()
        };
        assert_ne!(hash(b"a"), hash(b"a\0"));
        assert_ne!(hash(b""), hash(b"\0"));
        assert_ne!(hash(b"12345678"), hash(b"12345678\0"));
    }
}
