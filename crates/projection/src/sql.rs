//! Helpers for the multi-row statements read models write batches with.
//!
//! A multi-row `INSERT` is much cheaper than one statement per row, but its
//! text depends on the row count: left free, every batch size would be a new
//! statement, prepared (parsed and planned) on every use. [`shaped_chunks`]
//! cuts rows into a handful of fixed sizes so that each chunk's statement is
//! one of a few, prepared once per connection and only bound after.

/// `rows` in chunks of a few fixed sizes: as many of `max` rows as fit, the
/// rest in descending powers of two (`max` must be one). A batch costs at
/// most `log2(max)` statements more than its full chunks.
pub fn shaped_chunks<T>(rows: &[T], max: usize) -> impl Iterator<Item = &[T]> {
    debug_assert!(max.is_power_of_two());
    let mut rest = rows;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let take = if rest.len() >= max { max } else { 1 << rest.len().ilog2() };
        let (chunk, tail) = rest.split_at(take);
        rest = tail;
        Some(chunk)
    })
}

/// `$start, $start+1, …` (`n` numbered parameters), for an `IN (…)` list or
/// one row of a `VALUES` list.
pub fn params(start: usize, n: usize) -> String {
    (0..n).map(|i| format!("${}", start + i)).collect::<Vec<_>>().join(", ")
}

/// The `VALUES` rows of a multi-row insert of `rows` rows of `columns`
/// parameters each: `($1, $2), ($3, $4)`.
pub fn values_rows(rows: usize, columns: usize) -> String {
    (0..rows).map(|r| format!("({})", params(r * columns + 1, columns))).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_are_full_then_descending_powers_of_two() {
        let rows: Vec<u32> = (0..300).collect();
        let sizes: Vec<usize> = shaped_chunks(&rows, 128).map(<[u32]>::len).collect();
        assert_eq!(sizes, vec![128, 128, 32, 8, 4]);
        let again: Vec<u32> = shaped_chunks(&rows, 128).flatten().copied().collect();
        assert_eq!(again, rows, "every row once, in order");
        assert_eq!(shaped_chunks::<u32>(&[], 64).count(), 0);
        assert_eq!(shaped_chunks(&[1, 2, 3], 64).map(<[i32]>::len).collect::<Vec<_>>(), vec![2, 1]);
    }

    #[test]
    fn value_rows_number_parameters_row_by_row() {
        assert_eq!(params(3, 2), "$3, $4");
        assert_eq!(values_rows(2, 3), "($1, $2, $3), ($4, $5, $6)");
        assert_eq!(values_rows(1, 1), "($1)");
    }
}
