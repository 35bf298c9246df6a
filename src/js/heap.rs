//! The wasm's allocator: blocks in size classes (16 bytes and up, two to each power of two), each a list
//! of its free blocks, the last freed reused first. Allocating and freeing take the same few steps
//! whatever is in flight: a free-list allocator that keeps one list sorted by address walks it on
//! each allocation and each free, and with thousands of calls in flight finishing in any order
//! that list grew to thousands of holes (a call cost 2.6 µs over the stub with 10 in flight, 15 µs
//! with 10,000). A block is never split or merged: memory a class has held stays with it, so the
//! wasm's memory is set by the peak in flight of each size, as a call's objects are the same sizes
//! call after call. New blocks are cut from the end of the memory, grown a page or more at a time.

use core::alloc::{GlobalAlloc, Layout};
use core::arch::wasm32;
use core::cell::UnsafeCell;
use core::ptr::null_mut;

const PAGE: usize = 65536;
/// The smallest block, 16 bytes (`1 << MIN_SHIFT`): room for the free list's link, and the
/// alignment every block has (each is a multiple of it, cut one after another).
const MIN_SHIFT: u32 = 4;
const ALIGN: usize = 1 << MIN_SHIFT;
/// 16 bytes to 2 GiB (see `class`).
const CLASSES: usize = 54;

pub struct SizeClasses(UnsafeCell<State>);

struct State {
    /// Each class's first free block (null: none); a free block's first word links the next.
    free: [*mut u8; CLASSES],
    /// Where the next new block is cut, and the end of the memory grown for them.
    next: usize,
    end: usize,
}

// SAFETY: wasm32-unknown-unknown without the atomics feature has exactly one thread.
unsafe impl Sync for SizeClasses {}

impl SizeClasses {
    pub const fn new() -> Self {
        Self(UnsafeCell::new(State { free: [null_mut(); CLASSES], next: 0, end: 0 }))
    }
}

/// A layout's class: the smallest block ≥ its size and alignment. Blocks are 16 and 32 bytes,
/// then two sizes to each power of two, ¾ of it and itself (48, 64, 96, 128, …), so that a block
/// is at most a third larger than asked for above 32 bytes; each a multiple of 16. `CLASSES` or
/// more for what no class holds (2 GiB and up).
fn class(layout: &Layout) -> usize {
    let size = layout.size().max(layout.align()).max(ALIGN);
    let k = usize::BITS - (size - 1).leading_zeros(); // 2^k ≥ size, k ≥ 4
    if k <= MIN_SHIFT + 1 {
        return (k - MIN_SHIFT) as usize;
    }
    (2 * k - 9 - (size <= 3 << (k - 2)) as u32) as usize
}

/// The size of class `c`'s blocks.
fn block(c: usize) -> usize {
    if c < 2 {
        return ALIGN << c;
    }
    let k = (c + 10) / 2;
    if c % 2 == 0 {
        3 << (k - 2)
    } else {
        1 << k
    }
}

unsafe impl GlobalAlloc for SizeClasses {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let c = class(&layout);
        if c >= CLASSES {
            return null_mut();
        }
        // SAFETY: one thread, and nothing else borrows the state while this lives.
        let s = unsafe { &mut *self.0.get() };
        let head = s.free[c];
        // A block more aligned than 16 bytes is cut anew: one from the list may not be.
        if !head.is_null() && layout.align() <= ALIGN {
            // SAFETY: a free block's first word is the link `dealloc` wrote.
            s.free[c] = unsafe { *head.cast::<*mut u8>() };
            return head;
        }
        let (size, align) = (block(c), layout.align().max(ALIGN));
        loop {
            let at = s.next.wrapping_add(align - 1) & !(align - 1);
            if at >= s.next && at <= s.end && s.end - at >= size {
                s.next = at + size;
                return at as *mut u8;
            }
            // Grown until the block fits: the new pages follow the blocks cut so far, unless
            // something else grew the memory in between.
            let pages = size / PAGE + align / PAGE + 1;
            let before = wasm32::memory_grow(0, pages);
            if before == usize::MAX {
                return null_mut();
            }
            if before * PAGE != s.end {
                s.next = before * PAGE;
            }
            s.end = (before + pages) * PAGE;
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let c = class(&layout);
        // SAFETY: as in `alloc`; the block, of class `c` (< CLASSES: it was allocated), is ≥ 16
        // bytes, 16-aligned, and no longer in use.
        let s = unsafe { &mut *self.0.get() };
        if let Some(head) = s.free.get_mut(c) {
            unsafe { *ptr.cast::<*mut u8>() = *head };
            *head = ptr;
        }
    }
}
