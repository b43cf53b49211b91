//! The per-second tier's on-disk chunk: one series' points over (at most) an hour, stored column by column,
//! each column compressed losslessly with pco.
//!
//! Why columns and pco rather than hand-written Gorilla bit packing: pco finds the same structure Gorilla
//! exploits (regular timestamps become zero deltas of deltas; slowly moving values become small deltas) and
//! also values that are multiples of a quantum such as 0.01, which XOR of floats cannot see. It is lossless
//! bit for bit, NaN payloads and infinities included.
//!
//! Layout: `[version][flags][n: u32 LE]` then length-prefixed (u32 LE) pco streams: timestamps (i64), averages
//! (f64) and, unless every point is a single reading, minima, maxima (f64) and counts (u32).

use pco::ChunkConfig;
use pco::standalone::{simple_compress, simple_decompress};
use shared::HistoryPoint;

const VERSION: u8 = 1;
/// Every point is one reading (min = max = avg, count = 1): only the averages are stored. This is the
/// common case, when the collector samples once a second.
const SINGLES: u8 = 1;

#[derive(Debug, thiserror::Error)]
pub enum ChunkError {
    #[error("cannot compress a chunk: {0}")]
    Compress(pco::errors::PcoError),
    #[error("a stored chunk is damaged: {0}")]
    Damaged(String),
}

/// Compresses points (in time order) into one chunk.
pub fn encode(points: &[HistoryPoint]) -> Result<Vec<u8>, ChunkError> {
    let n = u32::try_from(points.len())
        .map_err(|_| ChunkError::Damaged("too many points for one chunk".into()))?;
    let singles = points.iter().all(|p| {
        p.count == 1 && p.min.to_bits() == p.avg.to_bits() && p.max.to_bits() == p.avg.to_bits()
    });
    let mut out = vec![VERSION, if singles { SINGLES } else { 0 }];
    out.extend_from_slice(&n.to_le_bytes());
    if points.is_empty() {
        return Ok(out);
    }
    let config = ChunkConfig::default();
    let column = |out: &mut Vec<u8>, bytes: Vec<u8>| {
        out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
        out.extend_from_slice(&bytes);
    };
    let ts: Vec<i64> = points.iter().map(|p| p.t_ms).collect();
    column(
        &mut out,
        simple_compress(&ts, &config).map_err(ChunkError::Compress)?,
    );
    let floats = |f: fn(&HistoryPoint) -> f64| points.iter().map(f).collect::<Vec<f64>>();
    column(
        &mut out,
        simple_compress(&floats(|p| p.avg), &config).map_err(ChunkError::Compress)?,
    );
    if !singles {
        for values in [floats(|p| p.min), floats(|p| p.max)] {
            column(
                &mut out,
                simple_compress(&values, &config).map_err(ChunkError::Compress)?,
            );
        }
        let counts: Vec<u32> = points.iter().map(|p| p.count).collect();
        column(
            &mut out,
            simple_compress(&counts, &config).map_err(ChunkError::Compress)?,
        );
    }
    Ok(out)
}

/// Reads a chunk back into points, exactly as they were encoded.
pub fn decode(bytes: &[u8]) -> Result<Vec<HistoryPoint>, ChunkError> {
    let damaged = |what: &str| ChunkError::Damaged(what.into());
    let (&version, rest) = bytes.split_first().ok_or_else(|| damaged("empty"))?;
    if version != VERSION {
        return Err(damaged(&format!("unknown chunk version {version}")));
    }
    let (&flags, rest) = rest.split_first().ok_or_else(|| damaged("no flags"))?;
    let (n, mut rest) = split_u32(rest).ok_or_else(|| damaged("no length"))?;
    let n = n as usize;
    if n == 0 {
        return Ok(Vec::new());
    }
    let mut next_column = || -> Result<&[u8], ChunkError> {
        let (len, tail) = split_u32(rest).ok_or_else(|| damaged("truncated column"))?;
        let len = len as usize;
        if tail.len() < len {
            return Err(damaged("truncated column"));
        }
        let (column, tail) = tail.split_at(len);
        rest = tail;
        Ok(column)
    };
    let pco_err = |e: pco::errors::PcoError| ChunkError::Damaged(e.to_string());
    let ts: Vec<i64> = simple_decompress(next_column()?).map_err(pco_err)?;
    let avg: Vec<f64> = simple_decompress(next_column()?).map_err(pco_err)?;
    let (min, max, count) = if flags & SINGLES != 0 {
        (avg.clone(), avg.clone(), vec![1u32; n])
    } else {
        let min: Vec<f64> = simple_decompress(next_column()?).map_err(pco_err)?;
        let max: Vec<f64> = simple_decompress(next_column()?).map_err(pco_err)?;
        let count: Vec<u32> = simple_decompress(next_column()?).map_err(pco_err)?;
        (min, max, count)
    };
    if [ts.len(), avg.len(), min.len(), max.len(), count.len()]
        .iter()
        .any(|&len| len != n)
    {
        return Err(damaged("columns of different lengths"));
    }
    Ok((0..n)
        .map(|i| HistoryPoint {
            t_ms: ts[i],
            min: min[i],
            max: max[i],
            avg: avg[i],
            count: count[i],
        })
        .collect())
}

fn split_u32(bytes: &[u8]) -> Option<(u32, &[u8])> {
    let (head, tail) = bytes.split_first_chunk::<4>()?;
    Some((u32::from_le_bytes(*head), tail))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn same(a: &[HistoryPoint], b: &[HistoryPoint]) -> bool {
        a.len() == b.len()
            && a.iter().zip(b).all(|(x, y)| {
                x.t_ms == y.t_ms
                    && x.count == y.count
                    && x.min.to_bits() == y.min.to_bits()
                    && x.max.to_bits() == y.max.to_bits()
                    && x.avg.to_bits() == y.avg.to_bits()
            })
    }

    #[test]
    fn special_values_round_trip_bit_exact() {
        let odd_nan = f64::from_bits(0x7ff8_0000_dead_beef);
        let values = [
            f64::NAN,
            odd_nan,
            f64::INFINITY,
            f64::NEG_INFINITY,
            -0.0,
            0.0,
            f64::MIN_POSITIVE,
            f64::MAX,
            f64::MIN,
            5e-324,
            1.5,
            1.5,
            1.5,
        ];
        let points: Vec<_> = values
            .iter()
            .enumerate()
            .map(|(i, &v)| HistoryPoint::single(1_700_000_000_000 + i as i64 * 1000, v))
            .collect();
        let back = decode(&encode(&points).unwrap()).unwrap();
        assert!(same(&points, &back), "{back:?}");
    }

    #[test]
    fn aggregated_points_and_irregular_timestamps_round_trip() {
        let ts = [
            0i64,
            1,
            999,
            1000,
            1_000_000,
            1_000_001,
            -5,
            i64::MAX,
            i64::MIN,
        ];
        let points: Vec<_> = ts
            .iter()
            .enumerate()
            .map(|(i, &t)| HistoryPoint {
                t_ms: t,
                min: -(i as f64),
                max: i as f64 * 3.25,
                avg: f64::NAN,
                count: [1, 10, u32::MAX, 0][i % 4],
            })
            .collect();
        let bytes = encode(&points).unwrap();
        assert_eq!(bytes[1], 0, "not singles");
        assert!(same(&points, &decode(&bytes).unwrap()));
    }

    #[test]
    fn repeated_values_take_almost_no_space() {
        let points: Vec<_> = (0..3600)
            .map(|i| HistoryPoint::single(1_700_000_000_000 + i * 1000, 42.0))
            .collect();
        let bytes = encode(&points).unwrap();
        assert!(bytes.len() < 100, "{} bytes", bytes.len());
        assert!(same(&points, &decode(&bytes).unwrap()));
    }

    #[test]
    fn an_empty_chunk_and_damaged_bytes_are_handled() {
        assert!(decode(&encode(&[]).unwrap()).unwrap().is_empty());
        let points: Vec<_> = (0..100)
            .map(|i| HistoryPoint::single(i * 1000, i as f64))
            .collect();
        let bytes = encode(&points).unwrap();
        for cut in [0, 1, 5, 9, bytes.len() / 2, bytes.len() - 1] {
            assert!(decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut wrong = bytes.clone();
        wrong[0] = 9;
        assert!(decode(&wrong).is_err());
    }
}
