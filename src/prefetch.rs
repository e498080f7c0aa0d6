//! Software prefetches: hints that ask the CPU to load cache lines soon to
//! be read, so their misses overlap instead of each stalling in turn. A
//! prefetch never faults and changes no result.

/// Cache line size of x86_64 (and most other) CPUs.
const LINE: usize = 64;

/// Asks the CPU to load the cache line holding `item`.
#[inline]
pub fn line<T>(item: &T) {
    at((item as *const T).cast());
}

/// Asks the CPU to load every cache line holding a byte of `items`.
#[inline]
pub fn slice<T>(items: &[T]) {
    let base = items.as_ptr().cast::<u8>();
    for offset in line_offsets(base as usize, size_of_val(items)) {
        at(base.wrapping_offset(offset));
    }
}

/// The start of each cache line holding a byte of `bytes` bytes at
/// `address`, as offsets from `address` (the first is at or before it).
fn line_offsets(address: usize, bytes: usize) -> impl Iterator<Item = isize> {
    let skew = (address % LINE) as isize;
    (-skew..bytes as isize).step_by(LINE).filter(move |_| bytes > 0)
}

#[inline]
fn at(address: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is a hint: it never faults, whatever the address,
    // and reads nothing the program sees. SSE is part of every x86_64 CPU.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(address.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = address;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_line_of_a_range_once() {
        for address in 1000..1000 + 2 * LINE {
            for bytes in 0..4 * LINE {
                let starts: Vec<usize> = line_offsets(address, bytes)
                    .map(|o| address.wrapping_add_signed(o))
                    .collect();
                let expected: Vec<usize> = if bytes == 0 {
                    Vec::new()
                } else {
                    (address / LINE..=(address + bytes - 1) / LINE)
                        .map(|l| l * LINE)
                        .collect()
                };
                assert_eq!(starts, expected, "{address} + {bytes}");
            }
        }
        // Prefetching reads nothing: any slice, even an empty one, is fine.
        slice::<u64>(&[]);
        slice(&[1u8; 1000][3..]);
        line(&7u32);
    }
}
