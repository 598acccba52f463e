//! Task id -> slot.

use super::CoreTask;

/// Task id -> slot, in about 20 bytes a task: the map keeps a 64-bit hash of each id (a
/// `HashMap<String, usize>` of a million ids costs ~100 MB more), every hit is checked
/// against the task's own id, and the rare ids whose hash another id already took are kept
/// whole in `collided`.
#[derive(Debug, Default)]
pub(super) struct SlotIndex {
    pub(super) by_hash: std::collections::HashMap<u64, u32>,
    collided: std::collections::HashMap<String, usize>,
}

pub(super) fn id_hash(id: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    id.hash(&mut h);
    h.finish()
}

impl SlotIndex {
    pub(super) fn insert(&mut self, id: &str, slot: usize, tasks: &[CoreTask]) {
        match self.by_hash.entry(id_hash(id)) {
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(slot as u32);
            }
            std::collections::hash_map::Entry::Occupied(o) => {
                if tasks[*o.get() as usize].id != id {
                    self.collided.insert(id.to_string(), slot);
                }
            }
        }
    }

    pub(super) fn get(&self, id: &str, tasks: &[CoreTask]) -> Option<usize> {
        let slot = *self.by_hash.get(&id_hash(id))? as usize;
        if tasks.get(slot).is_some_and(|t| t.id == id) {
            return Some(slot);
        }
        self.collided.get(id).copied()
    }
}
