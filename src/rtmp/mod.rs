//! RTMP: the sans-IO protocol core (`proto`) and the glommio connection driver (`conn`).

mod conn;
pub mod proto;

pub use conn::serve;
