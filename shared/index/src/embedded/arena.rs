//! Variable-length parts of the search columns (words, services) stored back to back in one
//! vector per kind, so a scan reads contiguous memory. A replaced part is overwritten in place
//! when it fits and appended otherwise; the space it leaves is reclaimed by compaction once it
//! is half of the arena.

#![allow(clippy::indexing_slicing, reason = "a Span is made only by this arena (`replace`, `compact`) and always lies inside its items")]

/// Where one part sits in its arena.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Span {
    start: u32,
    len: u32,
}

impl Span {
    pub(super) fn len(self) -> usize {
        self.len as usize
    }

    pub(super) fn range(self) -> std::ops::Range<usize> {
        self.start as usize..(self.start + self.len) as usize
    }
}

pub(super) struct Arena<T> {
    items: Vec<T>,
    /// Items no span points to any more.
    garbage: usize,
}

impl<T> Default for Arena<T> {
    fn default() -> Self {
        Self { items: Vec::new(), garbage: 0 }
    }
}

fn index(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

impl<T: Copy> Arena<T> {
    pub(super) fn get(&self, span: Span) -> &[T] {
        &self.items[span.range()]
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.items.len()
    }

    pub(super) fn item(&self, i: usize) -> &T {
        &self.items[i]
    }

    /// Stores `new` in place of `old` and returns where it is now.
    pub(super) fn replace(&mut self, old: Span, new: &[T]) -> Span {
        if new.len() <= old.len() {
            let start = old.start as usize;
            self.items[start..start + new.len()].copy_from_slice(new);
            self.garbage += old.len() - new.len();
            Span { start: old.start, len: index(new.len()) }
        } else {
            self.garbage += old.len();
            let start = index(self.items.len());
            self.items.extend_from_slice(new);
            Span { start, len: index(new.len()) }
        }
    }

    pub(super) fn free(&mut self, old: Span) {
        self.garbage += old.len();
    }

    pub(super) fn wants_compaction(&self) -> bool {
        self.garbage > 4096 && self.garbage * 2 > self.items.len()
    }

    /// Copies the live parts into a fresh arena, in the order given, and updates their spans.
    pub(super) fn compact<'a>(&mut self, spans: impl Iterator<Item = &'a mut Span>) {
        let mut items = Vec::with_capacity(self.items.len() - self.garbage);
        for span in spans {
            let start = index(items.len());
            items.extend_from_slice(&self.items[span.range()]);
            span.start = start;
        }
        self.items = items;
        self.garbage = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_are_replaced_in_place_or_appended_and_compacted() {
        let mut arena = Arena::default();
        let mut a = arena.replace(Span::default(), &[1, 2, 3]);
        let mut b = arena.replace(Span::default(), &[4]);
        a = arena.replace(a, &[5, 6]);
        assert_eq!((arena.get(a), arena.get(b)), (&[5, 6][..], &[4][..]));
        b = arena.replace(b, &[7, 8, 9]);
        assert_eq!(arena.get(b), &[7, 8, 9]);
        arena.compact([&mut a, &mut b].into_iter());
        assert_eq!((arena.get(a), arena.get(b), arena.items.len()), (&[5, 6][..], &[7, 8, 9][..], 5));
    }
}
