//! What the components need of the reactive system beyond Leptos's own calls.

use leptos::prelude::*;

/// Makes the running effect or memo depend on `memo`, by reading it. Not `Track::track`: in
/// reactive_graph 0.2 that subscribes without running the memo, and a memo that nothing reads never runs,
/// so it never subscribes to its own sources and never changes (the Hosts page's sparklines stayed empty,
/// and an open deployment history never reloaded, that way).
pub fn depend_on<T: Send + Sync + 'static>(memo: Memo<T>) {
    memo.with(|_| ());
}
