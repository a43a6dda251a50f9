//! The fast CPU path's copy of the projection weights in huge pages.
//!
//! Decode streams every weight once per token, hundreds of matrices each a few hundred KiB; from
//! the file's 4 KiB pages the page walks cost about a third of the bandwidth (measured with
//! `cargo bench --bench int8_gemm -- --model FILE`: 9.6 GB/s a core from the mapping, 14 GB/s from
//! 2 MiB pages). The mapping cannot be collapsed into huge pages in place (its file offsets are
//! not 2 MiB-congruent), so the projections are copied once into 2 MiB-aligned anonymous memory
//! advised for transparent huge pages. Linux only; where the copy would take more than half the
//! available memory, the allocation fails, or `ROCMFORGE_CPU_HUGEPAGES=0`, the kernels read the
//! mapping.

use std::collections::HashMap;

use super::Model;
use crate::graph::Step;

/// Projection weights copied into huge-page memory, found by their address in the mapping.
pub(crate) struct HugeWeights {
    buf: std::ptr::NonNull<u8>,
    layout: std::alloc::Layout,
    /// Address of a tensor's data in the mapping → its offset in `buf`.
    offsets: HashMap<usize, usize>,
}

// SAFETY: the buffer is written once in `copy` and only read afterwards; it is owned (freed in
// Drop) like a Box<[u8]>.
unsafe impl Send for HugeWeights {}
// SAFETY: as above: shared access is read-only.
unsafe impl Sync for HugeWeights {}

impl HugeWeights {
    /// Copies every projection weight of `model`, or None where huge pages are not in use.
    pub(crate) fn copy(model: &Model) -> Option<HugeWeights> {
        if !cfg!(target_os = "linux") || std::env::var("ROCMFORGE_CPU_HUGEPAGES").as_deref() == Ok("0") {
            return None;
        }
        let file = &model.file;
        let mut tensors = Vec::new();
        for node in model.decode.nodes.iter().chain(&model.prefill.nodes) {
            if let Step::Linear { .. } = node.step {
                let t = file.tensor(&node.weights[0])?;
                let data = file.tensor_data(t);
                if !tensors.iter().any(|d: &&[u8]| d.as_ptr() == data.as_ptr()) {
                    tensors.push(data);
                }
            }
        }
        const HUGE: usize = 2 << 20;
        let total: usize = tensors.iter().map(|d| d.len().next_multiple_of(64)).sum();
        // A copy is worth its memory only while it leaves plenty: at most half of what is free.
        if available_memory().is_some_and(|free| total > free / 2) {
            return None;
        }
        let layout = std::alloc::Layout::from_size_align(total.next_multiple_of(HUGE).max(HUGE), HUGE).ok()?;
        // SAFETY: the layout has a non-zero size.
        let buf = std::ptr::NonNull::new(unsafe { std::alloc::alloc(layout) })?;
        advise_huge(buf.as_ptr(), layout.size());
        let mut offsets = HashMap::new();
        let mut off = 0;
        for d in tensors {
            // SAFETY: `off + d.len()` ≤ total ≤ the allocation; source and destination differ.
            unsafe { std::ptr::copy_nonoverlapping(d.as_ptr(), buf.as_ptr().add(off), d.len()) };
            offsets.insert(d.as_ptr() as usize, off);
            off += d.len().next_multiple_of(64);
        }
        Some(HugeWeights { buf, layout, offsets })
    }

    /// The copy of `data` (a tensor's bytes in the mapping), or `data` itself if not copied.
    pub(crate) fn get<'a>(&'a self, data: &'a [u8]) -> &'a [u8] {
        match self.offsets.get(&(data.as_ptr() as usize)) {
            // SAFETY: `copy` wrote `data.len()` bytes at this offset, inside the allocation.
            Some(&off) => unsafe { std::slice::from_raw_parts(self.buf.as_ptr().add(off), data.len()) },
            None => data,
        }
    }

    pub(crate) fn bytes(&self) -> usize {
        self.layout.size()
    }
}

impl Drop for HugeWeights {
    fn drop(&mut self) {
        // SAFETY: allocated in `copy` with this layout.
        unsafe { std::alloc::dealloc(self.buf.as_ptr(), self.layout) }
    }
}

/// MemAvailable from /proc/meminfo, in bytes.
fn available_memory() -> Option<usize> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: usize = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(target_os = "linux")]
fn advise_huge(p: *mut u8, len: usize) {
    // SAFETY: advice on memory this process owns; a refusal only means 4 KiB pages.
    unsafe { libc::madvise(p.cast(), len, libc::MADV_HUGEPAGE) };
}

#[cfg(not(target_os = "linux"))]
fn advise_huge(_: *mut u8, _: usize) {}
