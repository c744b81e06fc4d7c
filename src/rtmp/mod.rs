//! RTMP: the sans-IO protocol core (`proto`) and the glommio connection driver (`conn`).

mod conn;
pub mod proto;

pub use conn::serve;

/// The `APP/NAME` part of the RTMP URL that plays `path`. RTMP clients insist on an app
/// and a stream name, so a one-segment path (`demo`) plays as `live/demo`; the player's
/// side of this rule ([`crate::stream::StreamPath::alias`]) is applied by the session.
pub fn play_path(path: &str) -> String {
    if path.contains('/') {
        path.to_string()
    } else {
        format!("{PLAY_APP}/{path}")
    }
}

/// The app named in [`play_path`] for one-segment paths (any app works when playing).
pub const PLAY_APP: &str = "live";
