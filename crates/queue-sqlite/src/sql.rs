//! Multi-row statements in a few fixed shapes, so sqlx's statement cache keeps them prepared.
//!
//! A batch of `n` rows is cut into chunks of at most [`MAX_CHUNK`]; a chunk of `k` rows is run
//! with the statement for the next power of two `>= k`, padded by repeating its last row. Every
//! statement built here is idempotent in its rows (`ON CONFLICT DO NOTHING`, `IN (…)`, joins),
//! so a repeated row changes nothing. That keeps at most 9 shapes per statement (1, 2, 4 … 256
//! rows) instead of one per batch size.

use std::sync::OnceLock;

/// The most rows one statement carries.
pub(crate) const MAX_CHUNK: usize = 256;

const SHAPES: usize = MAX_CHUNK.trailing_zeros() as usize + 1;

/// The padded size of a chunk of `n` rows (`1 <= n <= MAX_CHUNK`).
pub(crate) fn bucket(n: usize) -> usize {
    n.max(1).next_power_of_two().min(MAX_CHUNK)
}

/// Row `i` of a padded chunk: the chunk's rows, then its last row repeated.
pub(crate) fn padded<T>(chunk: &[T], bucket: usize) -> impl Iterator<Item = &T> {
    let last = chunk.len().saturating_sub(1);
    (0..bucket).filter_map(move |i| chunk.get(i.min(last)))
}

/// One statement in its [`bucket`] shapes, each built on first use.
pub(crate) struct Shapes {
    build: fn(usize) -> String,
    built: [OnceLock<String>; SHAPES],
}

impl Shapes {
    /// Shapes built by `build(rows)`.
    pub(crate) const fn new(build: fn(usize) -> String) -> Self {
        Self {
            build,
            built: [const { OnceLock::new() }; SHAPES],
        }
    }

    /// The statement for `bucket` rows (a value returned by [`bucket`]).
    pub(crate) fn get(&'static self, bucket: usize) -> &'static str {
        let slot = (bucket.max(1).trailing_zeros() as usize).min(SHAPES - 1);
        self.built[slot].get_or_init(|| (self.build)(1 << slot))
    }
}

/// `(?a,?b,…),(…)…`: `rows` groups of `width` numbered parameters starting at `first`.
pub(crate) fn values(rows: usize, width: usize, first: usize) -> String {
    let mut out = String::with_capacity(rows * width * 6);
    for r in 0..rows {
        if r > 0 {
            out.push(',');
        }
        out.push('(');
        for c in 0..width {
            if c > 0 {
                out.push(',');
            }
            out.push('?');
            out.push_str(&(first + r * width + c).to_string());
        }
        out.push(')');
    }
    out
}

/// `?a,?b,…`: `n` numbered parameters starting at `first`.
pub(crate) fn list(n: usize, first: usize) -> String {
    (first..first + n)
        .map(|i| format!("?{i}"))
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn buckets_are_powers_of_two_up_to_the_cap() {
        assert_eq!(bucket(1), 1);
        assert_eq!(bucket(3), 4);
        assert_eq!(bucket(200), 256);
        assert_eq!(bucket(256), 256);
        let padded: Vec<_> = padded(&[1, 2, 3], 4).copied().collect();
        assert_eq!(padded, [1, 2, 3, 3]);
    }

    #[test]
    fn shapes_are_built_once_per_bucket() {
        static S: Shapes = Shapes::new(|n| format!("VALUES {}", values(n, 2, 1)));
        assert_eq!(S.get(1), "VALUES (?1,?2)");
        assert_eq!(S.get(2), "VALUES (?1,?2),(?3,?4)");
        assert!(std::ptr::eq(S.get(2), S.get(2)));
        assert_eq!(list(3, 2), "?2,?3,?4");
    }
}
