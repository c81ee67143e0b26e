//! A stable pseudo-random draw from a seed and a key.

/// FNV-1a over the key's bytes (basis XOR seed), then splitmix64's finalizer. Identical on every
/// platform and in every version, so exemplar choices, random pairings and shard assignment repeat; the Python
/// reference in `tools/make_fixtures.py` implements the same function.
pub fn draw(seed: u64, key: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ seed;
    for b in key.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    let mut z = h.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}
