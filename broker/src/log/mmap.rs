//! The only place the log maps files into memory.
//!
//! Mapping a file is `unsafe` because another writer could change or shrink it underneath
//! the mapping. The log upholds that no one does:
//! - the data directory is locked by one process (see `manager`'s `.lock` file);
//! - an index file is resized (preallocated, trimmed, truncated) only by its owning segment
//!   while that segment holds `&mut` and after dropping every mapping of it;
//! - sealed segments' mappings live only in the handle cache, which is purged for a segment
//!   before any of its files is truncated or deleted.
#![allow(unsafe_code)]

use std::fs::File;
use std::io;

use memmap2::{Mmap, MmapMut};

/// Maps `file` read-write (the active segment's preallocated index).
pub(crate) fn map_mut(file: &File) -> io::Result<MmapMut> {
    // SAFETY: see the module invariants; the file is exclusively ours and not resized while
    // this mapping lives.
    unsafe { MmapMut::map_mut(file) }
}

/// Maps `file` read-only (a sealed segment's trimmed index).
pub(crate) fn map(file: &File) -> io::Result<Mmap> {
    // SAFETY: see the module invariants; sealed index files are never written while mapped.
    unsafe { Mmap::map(file) }
}
