//! The process's allocator, chosen by role at the start of `main`. `gfi run`, `gfi repl` and
//! the other short-lived commands get mimalloc: a simulated day allocates and frees millions of
//! small Lua and Rust objects, and mimalloc does that in about two thirds of the time glibc
//! takes, for about 10 % more memory. The two long-running servers keep glibc's allocator: the
//! agent, whose small, steady footprint on every GPU node was tuned on it (one arena, trimmed
//! when idle: [`crate::agent`]), and the controller, where mimalloc's per-thread heaps (a run is
//! a thread) tripled the resident memory (26 MiB idle, 1.3 MiB a run, against 10 and 0.2).
//!
//! The choice is made once, after the process has started allocating, so a block is freed or
//! grown by whichever allocator it came from (`mi_is_in_heap_region`: is the address in one of
//! mimalloc's pages). Until the switch nothing comes from mimalloc, and the servers never
//! switch, so they pay no lookup.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, Ordering};

/// The global allocator of the `gfi` binary (`src/main.rs`).
pub struct ByRole;

/// Whether new blocks come from mimalloc. Only ever goes from false to true.
static MIMALLOC: AtomicBool = AtomicBool::new(false);

/// From now on, new blocks come from mimalloc. Blocks allocated before stay glibc's.
pub fn use_mimalloc() {
    MIMALLOC.store(true, Ordering::Release);
}

/// Whether the role named by the command line gets mimalloc: every role but the servers,
/// `gfi agent` and `gfi controller`.
pub fn mimalloc_for(args: impl IntoIterator<Item = std::ffi::OsString>) -> bool {
    // The subcommand is the first argument that is not an option (gfi has no global option
    // that takes a value before it).
    args.into_iter()
        .skip(1)
        .find(|a| !a.to_string_lossy().starts_with('-'))
        .is_none_or(|sub| sub != "agent" && sub != "controller")
}

fn switched() -> bool {
    MIMALLOC.load(Ordering::Acquire)
}

/// Whether mimalloc handed out `ptr`.
fn from_mimalloc(ptr: *mut u8) -> bool {
    // Nothing came from mimalloc before the switch; after it, ask mimalloc's page map (safe
    // for any address: one that is not in its pages answers false).
    switched() && unsafe { libmimalloc_sys::mi_is_in_heap_region(ptr.cast()) }
}

// SAFETY: each block is allocated by one of two sound allocators and returned to the same one:
// `from_mimalloc` tells them apart for any block either handed out.
unsafe impl GlobalAlloc for ByRole {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if switched() {
            unsafe { mimalloc::MiMalloc.alloc(layout) }
        } else {
            unsafe { System.alloc(layout) }
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if switched() {
            unsafe { mimalloc::MiMalloc.alloc_zeroed(layout) }
        } else {
            unsafe { System.alloc_zeroed(layout) }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if from_mimalloc(ptr) {
            unsafe { mimalloc::MiMalloc.dealloc(ptr, layout) }
        } else {
            unsafe { System.dealloc(ptr, layout) }
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if from_mimalloc(ptr) {
            unsafe { mimalloc::MiMalloc.realloc(ptr, layout, new_size) }
        } else {
            unsafe { System.realloc(ptr, layout, new_size) }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<std::ffi::OsString> {
        a.iter().map(|s| s.into()).collect()
    }

    #[test]
    fn the_servers_keep_glibc_and_every_other_role_gets_mimalloc() {
        assert!(!mimalloc_for(args(&["gfi", "agent", "--insecure-no-auth"])));
        assert!(!mimalloc_for(args(&[
            "gfi",
            "controller",
            "--backend",
            "sim"
        ])));
        assert!(mimalloc_for(args(&["gfi", "run", "plan.lua"])));
        assert!(mimalloc_for(args(&["gfi", "repl"])));
        assert!(mimalloc_for(args(&["gfi", "--help"])));
        assert!(mimalloc_for(args(&["gfi"])));
        // A file or argument named agent later on is not the subcommand.
        assert!(mimalloc_for(args(&["gfi", "run", "agent"])));
    }

    /// Blocks from before and after the switch, grown and freed through `ByRole`, each by its
    /// own allocator. (The test binary's global allocator is the default: `ByRole` is called
    /// directly, and its switch is this test's alone.)
    #[test]
    fn blocks_from_either_allocator_are_grown_and_freed_by_their_own() {
        let a = ByRole;
        let small = Layout::from_size_align(24, 8).unwrap();
        let big = Layout::from_size_align(1 << 20, 64).unwrap();
        unsafe {
            let before = [a.alloc(small), a.alloc_zeroed(big)];
            for p in before {
                assert!(!p.is_null() && !libmimalloc_sys::mi_is_in_heap_region(p.cast()));
            }
            use_mimalloc();
            let after = [a.alloc(small), a.alloc_zeroed(big)];
            for p in after {
                assert!(!p.is_null() && from_mimalloc(p));
            }
            assert_eq!(*after[1].add(12345), 0, "alloc_zeroed zeroes");
            for p in before {
                assert!(!from_mimalloc(p), "a glibc block is told apart");
            }
            // Grown: a glibc block stays glibc's, a mimalloc block mimalloc's, contents kept.
            before[0].write(7);
            after[0].write(9);
            let g = a.realloc(before[0], small, 4096);
            let m = a.realloc(after[0], small, 4096);
            assert_eq!((*g, *m), (7, 9));
            assert!(!from_mimalloc(g) && from_mimalloc(m));
            let grown = Layout::from_size_align(4096, 8).unwrap();
            a.dealloc(g, grown);
            a.dealloc(m, grown);
            a.dealloc(before[1], big);
            a.dealloc(after[1], big);
        }
    }
}
