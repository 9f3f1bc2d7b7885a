//! A hasher for the per-file path's own tables (keys are tags and tag paths):
//! multiply and rotate, eight bytes at a time, as rustc's FxHasher. SipHash showed
//! in `perf` wherever a table was looked up per element. It is not keyed: the
//! tables it serves hold keys of the profile, the dictionary or the embedded IOD
//! tables, and the one that takes tags from files (the dictionary cache) is capped
//! at a few thousand, so a file crafted to collide cannot grow a long probe chain.

use std::hash::{BuildHasherDefault, Hasher};

#[derive(Default)]
pub struct FastHasher(u64);

/// For `HashMap<K, V, FastHash>`.
pub type FastHash = BuildHasherDefault<FastHasher>;

impl FastHasher {
    fn add(&mut self, v: u64) {
        self.0 = (self.0.rotate_left(5) ^ v).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

impl Hasher for FastHasher {
    fn finish(&self) -> u64 {
        // The product's high bits depend on every input bit: rotated down to where
        // the table takes its bucket from.
        self.0.rotate_left(26)
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.add(u64::from_le_bytes([
                c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7],
            ]));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut b = [0u8; 8];
            b[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(b));
        }
    }
    fn write_u16(&mut self, n: u16) {
        self.add(u64::from(n));
    }
    fn write_u32(&mut self, n: u32) {
        self.add(u64::from(n));
    }
    fn write_u64(&mut self, n: u64) {
        self.add(n);
    }
    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn tags_and_paths_are_found_again() {
        let mut tags: HashMap<u32, u32, FastHash> = HashMap::default();
        let mut paths: HashMap<Box<[u32]>, usize, FastHash> = HashMap::default();
        for g in (0..0x8000u32).step_by(7) {
            let tag = (g << 16) | ((g * 31) & 0xFFFF);
            tags.insert(tag, g);
            paths.insert(vec![0x0008_1140, tag, g].into(), g as usize);
        }
        for g in (0..0x8000u32).step_by(7) {
            let tag = (g << 16) | ((g * 31) & 0xFFFF);
            assert_eq!(tags.get(&tag), Some(&g));
            assert_eq!(paths.get(&[0x0008_1140, tag, g][..]), Some(&(g as usize)));
        }
        assert_eq!(tags.get(&0xFFFF_FFFF), None);
    }
}
