//! Hash chains: the stock ledger's, and the pieces every chain shares (`hash_parts`, `verify_links`).
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

/// Hex SHA-256 over a length-prefixed encoding of `tag`, `parts` and the previous hash: no
/// shifting of a boundary between two parts gives the same bytes. Every hash chain here (stock
/// movements, contract events) hashes its entries with it, each under its own tag.
pub fn hash_parts(tag: &str, parts: &[&str], prev_hash: &str) -> String {
    let mut h = Sha256::new();
    for s in std::iter::once(tag).chain(parts.iter().copied()).chain(std::iter::once(prev_hash)) {
        h.update((s.len() as u64).to_be_bytes());
        h.update(s.as_bytes());
    }
    hex::encode(h.finalize())
}

/// Hex SHA-256 over a length-prefixed encoding of the fields and the previous hash.
pub fn hash_movement(fields: &MovementFields<'_>, prev_hash: &str) -> String {
    hash_parts(
        "qm.movement.v1",
        &[
            &fields.tenant_id.to_string(),
            &fields.seq.to_string(),
            &fields.id.to_string(),
            &fields.variant_id.to_string(),
            &fields.location_id.to_string(),
            fields.kind,
            &fields.delta_on_hand.to_string(),
            &fields.delta_reserved.to_string(),
            fields.reason,
            fields.reference,
            &fields.occurred_at_micros.to_string(),
        ],
        prev_hash,
    )
}

/// The first link that does not hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokenLink {
    pub seq: i64,
    /// The entry's id (the movement's, the event's).
    pub id: Uuid,
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

/// An entry of a hash chain as stored.
pub trait Link {
    fn seq(&self) -> i64;
    fn id(&self) -> Uuid;
    fn prev_hash(&self) -> &str;
    fn hash(&self) -> &str;
    /// The hash its contents and stored `prev_hash` give.
    fn computed_hash(&self) -> String;
}

impl Link for ChainedMovement<'_> {
    fn seq(&self) -> i64 {
        self.fields.seq
    }
    fn id(&self) -> Uuid {
        self.fields.id
    }
    fn prev_hash(&self) -> &str {
        self.prev_hash
    }
    fn hash(&self) -> &str {
        self.hash
    }
    fn computed_hash(&self) -> String {
        hash_movement(&self.fields, self.prev_hash)
    }
}

/// Checks a chain given in sequence order starting at 1: the first link that does not hold.
pub fn verify_links<L: Link>(links: impl IntoIterator<Item = L>) -> Verification {
    let mut expected_prev = GENESIS_HASH.to_owned();
    let mut checked = 0;
    for (expected_seq, m) in (1..).zip(links) {
        checked += 1;
        let problem = if m.seq() != expected_seq {
            Some(LinkProblem::SequenceGap)
        } else if m.prev_hash() != expected_prev {
            Some(LinkProblem::PrevHashMismatch)
        } else if m.computed_hash() != m.hash() {
            Some(LinkProblem::HashMismatch)
        } else {
            None
        };
        if let Some(problem) = problem {
            return Verification {
                checked,
                head_hash: expected_prev,
                first_broken: Some(BrokenLink { seq: m.seq(), id: m.id(), problem }),
            };
        }
        expected_prev = m.hash().to_owned();
    }
    Verification { checked, head_hash: expected_prev, first_broken: None }
}

/// Checks a tenant's movements, given in sequence order starting at 1.
pub fn verify<'a>(movements: impl IntoIterator<Item = ChainedMovement<'a>>) -> Verification {
    verify_links(movements)
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
    fn a_movements_hash_is_what_stored_chains_hold() {
        // Computed by the version that wrote the chains in use; a change here breaks them all.
        assert_eq!(
            hash_movement(&fields(1, 2), GENESIS_HASH),
            "53934f26a8af837d893fda6faadf1f8dbd61a854513b2376c30c348419d635e0"
        );
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
