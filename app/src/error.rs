//! The error type every server function returns, so the UI can tell "the server is not ready" from
//! "the request never arrived" and say which.

use serde::{Deserialize, Serialize};
use server_fn::error::{FromServerFnError, ServerFnErrorErr};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, thiserror::Error)]
pub enum AppError {
    /// The server is up but a part the request needs is not (configuration or start-up problem).
    #[error("the server is not ready: {0}")]
    Unavailable(String),
    /// The store could not answer (a read failed); the server itself is up.
    #[error("the store cannot be read: {0}")]
    Storage(String),
    /// The request asked for something that cannot be answered as asked; the message says why.
    #[error("{0}")]
    BadRequest(String),
    /// The signed-in user may not do this; the message names the role it needs.
    #[error("{0}")]
    Forbidden(String),
    /// What the request names does not exist (a run, a command).
    #[error("{0}")]
    NotFound(String),
    /// The request collides with the current state (a name taken, the last admin); the message says how.
    #[error("{0}")]
    Conflict(String),
    /// Transport, encoding or registration problems reported by the server-function machinery.
    #[error("request failed: {0}")]
    Request(ServerFnErrorErr),
}

impl FromServerFnError for AppError {
    type Encoder = crate::codec::JsonTextEncoding;

    /// On the server, an error here comes from decoding the request (the function itself has not run): a
    /// missing or mistyped argument, a body that is not UTF-8 or not the encoding the function takes. That
    /// is the client's mistake, so it answers 400 with the decoder's message instead of the 500 the
    /// server-function machinery would send. Other errors (encoding the answer) stay faults of the server.
    fn from_server_fn_error(value: ServerFnErrorErr) -> Self {
        #[cfg(feature = "ssr")]
        if let ServerFnErrorErr::Args(m)
        | ServerFnErrorErr::MissingArg(m)
        | ServerFnErrorErr::Deserialization(m)
        | ServerFnErrorErr::UnsupportedRequestMethod(m) = &value
        {
            if let Some(response) = leptos::prelude::use_context::<leptos_axum::ResponseOptions>() {
                response.set_status(http::StatusCode::BAD_REQUEST);
            }
            return AppError::BadRequest(format!("the request's arguments are not valid: {m}"));
        }
        AppError::Request(value)
    }
}
