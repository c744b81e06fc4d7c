//! The corecast server binary: flags, configuration, logging, then the runtime.

use corecast::config::{Config, DEFAULT_CONFIG};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

const USAGE: &str = "\
corecast - a thread-per-core live-media server

USAGE:
    corecast [--config FILE] [--print-config]

OPTIONS:
    -c, --config FILE   use FILE instead of the built-in configuration (configs/corecast.toml)
        --print-config  print the effective configuration and exit
    -h, --help          print this help
    -V, --version       print the version

Logs go to stderr; RUST_LOG overrides runtime.log. Stop with Ctrl-C or SIGTERM.";

struct Args {
    config: Option<PathBuf>,
    print_config: bool,
}

/// Why the command line was refused (exit status 2).
#[derive(Debug, thiserror::Error)]
enum ArgsError {
    /// `--config` was the last argument.
    #[error("--config needs a file")]
    MissingConfigFile,
    /// An argument we do not know.
    #[error("unknown argument '{0}' (see --help)")]
    Unknown(String),
}

fn parse_args() -> Result<Option<Args>, ArgsError> {
    let mut args = Args {
        config: None,
        print_config: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "-c" | "--config" => {
                let f = it.next().ok_or(ArgsError::MissingConfigFile)?;
                args.config = Some(PathBuf::from(f));
            }
            s if s.starts_with("--config=") => {
                args.config = Some(PathBuf::from(&s["--config=".len()..]));
            }
            "--print-config" => args.print_config = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(None);
            }
            "-V" | "--version" => {
                println!("corecast {}", env!("CARGO_PKG_VERSION"));
                return Ok(None);
            }
            other => return Err(ArgsError::Unknown(other.to_string())),
        }
    }
    Ok(Some(args))
}

fn init_logging(filter: &str) {
    let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| filter.to_string());
    let env = tracing_subscriber::EnvFilter::try_new(&filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(env)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(Some(a)) => a,
        Ok(None) => return ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("corecast: {e}");
            return ExitCode::from(2);
        }
    };
    let (text, base, origin) = match &args.config {
        Some(path) => match std::fs::read_to_string(path) {
            Ok(t) => {
                let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
                (t, base, path.display().to_string())
            }
            Err(e) => {
                eprintln!(
                    "corecast: config error: cannot read {}: {e}",
                    path.display()
                );
                return ExitCode::from(2);
            }
        },
        None => (
            DEFAULT_CONFIG.to_string(),
            PathBuf::from("."),
            "built-in default".to_string(),
        ),
    };
    let config = match Config::parse(&text) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("corecast: config error ({origin}): {e}");
            return ExitCode::from(2);
        }
    };
    if args.print_config {
        print!("{}", config.to_toml());
        return ExitCode::SUCCESS;
    }
    let cpus: Vec<usize> = core_affinity::get_core_ids()
        .unwrap_or_default()
        .into_iter()
        .map(|c| c.id)
        .collect();
    let log = config.runtime.log.clone();
    let warnings = config.warnings();
    let mut settings = match config.validate(&cpus, &base) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("corecast: config error ({origin}): {e}");
            return ExitCode::from(2);
        }
    };
    settings.file = args.config.clone();
    let checked = match corecast::runtime::preflight(&mut settings) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("corecast: {e}");
            return ExitCode::from(2);
        }
    };
    init_logging(&log);
    checked.nofile.log();
    tracing::info!(
        "corecast {} starting: {} shards, config: {origin}",
        env!("CARGO_PKG_VERSION"),
        settings.shards
    );
    for w in warnings {
        tracing::warn!("config ({origin}): {w}");
    }
    match corecast::runtime::run(settings, checked.http_addr, checked.rtmp_addr) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("corecast: {e}");
            ExitCode::from(1)
        }
    }
}
