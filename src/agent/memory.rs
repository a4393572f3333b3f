//! The agent's allocator tuning. The agent is one role of a large binary and must stay small
//! on every GPU node: it keeps glibc's allocator ([`crate::alloc`]), with one arena, trimmed
//! when the agent is idle.

/// Hands memory freed by bursts of requests back to the kernel. glibc keeps freed memory in
/// per-thread arenas; an agent that idles between test runs should not sit on it.
pub(crate) fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists.
    unsafe {
        nix::libc::malloc_trim(0);
    }
}

/// One glibc arena for all threads: the agent has a handful of threads and little heap, and
/// each extra arena keeps its own free memory resident.
pub(crate) fn limit_allocator_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator tuning; called once at start.
    unsafe {
        nix::libc::mallopt(nix::libc::M_ARENA_MAX, 1);
    }
}
