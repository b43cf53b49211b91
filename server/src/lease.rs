//! Leases: at most one holder of a name at a time. Today they say who runs a command on an exclusive target;
//! in scale-out they will also say which instance evaluates alerts and polls a shared target.
//!
//! The seam: [`Leases`] is what the rest of the server asks. In one process it is [`LocalLeases`], a map under
//! a lock. Across instances it is meant to be NATS KV — create-if-absent to take a name, compare-and-set on
//! the revision to renew or give it back, a TTL so a dead holder's lease runs out — and the [`Lease`]'s
//! revision then fences what its holder does (a deposed holder's revision is stale).

use std::collections::HashMap;
use std::sync::Mutex;

/// Who holds a name, as a refusal names them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub who: String,
    /// What they are doing with it, e.g. the command they run.
    pub what: String,
    pub since_ms: i64,
}

/// A name held. Give it back with [`Leases::release`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use = "a lease is held until it is released"]
pub struct Lease {
    pub name: String,
    /// Rises with every grant of any name: a holder can prove it holds the newest grant.
    pub revision: u64,
}

pub trait Leases: Send + Sync + 'static {
    /// Takes `name` for `holder` when nobody holds it; otherwise says who does.
    fn acquire(&self, name: &str, holder: Holder) -> Result<Lease, Holder>;

    /// Gives `lease` back. A lease that was since granted again (a newer revision) is left alone.
    fn release(&self, lease: &Lease);
}

/// Leases of one process.
#[derive(Default)]
pub struct LocalLeases {
    held: Mutex<Held>,
}

#[derive(Default)]
struct Held {
    revision: u64,
    names: HashMap<String, (u64, Holder)>,
}

impl Leases for LocalLeases {
    fn acquire(&self, name: &str, holder: Holder) -> Result<Lease, Holder> {
        // A poisoned lock only means a panic elsewhere while holding it; the map itself stays consistent.
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, current)) = held.names.get(name) {
            return Err(current.clone());
        }
        held.revision += 1;
        let revision = held.revision;
        held.names.insert(name.to_owned(), (revision, holder));
        Ok(Lease {
            name: name.to_owned(),
            revision,
        })
    }

    fn release(&self, lease: &Lease) {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        if held
            .names
            .get(&lease.name)
            .is_some_and(|(revision, _)| *revision == lease.revision)
        {
            held.names.remove(&lease.name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn holder(who: &str) -> Holder {
        Holder {
            who: who.into(),
            what: "restart".into(),
            since_ms: 1,
        }
    }

    #[test]
    fn a_name_has_one_holder_until_it_is_released() {
        let leases = LocalLeases::default();
        let first = leases.acquire("web-1", holder("ana")).unwrap();
        assert_eq!(leases.acquire("web-1", holder("bo")), Err(holder("ana")));
        assert!(leases.acquire("web-2", holder("bo")).is_ok());
        leases.release(&first);
        let again = leases.acquire("web-1", holder("bo")).unwrap();
        assert!(again.revision > first.revision);
    }

    #[test]
    fn releasing_a_stale_lease_leaves_the_newer_grant_alone() {
        let leases = LocalLeases::default();
        let old = leases.acquire("web-1", holder("ana")).unwrap();
        leases.release(&old);
        let new = leases.acquire("web-1", holder("bo")).unwrap();
        leases.release(&old);
        assert_eq!(leases.acquire("web-1", holder("cy")), Err(holder("bo")));
        leases.release(&new);
        assert!(leases.acquire("web-1", holder("cy")).is_ok());
    }
}
