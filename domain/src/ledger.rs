//! The stock ledger's hash chain.
//!
//! Every stock movement of a tenant carries a sequence number and the hash of the movement before it.
//! A movement's hash covers all of its fields and that previous hash, so altering, removing or
//! reordering any movement breaks every later link, and [`verify`] names the first broken one.

use sha2::{Digest, Sha256};
use uuid::Uuid;

/// The hash the first movement of a tenant chains to.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The fields of a movement that the chain protects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MovementFields<'a> {
    pub tenant_id: Uuid,
    pub seq: i64,
    pub id: Uuid,
    pub variant_id: Uuid,
    pub location_id: Uuid,
    pub kind: &'a str,
    pub delta_on_hand: i64,
    pub delta_reserved: i64,
    pub reason: &'a str,
    pub reference: &'a str,
    /// Microseconds since the Unix epoch, UTC.
    pub occurred_at_micros: i64,
}

/// A movement as stored: its fields plus the two hashes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainedMovement<'a> {
    pub fields: MovementFields<'a>,
    pub prev_hash: &'a str,
    pub hash: &'a str,
}

/// Hex SHA-256 over a length-prefixed encoding of the fields and the previous hash.
pub fn hash_movement(fields: &MovementFields<'_>, prev_hash: &str) -> String {
    let mut h = Sha256::new();
    let mut put = |s: &str| {
        h.update((s.len() as u64).to_be_bytes());
        h.update(s.as_bytes());
    };
    put("qm.movement.v1");
    put(&fields.tenant_id.to_string());
    put(&fields.seq.to_string());
    put(&fields.id.to_string());
    put(&fields.variant_id.to_string());
    put(&fields.location_id.to_string());
    put(fields.kind);
    put(&fields.delta_on_hand.to_string());
    put(&fields.delta_reserved.to_string());
    put(fields.reason);
    put(fields.reference);
    put(&fields.occurred_at_micros.to_string());
    put(prev_hash);
    hex::encode(h.finalize())
}

/// The first link that does not hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokenLink {
    pub seq: i64,
    pub movement_id: Uuid,
    pub problem: LinkProblem,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkProblem {
    /// The sequence number is not the one after the previous movement's.
    SequenceGap,
    /// `prev_hash` is not the previous movement's hash.
    PrevHashMismatch,
    /// The stored hash does not match the movement's contents.
    HashMismatch,
}

/// The outcome of checking a whole chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    pub checked: u64,
    pub head_hash: String,
    pub first_broken: Option<BrokenLink>,
}

/// Checks a tenant's movements, given in sequence order starting at 1.
pub fn verify<'a>(movements: impl IntoIterator<Item = ChainedMovement<'a>>) -> Verification {
    let mut expected_prev = GENESIS_HASH.to_owned();
    let mut checked = 0;
    for (expected_seq, m) in (1..).zip(movements) {
        checked += 1;
        let problem = if m.fields.seq != expected_seq {
            Some(LinkProblem::SequenceGap)
        } else if m.prev_hash != expected_prev {
            Some(LinkProblem::PrevHashMismatch)
        } else if hash_movement(&m.fields, m.prev_hash) != m.hash {
            Some(LinkProblem::HashMismatch)
        } else {
            None
        };
        if let Some(problem) = problem {
            return Verification {
                checked,
                head_hash: expected_prev,
                first_broken: Some(BrokenLink { seq: m.fields.seq, movement_id: m.fields.id, problem }),
            };
        }
        expected_prev = m.hash.to_owned();
    }
    Verification { checked, head_hash: expected_prev, first_broken: None }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(seq: i64, delta: i64) -> MovementFields<'static> {
        MovementFields {
            tenant_id: Uuid::from_u128(1),
            seq,
            id: Uuid::from_u128(100 + seq as u128),
            variant_id: Uuid::from_u128(7),
            location_id: Uuid::from_u128(9),
            kind: "adjust",
            delta_on_hand: delta,
            delta_reserved: 0,
            reason: "count",
            reference: "",
            occurred_at_micros: 1_700_000_000_000_000 + seq,
        }
    }

    fn chain(n: i64) -> Vec<(MovementFields<'static>, String, String)> {
        let mut prev = GENESIS_HASH.to_owned();
        (1..=n)
            .map(|seq| {
                let f = fields(seq, seq * 2);
                let h = hash_movement(&f, &prev);
                let out = (f, prev.clone(), h.clone());
                prev = h;
                out
            })
            .collect()
    }

    fn view<'a>(c: &'a [(MovementFields<'static>, String, String)]) -> Vec<ChainedMovement<'a>> {
        c.iter().map(|(f, p, h)| ChainedMovement { fields: f.clone(), prev_hash: p, hash: h }).collect()
    }

    #[test]
    fn an_untouched_chain_verifies() {
        let c = chain(5);
        let v = verify(view(&c));
        assert_eq!(v.checked, 5);
        assert_eq!(v.first_broken, None);
        assert_eq!(v.head_hash, c[4].2);
    }

    #[test]
    fn an_altered_quantity_is_the_first_broken_link() {
        let mut c = chain(5);
        c[2].0.delta_on_hand = 999;
        let v = verify(view(&c));
        let broken = v.first_broken.expect("tampering is detected");
        assert_eq!(broken.seq, 3);
        assert_eq!(broken.problem, LinkProblem::HashMismatch);
    }

    #[test]
    fn a_removed_movement_shows_as_a_gap() {
        let mut c = chain(5);
        c.remove(1);
        let broken = verify(view(&c)).first_broken.expect("gap is detected");
        assert_eq!((broken.seq, broken.problem), (3, LinkProblem::SequenceGap));
    }

    #[test]
    fn a_rehashed_movement_breaks_the_next_link() {
        let mut c = chain(4);
        c[1].0.delta_on_hand = -50;
        c[1].2 = hash_movement(&c[1].0, &c[1].1);
        let broken = verify(view(&c)).first_broken.expect("re-hashing is detected");
        assert_eq!((broken.seq, broken.problem), (3, LinkProblem::PrevHashMismatch));
    }

    #[test]
    fn field_boundaries_cannot_be_shifted() {
        let mut a = fields(1, 1);
        a.reason = "ab";
        a.reference = "c";
        let mut b = fields(1, 1);
        b.reason = "a";
        b.reference = "bc";
        assert_ne!(hash_movement(&a, GENESIS_HASH), hash_movement(&b, GENESIS_HASH));
    }
}
