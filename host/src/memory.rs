//! How the process uses the system allocator.

/// Limits the system allocator to one arena per core, unless the operator set `MALLOC_ARENA_MAX`
/// (the C library's own setting, which then applies as given); call before starting threads.
///
/// glibc's default, eight arenas per core, lets every thread that ever met another in the
/// allocator keep an arena of its own, and a host frees a call's memory on other threads than the
/// ones that allocated it (its sessions move between the runtime's workers). With 10,000 callers
/// waiting the default held about 40 MB (an eighth) more resident memory. The price is some speed
/// where many threads allocate at once: callers joined queues at about 1,700 a second instead of
/// 2,000, and tasks were created about 10% slower, in the benchmarks. jemalloc and mimalloc
/// measured no better in resident size.
pub fn limit_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        let cores = std::thread::available_parallelism().map_or(1, |cores| cores.get());
        let arenas = libc::c_int::try_from(cores).unwrap_or(libc::c_int::MAX);
        // SAFETY: mallopt only changes a setting of the allocator, and M_ARENA_MAX takes any
        // positive count; it is called before the process starts its threads.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, arenas);
        }
    }
}
