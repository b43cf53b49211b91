//! Server functions, and the small interface through which they reach the server's internals.
//!
//! The server provides a [`Backend`] as context; this crate never depends on the server crate, which keeps
//! the dependency arrow pointing one way (server → app).

use crate::error::AppError;
use leptos::prelude::*;
use shared::Envelope;

#[cfg(feature = "ssr")]
pub use ssr::{Backend, BackendHandle};

/// The whole dashboard state as of the newest event: what the server renders into the first HTML.
#[server(prefix = "/api", endpoint = "snapshot")]
pub async fn get_snapshot() -> Result<Envelope, AppError> {
    let backend = use_context::<BackendHandle>()
        .ok_or_else(|| AppError::Unavailable("no backend was provided to the app".into()))?;
    Ok(backend.0.snapshot())
}

#[cfg(feature = "ssr")]
mod ssr {
    use shared::Envelope;
    use std::sync::Arc;

    /// What the app needs from the server.
    pub trait Backend: Send + Sync + 'static {
        /// The current state, with the sequence number it is as of.
        fn snapshot(&self) -> Envelope;
    }

    /// The backend as the server provides it through context.
    #[derive(Clone)]
    pub struct BackendHandle(pub Arc<dyn Backend>);
}
