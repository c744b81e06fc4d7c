//! `GET /api/v1/sessions` and `DELETE /api/v1/sessions/{id}`.

use super::{Ctx, error};
use crate::http::proto::{Request, Response};

/// Every session on every shard.
pub async fn list(_cx: &Ctx<'_>, _req: &Request) -> Response {
    error(501, "not implemented yet")
}

/// Ends session `id`.
pub async fn delete(_cx: &Ctx<'_>, _id: &str) -> Response {
    error(501, "not implemented yet")
}
