//! The rows of one simulated table, kept in a single flat `Vec` of cells.
//!
//! Each row occupies `width` adjacent cells at a slot; a `BTreeMap` from row id to slot
//! keeps SQLite's row-id order, and the slots of deleted rows are reused. Storing a row
//! therefore costs no allocation of its own (a `Vec` per row was one of the
//! simulator's larger costs at 100,000 people per device), and reading one is a slice.

use std::collections::BTreeMap;

use super::tables::Cell;

#[derive(Debug)]
pub(crate) struct RowStore {
    /// Cells per row: the table's column count.
    width: usize,
    /// Row `slot` is `cells[slot * width..(slot + 1) * width]`; free slots hold NULLs.
    cells: Vec<Cell>,
    slot_of: BTreeMap<i64, usize>,
    /// Slots of removed rows, for the next rows stored.
    free: Vec<usize>,
}

impl RowStore {
    pub(crate) fn new(width: usize) -> RowStore {
        assert!(width > 0, "a table has columns");
        RowStore {
            width,
            cells: Vec::new(),
            slot_of: BTreeMap::new(),
            free: Vec::new(),
        }
    }

    pub(crate) fn contains(&self, row_id: i64) -> bool {
        self.slot_of.contains_key(&row_id)
    }

    pub(crate) fn get(&self, row_id: i64) -> Option<&[Cell]> {
        self.slot_of.get(&row_id).map(|&slot| self.at(slot))
    }

    /// The highest row id stored, if any.
    pub(crate) fn last_row_id(&self) -> Option<i64> {
        self.slot_of.last_key_value().map(|(&id, _)| id)
    }

    /// Every row with its id, in row-id order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (i64, &[Cell])> {
        self.slot_of.iter().map(|(&id, &slot)| (id, self.at(slot)))
    }

    /// Room for `rows` more rows without growing on the way (a create of 250 users).
    pub(crate) fn reserve(&mut self, rows: usize) {
        let new_slots = rows.saturating_sub(self.free.len());
        self.cells.reserve(new_slots * self.width);
    }

    /// Stores a row under `row_id`, moving its `width` cells in, and returns it as
    /// stored; `None` (and the row left unread) when the id is in use.
    pub(crate) fn insert(
        &mut self,
        row_id: i64,
        row: impl IntoIterator<Item = Cell>,
    ) -> Option<&[Cell]> {
        let RowStore {
            width,
            cells,
            slot_of,
            free,
        } = self;
        let std::collections::btree_map::Entry::Vacant(entry) = slot_of.entry(row_id) else {
            return None;
        };
        let width = *width;
        let slot = match free.pop() {
            Some(slot) => {
                let mut count = 0;
                for (place, cell) in cells[slot * width..].iter_mut().zip(row) {
                    *place = cell;
                    count += 1;
                }
                assert_eq!(count, width, "a row fills its slot");
                slot
            }
            None => {
                let slot = cells.len() / width;
                cells.extend(row);
                assert_eq!(cells.len(), (slot + 1) * width, "a row has width cells");
                slot
            }
        };
        entry.insert(slot);
        Some(self.at(slot))
    }

    /// Takes a row out, leaving its slot free.
    pub(crate) fn remove(&mut self, row_id: i64) -> Option<Vec<Cell>> {
        let slot = self.slot_of.remove(&row_id)?;
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
}
