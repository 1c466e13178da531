//! `berthd`: the Docker Engine API over a unix socket.
//!
//! This crate is the edge: it turns HTTP requests into engine and image-store calls and
//! their results (or errors, in one place: [`error`]) back into Docker's wire format. It
//! holds no container logic. [`server`] owns the socket, the `/vX.Y` prefix and the
//! headers every response carries; [`routes`] has one module per API area.
//!
//! Tests drive [`server::handle`] with a router from [`router`], without a socket.

pub mod body_limit;
pub mod error;
pub mod query;
pub mod routes;
pub mod server;

use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub engine: Arc<berth_engine::Engine>,
    /// The shim binary, reported by `/info`.
    pub shim_binary: PathBuf,
    /// The detach sequence of attach and exec when the client names none
    /// (`berthd --detach-keys`, Docker's `ctrl-p,ctrl-q` by default).
    pub detach_keys: Vec<u8>,
    /// The build contexts kept for `berth build`'s rebuilds.
    pub contexts: Arc<berth_build::ContextCache>,
    /// The registry client: endpoints, TLS, insecure registries, mirrors.
    pub registry: Arc<berth_registry::Registry>,
}

/// The API's routes, unversioned (the server strips `/vX.Y`).
pub fn router(state: AppState) -> Router {
    let internal_paths = error::InternalPaths::of(&state.engine);
    routes::system::routes()
        .merge(routes::build::routes())
        .merge(routes::containers::routes())
        .merge(routes::exec::routes())
        .merge(routes::images::routes())
        .merge(routes::events::routes())
        .merge(routes::networks::routes())
        .merge(routes::volumes::routes())
        .fallback(|| async { error::ApiError::not_found("page not found") })
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            body_limit::limit_bodies,
        ))
        // Outermost: every server error, whichever layer or route made it.
        .layer(axum::middleware::map_response_with_state(
            internal_paths,
            error::hide_internal_paths,
        ))
        .with_state(state)
}
