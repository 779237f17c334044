//! The connectors service: a gRPC server that inventories software and cloud
//! estates through one streaming `Sync` RPC per connector.

pub mod cache;
pub mod config;
pub mod grpc;
pub mod http;
pub mod providers;
pub mod replay;
pub mod server;
pub mod sync;
pub mod telemetry;
pub mod testing;

/// The global allocator of the binaries that run the server (`connectors-server`
/// and the benchmark's server processes).
pub use mimalloc::MiMalloc as Allocator;

/// Turns transparent huge pages off for this process, unless
/// `MIMALLOC_ALLOW_THP` says otherwise (mimalloc reads that variable itself).
///
/// mimalloc asks for huge pages on its arenas (`madvise(MADV_HUGEPAGE)`); when
/// it later returns part of one to the OS and takes it back, the kernel zeroes
/// a whole 2 MiB page on the next touch. In the benchmark this made every FULL
/// sync after a server's first one up to 40% slower (page faults zeroing huge
/// pages were half of the server's CPU); with THP off, repeated syncs run at
/// the first one's rate. Returns whether THP is now off. Linux only; elsewhere
/// it does nothing.
pub fn allocator_tuning() -> bool {
    #[cfg(target_os = "linux")]
    {
        if std::env::var_os("MIMALLOC_ALLOW_THP").is_some() {
            return false;
        }
        // prctl(PR_SET_THP_DISABLE); an error (kernels before 3.15) leaves THP on.
        rustix::thread::disable_transparent_huge_pages(true).is_ok()
    }
    #[cfg(not(target_os = "linux"))]
    {
        false
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    #[test]
    fn allocator_tuning_turns_transparent_huge_pages_off() {
        if std::env::var_os("MIMALLOC_ALLOW_THP").is_some() {
            assert!(
                !super::allocator_tuning(),
                "an explicit MIMALLOC_ALLOW_THP is left to mimalloc"
            );
            return;
        }
        assert!(super::allocator_tuning());
        assert_eq!(rustix::thread::transparent_huge_pages_are_disabled().ok(), Some(true));
    }
}
