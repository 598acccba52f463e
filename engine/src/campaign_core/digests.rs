//! What a step's tasks consumed and produced, as digests; deterministic jitter.

use crate::task_state::TaskState;

/// What a step's tasks consumed: each upstream step's name and product digest, in `needs`
/// order. The one definition for the core (at launch) and `freshness` (at plan time).
pub fn consumed_digest_of<'a>(upstream: impl Iterator<Item = (&'a str, String)>) -> String {
    let mut h = blake3::Hasher::new();
    for (name, products) in upstream {
        h.update(name.as_bytes());
        h.update(b"\0");
        h.update(products.as_bytes());
    }
    h.finalize().to_hex()[..16].to_string()
}

/// The digest of a step's products: every task's id, state and product, in task order.
pub fn product_digest<'a>(
    tasks: impl Iterator<Item = (&'a str, TaskState, Option<&'a str>)>,
) -> String {
    let mut h = blake3::Hasher::new();
    for (id, state, product) in tasks {
        h.update(id.as_bytes());
        h.update(b"=");
        match (state, product) {
            (TaskState::Succeeded, Some(p)) => h.update(p.as_bytes()),
            (TaskState::Succeeded, None) => h.update(b"succeeded"),
            (s, _) => h.update(s.as_str().as_bytes()),
        };
        h.update(b"\0");
    }
    h.finalize().to_hex()[..16].to_string()
}

/// A deterministic number in [0, 1) per task attempt (jitter without a random source, so a
/// replay of the same history makes the same decisions).
pub fn jitter_unit(id: &str, attempt: u32) -> f64 {
    let h = blake3::hash(format!("{id}/{attempt}/jitter").as_bytes());
    let mut b = [0u8; 8];
    b.copy_from_slice(&h.as_bytes()[..8]);
    (u64::from_le_bytes(b) >> 11) as f64 / (1u64 << 53) as f64
}
