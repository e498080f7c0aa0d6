//! clusters.csv: one row per member of each reported cluster, formatted in
//! parallel and written in order.

use std::io::Write;
use std::path::Path;

use rayon::prelude::*;

use super::scan::{Fetched, Universe};
use super::{AuditOptions, Found};
use crate::error::{Error, Result};

/// Writes clusters.csv: one row per member of each reported cluster, in
/// cluster order, members by contact id.
#[allow(clippy::too_many_arguments)]
pub(super) fn write_clusters(
    out: &Path,
    options: &AuditOptions,
    universe: &Universe,
    found: &[Found],
    report: &[usize],
    fetched: &Fetched,
    in_run: &[Vec<bool>],
    cluster_id: impl Fn(usize) -> i64 + Sync,
) -> Result<()> {
    let path = out.join("clusters.csv");
    let file = std::fs::File::create(&path).map_err(|e| Error::io(&path, e))?;
    let mut file = std::io::BufWriter::with_capacity(1 << 20, file);
    file.write_all(b"cluster_id,contact_id,key,value,created_at,survivor_id\n")
        .map_err(|e| Error::io(&path, e))?;
    // Formatted in parallel, a window of clusters at a time (memory stays
    // bounded), written in order.
    let format = |clusters: &[usize]| -> Vec<u8> {
        let mut buf = Vec::with_capacity(clusters.len() * 160);
        let mut id = itoa::Buffer::new();
        for &c in clusters {
            let f = &found[c];
            let cid = cluster_id(c);
            let survivor = universe.ids[f.survivor as usize];
            for &o in &f.members {
                let k = (0..options.keys.len())
                    .find(|&k| in_run[k][o as usize])
                    .expect("a member shares a value");
                buf.extend_from_slice(id.format(cid).as_bytes());
                buf.push(b',');
                buf.extend_from_slice(id.format(universe.ids[o as usize]).as_bytes());
                buf.push(b',');
                buf.extend_from_slice(options.keys[k].as_bytes());
                buf.push(b',');
                crate::write::push_csv_field(&mut buf, fetched.value(o, k).as_bytes());
                buf.push(b',');
                push_timestamp(&mut buf, universe.created[o as usize]);
                buf.push(b',');
                buf.extend_from_slice(id.format(survivor).as_bytes());
                buf.push(b'\n');
            }
        }
        buf
    };
    for window in report.chunks(1 << 16) {
        let parts: Vec<Vec<u8>> = window.par_chunks(1 << 12).map(format).collect();
        for part in parts {
            file.write_all(&part).map_err(|e| Error::io(&path, e))?;
        }
    }
    file.flush().map_err(|e| Error::io(&path, e))
}

/// A timestamp (microseconds since the epoch, UTC) as DuckDB casts it to
/// text: `YYYY-MM-DD HH:MM:SS[.ffffff]`, trailing zeros of the fraction
/// dropped.
fn push_timestamp(buf: &mut Vec<u8>, micros: i64) {
    let days = micros.div_euclid(86_400_000_000);
    let rest = micros.rem_euclid(86_400_000_000);
    let (year, month, day) = crate::normalize::date::civil_from_days(days);
    let (secs, frac) = (rest / 1_000_000, rest % 1_000_000);
    let mut text = *b"0000-00-00 00:00:00.000000";
    let mut put = |at: usize, width: usize, mut v: i64| {
        for i in (at..at + width).rev() {
            text[i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    put(0, 4, year);
    put(5, 2, month);
    put(8, 2, day);
    put(11, 2, secs / 3600);
    put(14, 2, secs / 60 % 60);
    put(17, 2, secs % 60);
    put(20, 6, frac);
    let mut len = 19;
    if frac > 0 {
        len = 26;
        while text[len - 1] == b'0' {
            len -= 1;
        }
    }
    buf.extend_from_slice(&text[..len]);
}
