//! Extent maps: which parts of a device hold data, read as zero, or are not allocated.

/// What a run of guest bytes is, as far as the image format knows without reading data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExtentKind {
    /// Allocated and possibly non-zero: must be read.
    Data,
    /// Known to read as zeros (zero clusters, holes in a raw file, ZERO extents).
    Zero,
    /// Not allocated anywhere in the chain; reads as zeros at the top of a chain.
    Unallocated,
}

impl ExtentKind {
    /// True when reading the extent can only give zeros.
    pub fn reads_as_zero(self) -> bool {
        !matches!(self, ExtentKind::Data)
    }
}

/// A contiguous run of guest bytes with one [`ExtentKind`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Extent {
    /// Guest byte offset of the first byte.
    pub offset: u64,
    /// Length in bytes (never 0 inside a [`Mapping`]).
    pub len: u64,
    /// What the run is.
    pub kind: ExtentKind,
}

impl Extent {
    /// One past the last byte.
    pub fn end(&self) -> u64 {
        self.offset + self.len
    }
}

/// A sorted, gap-free list of extents covering exactly the range passed to
/// [`crate::BlockDevice::map`]; neighbours of the same kind are merged.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Mapping {
    extents: Vec<Extent>,
}

impl Mapping {
    /// An empty mapping.
    pub fn new() -> Self {
        Mapping::default()
    }

    /// A mapping of one extent.
    pub fn single(offset: u64, len: u64, kind: ExtentKind) -> Self {
        let mut m = Mapping::new();
        m.push(offset, len, kind);
        m
    }

    /// Appends a run that must start where the previous one ended; merges with the last extent
    /// when the kind is the same. Zero-length runs are ignored.
    pub fn push(&mut self, offset: u64, len: u64, kind: ExtentKind) {
        if len == 0 {
            return;
        }
        if let Some(last) = self.extents.last_mut() {
            debug_assert_eq!(last.end(), offset, "mapping must be contiguous");
            if last.kind == kind && last.end() == offset {
                last.len += len;
                return;
            }
        }
        self.extents.push(Extent { offset, len, kind });
    }

    /// Appends every extent of `other` (which must continue this mapping).
    pub fn extend(&mut self, other: Mapping) {
        for e in other.extents {
            self.push(e.offset, e.len, e.kind);
        }
    }

    /// The extents, in order.
    pub fn extents(&self) -> &[Extent] {
        &self.extents
    }

    /// Iterates over the extents.
    pub fn iter(&self) -> std::slice::Iter<'_, Extent> {
        self.extents.iter()
    }

    /// Total bytes of extents of `kind`.
    pub fn bytes_of(&self, kind: ExtentKind) -> u64 {
        self.extents
            .iter()
            .filter(|e| e.kind == kind)
            .map(|e| e.len)
            .sum()
    }

    /// The mapping shifted by `delta` bytes towards lower offsets (for slices).
    pub fn shifted_down(self, delta: u64) -> Mapping {
        Mapping {
            extents: self
                .extents
                .into_iter()
                .map(|e| Extent {
                    offset: e.offset - delta,
                    ..e
                })
                .collect(),
        }
    }
}

impl IntoIterator for Mapping {
    type Item = Extent;
    type IntoIter = std::vec::IntoIter<Extent>;
    fn into_iter(self) -> Self::IntoIter {
        self.extents.into_iter()
    }
}

impl<'a> IntoIterator for &'a Mapping {
    type Item = &'a Extent;
    type IntoIter = std::slice::Iter<'a, Extent>;
    fn into_iter(self) -> Self::IntoIter {
        self.extents.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_merges_same_kind() {
        let mut m = Mapping::new();
        m.push(0, 10, ExtentKind::Data);
        m.push(10, 5, ExtentKind::Data);
        m.push(15, 0, ExtentKind::Zero);
        m.push(15, 5, ExtentKind::Zero);
        assert_eq!(m.extents().len(), 2);
        assert_eq!(m.extents()[0].len, 15);
        assert_eq!(m.bytes_of(ExtentKind::Zero), 5);
    }
}
