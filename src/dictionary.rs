//! The standard data dictionary, looked up through a per-thread cache.
//!
//! dicom-rs's `StandardDataDictionary` answers from SipHash maps, and an attribute
//! it does not list costs up to five lookups (the tag, then its repeating-group and
//! repeating-element forms). The per-file path asks it for nearly every element
//! (is this public attribute known? which VR does implicit VR imply?), which
//! `callgrind` put at 2-3% of a run's instructions. A file holds a few hundred
//! distinct tags, the same ones file after file, so each worker thread keeps the
//! answers it has seen: one multiply-and-probe instead. No lock is shared between
//! threads. The cache stops growing at [`CACHE_LIMIT`] tags (real files name a
//! few hundred; a crafted one can name millions, every group length and private
//! creator among them "known"), and tags the dictionary does not know at all are
//! kept only below [`MISSES_KEPT`]; past the limit, lookups go to the dictionary.
//!
//! The answers are the dictionary's own entries, so they are exactly what
//! `StandardDataDictionary` says (a unit test holds the two equal).

use dicom_core::Tag;
use dicom_core::dictionary::{DataDictionary, DataDictionaryEntryRef};
use dicom_dictionary_std::StandardDataDictionary;
use std::cell::RefCell;
use std::collections::HashMap;

type Entry = &'static DataDictionaryEntryRef<'static>;

/// Distinct tags one thread remembers.
const CACHE_LIMIT: usize = 4096;

/// Below this many entries, tags the dictionary does not know are remembered too.
const MISSES_KEPT: usize = 1024;

thread_local! {
    static CACHE: RefCell<HashMap<u32, Option<Entry>, crate::fast_hash::FastHash>> =
        RefCell::new(HashMap::default());
}

/// The dictionary entry of `tag`, as `StandardDataDictionary::by_tag` gives it.
pub fn by_tag(tag: Tag) -> Option<Entry> {
    let key = (u32::from(tag.0) << 16) | u32::from(tag.1);
    CACHE.with(|cache| {
        if let Ok(map) = cache.try_borrow()
            && let Some(hit) = map.get(&key)
        {
            return *hit;
        }
        let entry = StandardDataDictionary.by_tag(tag);
        if let Ok(mut map) = cache.try_borrow_mut()
            && map.len()
                < if entry.is_some() {
                    CACHE_LIMIT
                } else {
                    MISSES_KEPT
                }
        {
            map.insert(key, entry);
        }
        entry
    })
}

/// The cached dictionary as a [`DataDictionary`], for dicom-rs decoders that take
/// one (the implicit VR decoder asks it for every element's VR).
#[derive(Debug, Default, Clone, Copy)]
pub struct CachedDictionary;

impl DataDictionary for CachedDictionary {
    type Entry = DataDictionaryEntryRef<'static>;

    fn by_name(&self, name: &str) -> Option<&Self::Entry> {
        StandardDataDictionary.by_name(name)
    }

    fn by_tag(&self, tag: Tag) -> Option<&Self::Entry> {
        by_tag(tag)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_a_file_makes_up_cannot_grow_the_cache_past_its_limit() {
        // Private creators and group lengths are "known" to the dictionary in every
        // group; unknown tags besides.
        for g in (0x0009..0xFFFFu16).step_by(2) {
            for e in [0x0010u16, 0x00FF, 0x1234] {
                by_tag(Tag(g, e));
            }
            by_tag(Tag(g - 1, 0x0000));
        }
        let len = CACHE.with(|c| c.borrow().len());
        assert!(len <= CACHE_LIMIT, "{len} entries");
        // Still right past the limit.
        assert_eq!(
            by_tag(Tag(0x0010, 0x0010)).map(|e| e.alias),
            StandardDataDictionary
                .by_tag(Tag(0x0010, 0x0010))
                .map(|e| e.alias)
        );
    }

    #[test]
    fn the_cache_answers_as_the_dictionary_does() {
        // Public, repeating-group, repeating-element, private creator, private,
        // group length and unknown tags; twice each (the second answer is cached).
        let tags = [
            Tag(0x0010, 0x0010),
            Tag(0x6002, 0x3000),
            Tag(0x5010, 0x0010),
            Tag(0x0028, 0x0401),
            Tag(0x0029, 0x0010),
            Tag(0x0029, 0x1010),
            Tag(0x0008, 0x0000),
            Tag(0x0008, 0x0001),
            Tag(0x7FE0, 0x0010),
            Tag(0xFFFE, 0xE000),
            Tag(0x1234, 0x5678),
        ];
        for _ in 0..2 {
            for t in tags {
                let want = StandardDataDictionary
                    .by_tag(t)
                    .map(|e| (e.alias, format!("{:?} {:?}", e.tag, e.vr)));
                let got = by_tag(t).map(|e| (e.alias, format!("{:?} {:?}", e.tag, e.vr)));
                assert_eq!(got, want, "{t}");
            }
        }
        for g in (0..=0xFFFFu32).step_by(0x101) {
            for e in [0x0000u16, 0x0010, 0x0100, 0x1000, 0x3000] {
                let t = Tag(g as u16, e);
                assert_eq!(
                    by_tag(t).map(|x| x.alias),
                    StandardDataDictionary.by_tag(t).map(|x| x.alias),
                    "{t}"
                );
            }
        }
    }
}
