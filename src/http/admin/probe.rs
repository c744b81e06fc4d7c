//! `POST /api/v1/probe`: tries a camera (RTSP DESCRIBE) before it is added.

use super::{Ctx, error};
use crate::http::proto::{Request, Response};

/// Runs DESCRIBE against the URL in the body.
pub async fn handle(_cx: &Ctx<'_>, _req: &Request) -> Response {
    error(501, "not implemented yet")
}
