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

/// The text of one statement in every shape [`shaped_chunks`] cuts (row
/// counts that are powers of two up to `max`), built once: formatting a
/// statement of a thousand parameters per chunk and batch is measurable on
/// a rebuild's critical path.
#[derive(Debug)]
pub struct ShapedStatements {
    /// Index: log2 of the row count.
    by_log2: Vec<String>,
}

impl ShapedStatements {
    /// `sql(rows)` gives the statement for `rows` rows.
    pub fn new(max: usize, sql: impl Fn(usize) -> String) -> Self {
        debug_assert!(max.is_power_of_two());
        Self { by_log2: (0..=max.ilog2()).map(|bits| sql(1 << bits)).collect() }
    }

    /// A multi-row insert: `{head} VALUES (…), (…) {tail}` with `columns`
    /// parameters per row (`tail` may be empty or an `ON CONFLICT` clause).
    pub fn insert(max: usize, head: &str, columns: usize, tail: &str) -> Self {
        Self::new(max, |rows| {
            format!("{head} VALUES {} {tail}", values_rows(rows, columns)).trim_end().to_owned()
        })
    }

    /// The statement for a chunk of `rows` rows, as [`shaped_chunks`] with
    /// this `max` cuts them.
    ///
    /// # Panics
    /// When `rows` is not such a chunk's length (a power of two up to `max`).
    pub fn get(&self, rows: usize) -> &str {
        assert!(rows.is_power_of_two(), "{rows} rows is not a shaped chunk");
        &self.by_log2[rows.ilog2() as usize]
    }
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
    fn shaped_statements_match_every_chunk_length() {
        let statements =
            ShapedStatements::new(8, |rows| format!("INSERT INTO t VALUES {}", values_rows(rows, 2)));
        let rows: Vec<u32> = (0..15).collect();
        for chunk in shaped_chunks(&rows, 8) {
            let sql = statements.get(chunk.len());
            assert_eq!(sql.matches('(').count(), chunk.len(), "{sql}");
        }
        assert_eq!(statements.get(1), "INSERT INTO t VALUES ($1, $2)");
        let upserts = ShapedStatements::insert(4, "INSERT INTO t (a)", 1, "ON CONFLICT (a) DO NOTHING");
        assert_eq!(upserts.get(2), "INSERT INTO t (a) VALUES ($1), ($2) ON CONFLICT (a) DO NOTHING");
        assert_eq!(
            ShapedStatements::insert(4, "INSERT INTO t (a)", 1, "").get(1),
            "INSERT INTO t (a) VALUES ($1)"
        );
    }

    #[test]
    fn value_rows_number_parameters_row_by_row() {
        assert_eq!(params(3, 2), "$3, $4");
        assert_eq!(values_rows(2, 3), "($1, $2, $3), ($4, $5, $6)");
        assert_eq!(values_rows(1, 1), "($1)");
    }
}
