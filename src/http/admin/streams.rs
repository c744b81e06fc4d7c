//! `POST /api/v1/streams`, `GET|PATCH|DELETE /api/v1/streams/{path}` and
//! `POST /api/v1/config/reload`.

use super::{Ctx, error};
use crate::http::proto::{Request, Response};

/// A request under `/api/v1/streams` (`rest`: empty or `/{path}`).
pub async fn handle(_cx: &Ctx<'_>, _req: &Request, _rest: &str) -> Response {
    error(501, "not implemented yet")
}

/// Re-reads the config file.
pub async fn reload(_cx: &Ctx<'_>) -> Response {
    error(501, "not implemented yet")
}
