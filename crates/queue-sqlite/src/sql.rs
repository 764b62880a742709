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

/// `(?,?,…),(…)…`: `rows` groups of `width` anonymous parameters.
///
/// Multi-row statements use anonymous `?` parameters only: sqlx looks up each parameter's name
/// to place it, and SQLite finds the name of a numbered (`?NNN`) parameter by walking a list,
/// which makes binding N numbered parameters cost O(N²) — 7x slower at 2,816 parameters.
/// Anonymous parameters have no name and bind in O(1) each, in order of appearance.
pub(crate) fn values(rows: usize, width: usize) -> String {
    let group = format!("({})", vec!["?"; width].join(","));
    vec![group; rows].join(",")
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
        static S: Shapes = Shapes::new(|n| format!("VALUES {}", values(n, 2)));
        assert_eq!(S.get(1), "VALUES (?,?)");
        assert_eq!(S.get(2), "VALUES (?,?),(?,?)");
        assert!(std::ptr::eq(S.get(2), S.get(2)));
    }
}
