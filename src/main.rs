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
    // Transparent huge pages only where kontakt asks for them (the large
    // key tables, read at random: `reserve_on_huge_pages` in `matching`).
    // With THP "always", every allocation's first touch zeroes 2 MiB, and
    // most of them touch memory sparsely (measured, 1M-row import, 3
    // alternating pairs: 3.7-4.0 s without THP against 4.3-4.8 s with it
    // everywhere),
    // so then this process keeps THP for advised memory only (Linux
    // 6.18+), or turns it off (older kernels). With "madvise", the common
    // default, nothing is changed: the prctl would cost system time for
    // nothing (1M x 10M, 3 alternating runs: 1.4-1.5 s against 0.8-1.2 s).
    // `KONTAKT_THP=1` leaves the system's policy in every case.
    #[cfg(target_os = "linux")]
    if std::env::var_os("KONTAKT_THP").is_none()
        && std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled")
            .is_ok_and(|mode| mode.contains("[always]"))
    {
        /// `PR_THP_DISABLE_EXCEPT_ADVISED` in linux/prctl.h (6.18).
        const EXCEPT_ADVISED: libc::c_ulong = 1 << 1;
        // SAFETY: prctl with integer options only changes this process.
        if unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, EXCEPT_ADVISED, 0, 0) } != 0 {
            // SAFETY: as above.
            unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
        }
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
