//! The `kontakt` binary: parse, dispatch, map errors to exit codes. The work
//! lives in the library.

use std::process::ExitCode;

// Bulk loads allocate and free multi-MiB chunk buffers at a high rate;
// mimalloc keeps them in its segments instead of mapping and faulting fresh
// pages each time (measured: ~15% faster reads, sys time halved).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in mimalloc.h (v2 and v3), not exported by the
/// -sys crate.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

fn main() -> ExitCode {
    // A closed standard output (`kontakt contacts list | head`) ends the
    // process quietly, as it ends any Unix filter. Rust ignores SIGPIPE, and
    // every later print would then panic with "Broken pipe". Read commands
    // change nothing; an import ended before its COMMIT leaves the store
    // unchanged, as after a kill.
    #[cfg(unix)]
    // SAFETY: called first, before any thread starts; SIG_DFL is a valid
    // disposition and no handler of ours is replaced.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    // Memory freed by one batch is reused by the next: never hand it back
    // to the OS, or every batch faults (and zeroes) its pages again.
    // Measured on a 1M-row import: 4.5 s -> 3.8 s, system time 1.6 s -> 0.5 s.
    // SAFETY: sets a plain integer option; mimalloc reads it at each purge.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
    // DuckDB (C++) allocates with glibc's malloc: keep its blocks in the
    // heap (no mmap per block, no trimming), for the same reason.
    // Measured: page faults of a 1M-row import 100k -> 83k (wall time
    // within this machine's run-to-run noise).
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets glibc malloc parameters.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 64 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
    }
    // No transparent huge pages for this process (`KONTAKT_THP=1` leaves
    // the system's policy, and then the large key tables ask for them:
    // `reserve_on_huge_pages` in `matching`). A fresh 2 MiB page must be
    // a whole free block of that size, and a VM with free page reporting
    // (virtio-balloon) has handed those back to its host: the first touch
    // of each faults on the host too. Measured on this project's 2-core
    // VM: first touch of 2 GiB at 0.5 GB/s on huge pages against 3.1 GB/s
    // on 4 KiB pages; 10M x 10M skip, 4 alternating pairs: 18.6-20.1 s
    // (system 1.7-2.2 s) without against 21.9-23.7 s (system 6.7-7.7 s)
    // with them, the ~1 s of user time they save on TLB misses included.
    #[cfg(target_os = "linux")]
    if std::env::var_os("KONTAKT_THP").is_none() {
        // SAFETY: prctl with integer options only changes this process.
        unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
    }
    let cli = kontakt::cli::parse();
    match kontakt::cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("kontakt: {err:#}");
            ExitCode::from(u8::try_from(err.exit_code()).unwrap_or(1))
        }
    }
}
