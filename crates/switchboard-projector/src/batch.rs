//! Rows a projector keeps in memory for one batch ([`crate::Projector::apply_batch`]).

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::hash::Hash;

/// A hash map for what a projector keeps in memory during a batch: foldhash rather than std's
/// SipHash, whose cost showed in rebuilds (ids are hashed several times per event). Seeded per
/// process, like std's.
pub type BatchMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// The rows of one table that a batch has read or changed, by key: each is read from the table
/// on first use (`None` when it does not exist), changed in memory by every event of the batch
/// that touches it, and written back once at the batch's end ([`BatchRows::take_changed`], in
/// the order the keys were first used).
#[derive(Debug)]
pub struct BatchRows<K, V> {
    /// Each row, and whether it changed.
    rows: BatchMap<K, (Option<V>, bool)>,
    /// Keys in the order they were first used.
    order: Vec<K>,
}

impl<K, V> Default for BatchRows<K, V> {
    fn default() -> Self {
        Self {
            rows: BatchMap::default(),
            order: Vec::new(),
        }
    }
}

impl<K: Eq + Hash + Clone, V> BatchRows<K, V> {
    /// The row of `key` and whether it changed, read with `load` on first use. Set the row and
    /// the flag to create one.
    pub fn slot<E>(
        &mut self,
        key: K,
        load: impl FnOnce(&K) -> Result<Option<V>, E>,
    ) -> Result<&mut (Option<V>, bool), E> {
        Ok(match self.rows.entry(key) {
            Entry::Occupied(slot) => slot.into_mut(),
            Entry::Vacant(slot) => {
                let row = load(slot.key())?;
                self.order.push(slot.key().clone());
                slot.insert((row, false))
            }
        })
    }

    /// The row of `key`, marked changed, if it exists.
    pub fn get<E>(
        &mut self,
        key: K,
        load: impl FnOnce(&K) -> Result<Option<V>, E>,
    ) -> Result<Option<&mut V>, E> {
        let (row, changed) = self.slot(key, load)?;
        if row.is_some() {
            *changed = true;
        }
        Ok(row.as_mut())
    }

    /// Puts back, changed, a row taken out of its slot.
    pub fn put(&mut self, key: K, row: V) {
        if !self.rows.contains_key(&key) {
            self.order.push(key.clone());
        }
        self.rows.insert(key, (Some(row), true));
    }

    /// The changed rows, in the order their keys were first used; forgets every row.
    pub fn take_changed(&mut self) -> Vec<(K, V)> {
        let mut rows = std::mem::take(&mut self.rows);
        self.order
            .drain(..)
            .filter_map(|key| match rows.remove(&key) {
                Some((Some(row), true)) => Some((key, row)),
                _ => None,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads_once_and_gives_back_changed_rows_in_first_use_order() {
        let mut rows: BatchRows<u32, String> = BatchRows::default();
        let mut loads = 0;
        let mut load = |key: &u32| {
            loads += 1;
            Ok::<_, ()>((*key != 3).then(|| format!("row {key}")))
        };
        rows.slot(2, &mut load).unwrap(); // read, not changed
        rows.get(1, &mut load).unwrap().unwrap().push('!');
        assert!(rows.get(3, &mut load).unwrap().is_none()); // known not to exist
        rows.get(1, &mut load).unwrap().unwrap().push('?');
        *rows.slot(4, &mut load).unwrap() = (Some("new".to_owned()), true);
        assert_eq!(loads, 4);
        assert_eq!(
            rows.take_changed(),
            [(1, "row 1!?".to_owned()), (4, "new".to_owned())]
        );
        assert!(rows.take_changed().is_empty());
    }
}
