//! SIGINT/SIGTERM/SIGHUP: blocked in every thread and taken by one watcher thread. A stop
//! signal sets the shared stop flag that every shard polls; SIGHUP reloads the TLS
//! certificates (the next handshake serves the new ones; open connections keep theirs)
//! and asks shard 0 to reload the config file's streams
//! ([`crate::source::manage::reload`]).

use crate::shard::Shared;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tracing::{error, info, warn};

fn stop_signals() -> libc::sigset_t {
    // SAFETY: sigemptyset/sigaddset initialise and fill a sigset_t we own.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGHUP);
        set
    }
}

/// Blocks SIGINT, SIGTERM and SIGHUP in the calling thread and every thread it starts after.
pub fn block_signals() {
    let set = stop_signals();
    // SAFETY: `set` is an initialised sigset_t; a null old-set pointer is allowed.
    unsafe {
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
}

/// Starts the thread that waits for SIGINT/SIGTERM and SIGHUP. The first stop signal
/// starts a clean shutdown; a second one exits at once. SIGHUP reloads certificates.
pub fn spawn_watcher(shared: Arc<Shared>) {
    let spawned = std::thread::Builder::new()
        .name("corecast-signals".into())
        .spawn(move || {
            let set = stop_signals();
            loop {
                let mut sig: libc::c_int = 0;
                // SAFETY: `set` is initialised and `sig` is a valid out-pointer.
                let rc = unsafe { libc::sigwait(&set, &mut sig) };
                if rc != 0 {
                    continue;
                }
                if sig == libc::SIGHUP {
                    reload_certificates(&shared);
                    if shared.settings.file.is_some() {
                        // The shards apply it: shard 0 at its next heartbeat.
                        shared.reload_requested.store(true, Ordering::Relaxed);
                        shared.wake(0);
                    } else {
                        info!("SIGHUP: running on the built-in configuration, no config file to reload");
                    }
                    continue;
                }
                if shared.request_stop() {
                    warn!("second stop signal: exiting now");
                    std::process::exit(130);
                }
                let name = if sig == libc::SIGINT {
                    "SIGINT"
                } else {
                    "SIGTERM"
                };
                info!("{name} received: shutting down");
            }
        });
    if let Err(e) = spawned {
        warn!("cannot start the signal thread ({e}); stop with SIGKILL");
    }
}

/// Reads every TLS certificate and key again. Each one that loads is served from the next
/// handshake on (one info line); one that does not is logged (one error line naming the
/// file) and the previous one stays.
fn reload_certificates(shared: &Shared) {
    let certs = shared.settings.tls.certificates();
    if certs.is_empty() {
        info!("SIGHUP received: no TLS listener, nothing to reload");
        return;
    }
    for c in certs {
        match c.reload() {
            Ok(()) => info!(
                "SIGHUP: TLS certificate reloaded from {}",
                c.cert_path().display()
            ),
            Err(e) => error!("SIGHUP: TLS certificate not reloaded, the previous one stays: {e}"),
        }
    }
}
