//! The fast CPU path allocates nothing in the decode loop once its first steps have sized the
//! buffers: every heap allocation of the process is counted while 24 decode steps run.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use rocmforge::exec::{CpuPrecision, Forward, Model, Session};

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards every call to the system allocator unchanged, counting allocations.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        System.alloc(layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        System.alloc_zeroed(layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        System.realloc(ptr, layout, new_size)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static COUNTING: Counting = Counting;

#[test]
fn a_fast_decode_step_allocates_nothing_once_warm() {
    for file in ["variants/smol-Q4_K_M.gguf", "SmolLM2-135M-Instruct.Q4_1.gguf", "gemma-3-270m-q4_k_m.gguf"] {
        let Some(path) = common::model(file) else { continue };
        let model = Model::load(&path).unwrap();
        let mut s = Session::with_precision(&model, 64, CpuPrecision::Fast).unwrap();
        let prompt: Vec<u32> = (0..20).map(|i| 100 + 37 * i).collect();
        let mut next = s.forward_argmax(&prompt).unwrap();
        for _ in 0..4 {
            next = s.forward_argmax(&[next]).unwrap();
        }
        let before = ALLOCATIONS.load(Ordering::Relaxed);
        for _ in 0..24 {
            next = s.forward_argmax(&[next]).unwrap();
        }
        let during = ALLOCATIONS.load(Ordering::Relaxed) - before;
        eprintln!("{file}: {during} allocations in 24 fast decode steps");
        assert_eq!(during, 0, "{file}: the decode loop allocated");
        // The counter sees allocations on every thread: the exact path makes some each step.
        let mut exact = Session::new(&model, 64).unwrap();
        exact.forward_argmax(&prompt).unwrap();
        let before = ALLOCATIONS.load(Ordering::Relaxed);
        exact.forward_argmax(&[next]).unwrap();
        assert!(ALLOCATIONS.load(Ordering::Relaxed) > before, "the exact path allocates, so the counter works");
    }
}
