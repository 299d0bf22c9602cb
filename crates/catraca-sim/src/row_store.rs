//! The rows of one simulated table, kept in a single flat `Vec` of cells.
//!
//! Each row occupies `width` adjacent cells at a slot, and the slots of deleted rows are
//! reused. Storing a row therefore costs no allocation of its own (a `Vec` per row was
//! one of the simulator's larger costs at 100,000 people per device), and reading one
//! is a slice.
//!
//! Row-id order (SQLite's) is kept by a sorted `Vec` of `(row id, slot)` entries rather
//! than a `BTreeMap`: rows are almost always stored with a new highest id (`max + 1`),
//! which is a push, where a B-tree insert cost about 400 instructions per row. A row id
//! below the highest is placed by a binary search and a shift. A removed row leaves a
//! tombstone, so a bulk delete costs one binary search per row, not one shift; the
//! tombstones are swept out once they are half the entries (amortised constant time),
//! and trailing ones at once, so the last entry is always a live row.

use super::tables::Cell;

/// The slot of a removed row's entry.
const GONE: usize = usize::MAX;

#[derive(Debug, Clone, Copy, PartialEq)]
struct Entry {
    row_id: i64,
    /// `GONE` for a removed row.
    slot: usize,
}

#[derive(Debug)]
pub(crate) struct RowStore {
    /// Cells per row: the table's column count.
    width: usize,
    /// Row `slot` is `cells[slot * width..(slot + 1) * width]`; free slots hold NULLs.
    cells: Vec<Cell>,
    /// Strictly increasing row ids, each with its slot or `GONE`; never ends in `GONE`.
    entries: Vec<Entry>,
    /// How many of `entries` are `GONE`.
    tombstones: usize,
    /// Slots of removed rows, for the next rows stored.
    free: Vec<usize>,
}

impl RowStore {
    pub(crate) fn new(width: usize) -> RowStore {
        assert!(width > 0, "a table has columns");
        RowStore {
            width,
            cells: Vec::new(),
            entries: Vec::new(),
            tombstones: 0,
            free: Vec::new(),
        }
    }

    /// Where `row_id` is or would go in `entries`.
    fn search(&self, row_id: i64) -> Result<usize, usize> {
        // Most lookups are of recent rows, and every insert is past the end: check the
        // last entry before searching.
        match self.entries.last() {
            None => Err(0),
            Some(last) if row_id > last.row_id => Err(self.entries.len()),
            Some(last) if row_id == last.row_id => Ok(self.entries.len() - 1),
            Some(_) => self.entries.binary_search_by_key(&row_id, |e| e.row_id),
        }
    }

    fn slot(&self, row_id: i64) -> Option<usize> {
        let index = self.search(row_id).ok()?;
        Some(self.entries[index].slot).filter(|&slot| slot != GONE)
    }

    pub(crate) fn contains(&self, row_id: i64) -> bool {
        self.slot(row_id).is_some()
    }

    pub(crate) fn get(&self, row_id: i64) -> Option<&[Cell]> {
        self.slot(row_id).map(|slot| self.at(slot))
    }

    /// The highest row id stored, if any.
    pub(crate) fn last_row_id(&self) -> Option<i64> {
        self.entries.last().map(|e| e.row_id)
    }

    /// Every row with its id, in row-id order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (i64, &[Cell])> {
        self.entries
            .iter()
            .filter(|e| e.slot != GONE)
            .map(|e| (e.row_id, self.at(e.slot)))
    }

    /// Room for `rows` more rows without growing on the way (a create of 250 users).
    pub(crate) fn reserve(&mut self, rows: usize) {
        let new_slots = rows.saturating_sub(self.free.len());
        self.cells.reserve(new_slots * self.width);
        self.entries.reserve(rows);
    }

    /// Stores a row under `row_id`, moving its `width` cells in, and returns it as
    /// stored; `None` (and the row left unread) when the id is in use.
    pub(crate) fn insert(
        &mut self,
        row_id: i64,
        row: impl IntoIterator<Item = Cell>,
    ) -> Option<&[Cell]> {
        let found = self.search(row_id);
        if let Ok(index) = found {
            if self.entries[index].slot != GONE {
                return None;
            }
        }
        let width = self.width;
        let slot = match self.free.pop() {
            Some(slot) => {
                let mut count = 0;
                for (place, cell) in self.cells[slot * width..].iter_mut().zip(row) {
                    *place = cell;
                    count += 1;
                }
                assert_eq!(count, width, "a row fills its slot");
                slot
            }
            None => {
                let slot = self.cells.len() / width;
                self.cells.extend(row);
                assert_eq!(
                    self.cells.len(),
                    (slot + 1) * width,
                    "a row has width cells"
                );
                slot
            }
        };
        match found {
            Ok(index) => {
                // A tombstone of the same id comes back to life.
                self.entries[index].slot = slot;
                self.tombstones -= 1;
            }
            Err(index) => self.entries.insert(index, Entry { row_id, slot }),
        }
        Some(self.at(slot))
    }

    /// Takes a row out, leaving its slot free.
    pub(crate) fn remove(&mut self, row_id: i64) -> Option<Vec<Cell>> {
        let index = self.search(row_id).ok()?;
        let slot = std::mem::replace(&mut self.entries[index].slot, GONE);
        if slot == GONE {
            return None;
        }
        self.tombstones += 1;
        while self.entries.last().is_some_and(|e| e.slot == GONE) {
            self.entries.pop();
            self.tombstones -= 1;
        }
        if self.tombstones > 16 && self.tombstones * 2 > self.entries.len() {
            self.entries.retain(|e| e.slot != GONE);
            self.tombstones = 0;
        }
        let row = self.cells[slot * self.width..(slot + 1) * self.width]
            .iter_mut()
            .map(std::mem::take)
            .collect();
        self.free.push(slot);
        Some(row)
    }

    fn at(&self, slot: usize) -> &[Cell] {
        &self.cells[slot * self.width..(slot + 1) * self.width]
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: i128, text: &str) -> [Cell; 2] {
        [Cell::Int(id), Cell::Text(text.into())]
    }

    fn ids(store: &RowStore) -> Vec<i64> {
        store.iter().map(|(id, _)| id).collect()
    }

    #[test]
    fn rows_come_back_in_row_id_order_whatever_the_order_stored() {
        let mut store = RowStore::new(2);
        for id in [5, 1, 3] {
            store.insert(id, row(id.into(), &format!("r{id}")));
        }
        assert_eq!(ids(&store), [1, 3, 5]);
        assert_eq!(store.get(3), Some(&row(3, "r3")[..]));
        assert_eq!(store.get(4), None);
        assert_eq!(store.last_row_id(), Some(5));
        assert!(store.contains(1) && !store.contains(2));
    }

    #[test]
    fn a_removed_row_is_returned_whole_and_its_slot_reused() {
        let mut store = RowStore::new(2);
        store.insert(1, row(1, "a"));
        store.insert(2, row(2, "b"));
        assert_eq!(store.remove(1), Some(row(1, "a").to_vec()));
        assert_eq!(store.remove(1), None);
        assert_eq!(ids(&store), [2]);
        store.insert(7, row(7, "c"));
        assert_eq!(store.cells.len(), 4, "the freed slot is reused");
        assert_eq!(store.get(7), Some(&row(7, "c")[..]));
        assert_eq!(store.get(2), Some(&row(2, "b")[..]));
        assert_eq!(ids(&store), [2, 7]);
        store.remove(7);
        store.remove(2);
        assert_eq!(store.last_row_id(), None);
        assert_eq!(store.iter().count(), 0);
    }

    #[test]
    fn an_id_in_use_is_refused_and_the_row_there_kept() {
        let mut store = RowStore::new(2);
        assert!(store.insert(1, row(1, "a")).is_some());
        assert_eq!(store.insert(1, row(1, "b")), None);
        assert_eq!(store.get(1), Some(&row(1, "a")[..]));
        assert_eq!(store.cells.len(), 2);
    }

    #[test]
    fn ids_below_the_highest_go_in_order_and_a_removed_id_can_return() {
        let mut store = RowStore::new(2);
        for id in [10, 20, 30] {
            store.insert(id, row(id.into(), "x"));
        }
        store.insert(15, row(15, "y"));
        store.insert(-3, row(-3, "z"));
        assert_eq!(ids(&store), [-3, 10, 15, 20, 30]);
        store.remove(20);
        assert!(!store.contains(20) && store.get(20).is_none());
        assert_eq!(store.remove(20), None, "a tombstone is not a row");
        assert_eq!(ids(&store), [-3, 10, 15, 30]);
        assert!(store.insert(20, row(20, "again")).is_some());
        assert_eq!(store.get(20), Some(&row(20, "again")[..]));
        assert_eq!(ids(&store), [-3, 10, 15, 20, 30]);
    }

    #[test]
    fn the_last_row_id_is_the_highest_left_after_removals() {
        let mut store = RowStore::new(2);
        for id in 1..=5 {
            store.insert(id, row(id.into(), "x"));
        }
        store.remove(4);
        assert_eq!(store.last_row_id(), Some(5));
        store.remove(5);
        assert_eq!(
            store.last_row_id(),
            Some(3),
            "trailing tombstones are dropped"
        );
        assert_eq!(store.entries.len(), 3);
        store.remove(1);
        store.remove(2);
        store.remove(3);
        assert_eq!(store.last_row_id(), None);
        assert!(store.entries.is_empty() && store.tombstones == 0);
    }

    #[test]
    fn a_bulk_delete_sweeps_its_tombstones() {
        let mut store = RowStore::new(2);
        for id in 1..=1000 {
            store.insert(id, row(id.into(), "x"));
        }
        // Every row but the last, lowest first: each removal leaves a tombstone.
        for id in 1..1000 {
            assert!(store.remove(id).is_some());
            assert!(store.tombstones * 2 <= store.entries.len().max(34));
        }
        assert_eq!(ids(&store), [1000]);
        assert!(
            store.entries.len() < 40,
            "{} entries left",
            store.entries.len()
        );
    }

    /// The store against a `BTreeMap` of rows through a long run of mixed operations.
    #[test]
    fn it_behaves_as_a_sorted_map_of_rows() {
        use std::collections::BTreeMap;
        let mut store = RowStore::new(2);
        let mut model: BTreeMap<i64, [Cell; 2]> = BTreeMap::new();
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = move |bound: u64| {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            (seed >> 33) % bound
        };
        for step in 0..20_000 {
            match next(10) {
                // Mostly a new highest id, as SQLite assigns them.
                0..=4 => {
                    let id = model.last_key_value().map_or(1, |(id, _)| id + 1);
                    let cells = row(id.into(), &format!("s{step}"));
                    assert!(store.insert(id, cells.clone()).is_some());
                    model.insert(id, cells);
                }
                5 => {
                    let id = next(300) as i64;
                    let cells = row(id.into(), &format!("s{step}"));
                    let stored = store.insert(id, cells.clone()).is_some();
                    assert_eq!(stored, !model.contains_key(&id), "insert {id}");
                    model.entry(id).or_insert(cells);
                }
                _ => {
                    let id = next(400) as i64;
                    assert_eq!(store.remove(id), model.remove(&id).map(|r| r.to_vec()));
                }
            }
            if step % 97 == 0 {
                let expected: Vec<i64> = model.keys().copied().collect();
                assert_eq!(ids(&store), expected);
                assert_eq!(store.last_row_id(), model.keys().last().copied());
                for id in 0..310 {
                    assert_eq!(store.get(id), model.get(&id).map(|r| &r[..]), "get {id}");
                }
            }
        }
    }
}
