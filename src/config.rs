//! Configuration: the TOML file, its defaults and its validation.
//!
//! The default configuration is `configs/corecast.toml`, compiled into the binary. Every
//! error names the key that is wrong and what is wrong with it, on one line.

use crate::stream::{Clash, StreamPath};
pub use auth::{AuthConfig, PermissionConfig, UserConfig};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The embedded default configuration (`configs/corecast.toml`).
pub const DEFAULT_CONFIG: &str = include_str!("../configs/corecast.toml");

/// A configuration error: the key and what is wrong with it.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{key}: {message}")]
pub struct ConfigError {
    /// Dotted path of the offending key (`runtime.shards`, `streams[1].path`).
    pub key: String,
    /// What is wrong and, where it helps, how to fix it.
    pub message: String,
}

impl ConfigError {
    /// An error about `key`.
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError {
            key: key.into(),
            message: message.into(),
        }
    }
}

/// The whole configuration.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Shards, pinning and runtime memory.
    #[serde(default)]
    pub runtime: RuntimeConfig,
    /// The HTTP server (web page, API, metrics, signaling).
    #[serde(default)]
    pub http: HttpConfig,
    /// The RTMP server.
    #[serde(default)]
    pub rtmp: RtmpConfig,
    /// WebRTC transport.
    #[serde(default)]
    pub webrtc: WebRtcConfig,
    /// RTSP camera ingest (`rtsp://` sources).
    #[serde(default)]
    pub rtsp: RtspConfig,
    /// Bounds on per-stream and per-viewer buffers.
    #[serde(default)]
    pub media: MediaConfig,
    /// Who may publish, watch and read the API and metrics.
    #[serde(default)]
    pub auth: AuthConfig,
    /// The management API.
    #[serde(default)]
    pub api: ApiConfig,
    /// Statically configured streams.
    #[serde(default)]
    pub streams: Vec<StreamConfig>,
}

/// `[api]`: the management API (`/api/v1/`, `api` permission).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    /// Write stream changes made through the API back to the `--config` file (comments
    /// and layout kept). Off: changes last until restart.
    pub persist: bool,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig { persist: true }
    }
}

/// `[runtime]`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RuntimeConfig {
    /// Number of shards: a number, or `"auto"` for one per available CPU.
    pub shards: Shards,
    /// Optional fixed shard-to-CPU map: shard i runs on CPU `cpus[i]`.
    pub cpus: Vec<usize>,
    /// Memory each shard registers with io_uring (locked memory).
    pub io_memory: ByteSize,
    /// Capacity of each cross-shard channel, in messages.
    pub mesh_capacity: usize,
    /// Log filter (`error`, `warn`, `info`, `debug`, `trace`, or a tracing filter).
    pub log: String,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            shards: Shards::Auto,
            cpus: Vec::new(),
            io_memory: ByteSize(512 * 1024),
            mesh_capacity: 1024,
            log: "info".into(),
        }
    }
}

/// Number of shards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shards {
    /// One shard per CPU the process may run on (or per entry of `cpus`).
    Auto,
    /// A fixed number.
    Count(usize),
}

/// `[http]`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Listen address of the web page, API, metrics and signaling.
    pub listen: SocketAddr,
    /// Most open HTTP/WebSocket connections per shard; more get 503.
    pub max_connections: usize,
    /// Most open HTTP/WebSocket connections from one IP address (all shards together);
    /// more get 429.
    pub max_connections_per_ip: usize,
    /// Most bytes of a request's header section (431 past it).
    pub max_header_bytes: ByteSize,
    /// Most bytes of a request body (413 past it).
    pub max_body_bytes: ByteSize,
    /// Time a client has to send a complete request once it started one (slowloris guard).
    pub header_timeout: Millis,
    /// Time an idle keep-alive connection is kept open.
    pub idle_timeout: Millis,
    /// WebSocket keep-alive: the server pings this often, keeps a socket that answers
    /// open however quiet it is, and closes one that leaves two pings unanswered. "0s"
    /// turns pings off (a quiet WebSocket then ends at `idle_timeout`).
    pub ws_ping_interval: Millis,
    /// Kernel send buffer (SO_SNDBUF) of an MSE viewer's socket (`/mse/{path}`): how much
    /// a slow viewer holds in the kernel before its frames are dropped to the next
    /// keyframe (and so how far behind live it can fall). 0 keeps the kernel's auto-tuning.
    pub mse_send_buffer: ByteSize,
    /// Web origins (`http://host:port`, or `"*"` for any) whose pages may read `/api`
    /// (CORS) and open `/ws`, besides the server's own origin. Empty: same origin only.
    pub allow_origins: Vec<String>,
    /// HTTPS listen address (everything the plain port serves, over TLS). Absent or
    /// empty: no HTTPS.
    #[serde(
        deserialize_with = "optional_addr",
        skip_serializing_if = "Option::is_none"
    )]
    pub tls_listen: Option<SocketAddr>,
    /// PEM certificate chain of the HTTPS listener (relative to the config file).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `tls_cert`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_key: Option<PathBuf>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: SocketAddr::from(([0, 0, 0, 0], 8080)),
            max_connections: 4096,
            max_connections_per_ip: 256,
            max_header_bytes: ByteSize(16 * 1024),
            max_body_bytes: ByteSize(1024 * 1024),
            header_timeout: Millis(Duration::from_secs(10)),
            idle_timeout: Millis(Duration::from_secs(60)),
            ws_ping_interval: Millis(Duration::from_secs(20)),
            mse_send_buffer: ByteSize(512 * 1024),
            allow_origins: Vec::new(),
            tls_listen: None,
            tls_cert: None,
            tls_key: None,
        }
    }
}

/// `[rtmp]`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RtmpConfig {
    /// Listen address for publishers and players.
    pub listen: SocketAddr,
    /// Chunk size corecast sends with (players share one encoding of each frame per shard).
    pub chunk_size: u32,
    /// Largest message a peer may send.
    pub max_message_bytes: ByteSize,
    /// Most open RTMP connections per shard; more are closed at once.
    pub max_connections: usize,
    /// Most open RTMP connections from one IP address (all shards together); more are
    /// closed at once.
    pub max_connections_per_ip: usize,
    /// Time a client has for the handshake and `connect`.
    pub handshake_timeout: Millis,
    /// A publisher that sends nothing for this long is disconnected.
    pub idle_timeout: Millis,
    /// A player whose socket accepts no data for this long is disconnected.
    pub send_timeout: Millis,
    /// Merged writes: a player is sent to at most once per this interval, everything
    /// queued meanwhile in one system call. "0ms" sends every frame as it comes.
    pub merge_write: Millis,
    /// Longest merge interval for a player that announces a long buffer (Set Buffer
    /// Length): it gets a tenth of its buffer, between `merge_write` and this.
    pub merge_write_max: Millis,
    /// Kernel send buffer (SO_SNDBUF) of each connection; bounds the memory a slow player
    /// can hold in the kernel. 0 keeps the kernel's auto-tuning.
    pub send_buffer: ByteSize,
    /// Key every publisher must give (`?key=...`) on paths without their own
    /// `publish_key`. Unset: publishing is open.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub publish_key: Option<String>,
    /// RTMPS listen address. Absent or empty: no RTMPS.
    #[serde(
        deserialize_with = "optional_addr",
        skip_serializing_if = "Option::is_none"
    )]
    pub tls_listen: Option<SocketAddr>,
    /// PEM certificate chain of the RTMPS listener; absent: `http.tls_cert`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `tls_cert`; absent: `http.tls_key`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_key: Option<PathBuf>,
}

impl Default for RtmpConfig {
    fn default() -> Self {
        RtmpConfig {
            listen: SocketAddr::from(([0, 0, 0, 0], 1935)),
            chunk_size: 4096,
            max_message_bytes: ByteSize(8 * 1024 * 1024),
            max_connections: 4096,
            max_connections_per_ip: 64,
            handshake_timeout: Millis(Duration::from_secs(10)),
            idle_timeout: Millis(Duration::from_secs(30)),
            send_timeout: Millis(Duration::from_secs(10)),
            merge_write: Millis(Duration::from_millis(100)),
            merge_write_max: Millis(Duration::from_millis(250)),
            send_buffer: ByteSize(512 * 1024),
            publish_key: None,
            tls_listen: None,
            tls_cert: None,
            tls_key: None,
        }
    }
}

/// `[webrtc]`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct WebRtcConfig {
    /// UDP port of shard 0; shard i uses `udp_port + i`. 0 lets each shard pick a free port.
    pub udp_port: u16,
    /// Address the UDP sockets bind to.
    pub bind: std::net::IpAddr,
    /// Addresses announced to browsers as host candidates; empty = the machine's own.
    pub advertised: Vec<std::net::IpAddr>,
    /// Most WebRTC sessions per shard; more get 503.
    pub max_sessions: usize,
    /// Most WebRTC sessions one viewer address may hold, on all shards together,
    /// counting sessions that have not finished ICE and DTLS and offers waiting for an
    /// on-demand source; more get 429. 0: no limit.
    pub max_sessions_per_ip: usize,
    /// Kernel send buffer of each shard's UDP socket.
    pub send_buffer: ByteSize,
    /// Send queued datagrams with one sendmmsg call per batch instead of one sendto each.
    pub batch_send: bool,
    /// Send a run of datagrams to one viewer (a frame's equal-size packets) as one
    /// message with UDP GSO (`UDP_SEGMENT`), when the kernel has it.
    pub gso: bool,
    /// A session from which nothing (STUN consent, RTCP) arrives this long is closed.
    pub session_timeout: Millis,
    /// Fewest time between two GOP re-sends to one viewer answering its keyframe requests.
    pub keyframe_interval: Millis,
    /// Bytes of GOP re-sends per second per shard, all viewers together; keyframe
    /// requests beyond it are not answered (counted).
    pub gop_resend_budget: ByteSize,
    /// Most video packets kept per viewer to answer NACKs (retransmission history).
    pub nack_packets: usize,
    /// The most a WHIP publisher may send, in bit/s, told to it with REMB; 0 tells
    /// nothing.
    pub whip_max_bitrate: u64,
}

impl Default for WebRtcConfig {
    fn default() -> Self {
        WebRtcConfig {
            udp_port: 8189,
            bind: std::net::IpAddr::from([0, 0, 0, 0]),
            advertised: Vec::new(),
            max_sessions: 2000,
            max_sessions_per_ip: 64,
            send_buffer: ByteSize(4 * 1024 * 1024),
            batch_send: true,
            gso: true,
            session_timeout: Millis(Duration::from_secs(7)),
            keyframe_interval: Millis(Duration::from_secs(2)),
            gop_resend_budget: ByteSize(32 * 1024 * 1024),
            nack_packets: 128,
            whip_max_bitrate: 6_000_000,
        }
    }
}

/// How an RTSP source receives its media.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RtspTransport {
    /// RTP interleaved on the RTSP TCP connection.
    Tcp,
    /// RTP over UDP, one client port pair per track.
    Udp,
    /// UDP first; TCP when no packet arrives within `rtsp.udp_timeout`.
    Auto,
}

impl RtspTransport {
    /// `tcp`, `udp` or `auto`.
    pub fn name(self) -> &'static str {
        match self {
            RtspTransport::Tcp => "tcp",
            RtspTransport::Udp => "udp",
            RtspTransport::Auto => "auto",
        }
    }
}

/// Which redirects (3xx with `Location`) of an RTSP camera are followed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum FollowRedirects {
    /// To the camera's own host only (another port is fine).
    #[default]
    SameHost,
    /// To any host; the configured credentials still go to the camera's host only.
    Any,
    /// None: a redirect is an error.
    Never,
}

impl FollowRedirects {
    /// `same-host`, `any` or `never`, as written in the config.
    pub fn name(self) -> &'static str {
        match self {
            FollowRedirects::SameHost => "same-host",
            FollowRedirects::Any => "any",
            FollowRedirects::Never => "never",
        }
    }
}

/// `[rtsp]`: defaults and bounds of RTSP camera pulls.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RtspConfig {
    /// Transport of streams that do not set their own.
    pub transport: RtspTransport,
    /// Lowest local UDP port for RTP/RTCP pairs (even; RTCP is the next port).
    pub udp_port_min: u16,
    /// Highest local UDP port for RTP/RTCP pairs.
    pub udp_port_max: u16,
    /// With `transport = "auto"`: how long to wait for the first UDP packet before
    /// reconnecting over TCP.
    pub udp_timeout: Millis,
    /// Time to open the TCP connection to a camera.
    pub connect_timeout: Millis,
    /// Time a camera has to answer a request.
    pub response_timeout: Millis,
    /// A playing camera that sends no media for this long is reconnected.
    pub read_timeout: Millis,
    /// First wait before reconnecting; doubles after each failure.
    pub retry_min: Millis,
    /// Longest wait between reconnects.
    pub retry_max: Millis,
    /// How long a viewer's offer waits for a camera's first media (an on-demand camera
    /// starting, or an always-on one that is connecting).
    pub on_demand_start_timeout: Millis,
    /// Which camera redirects are followed (streams may set their own).
    pub follow_redirects: FollowRedirects,
}

impl Default for RtspConfig {
    fn default() -> Self {
        RtspConfig {
            transport: RtspTransport::Auto,
            udp_port_min: 30000,
            udp_port_max: 39999,
            udp_timeout: Millis(Duration::from_secs(3)),
            connect_timeout: Millis(Duration::from_secs(5)),
            response_timeout: Millis(Duration::from_secs(10)),
            read_timeout: Millis(Duration::from_secs(10)),
            retry_min: Millis(Duration::from_secs(1)),
            retry_max: Millis(Duration::from_secs(30)),
            on_demand_start_timeout: Millis(Duration::from_secs(10)),
            follow_redirects: FollowRedirects::SameHost,
        }
    }
}

/// `[media]`: bounds of the buffers on the media path.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct MediaConfig {
    /// Most bytes kept in a stream's GOP cache.
    pub gop_max_bytes: ByteSize,
    /// Most frames kept in a stream's GOP cache.
    pub gop_max_frames: usize,
    /// Most frames queued for one viewer before it drops to the next keyframe.
    pub sink_max_frames: usize,
    /// Most bytes queued for one viewer before it drops to the next keyframe.
    pub sink_max_bytes: ByteSize,
    /// Largest FLV tag a file source accepts.
    pub max_frame_bytes: ByteSize,
    /// `auto`: a stream's AAC audio is transcoded to Opus (once per stream, on its owner
    /// shard) while a browser watches it, since browsers cannot play AAC over WebRTC;
    /// `off`: browsers get no sound from AAC streams.
    pub transcode_audio: TranscodeAudio,
}

/// `media.transcode_audio`.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum TranscodeAudio {
    /// AAC → Opus while a browser watches.
    #[default]
    Auto,
    /// Never.
    Off,
}

impl Default for MediaConfig {
    fn default() -> Self {
        MediaConfig {
            gop_max_bytes: ByteSize(16 * 1024 * 1024),
            gop_max_frames: 1200,
            // Above the GOP cache's bounds: a viewer joining a full GOP gets all of it and
            // still has room for the live frames that follow.
            sink_max_frames: 1500,
            sink_max_bytes: ByteSize(24 * 1024 * 1024),
            max_frame_bytes: ByteSize(8 * 1024 * 1024),
            transcode_audio: TranscodeAudio::Auto,
        }
    }
}

/// `[[streams]]`: one statically configured stream.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StreamConfig {
    /// The stream's path (`demo`, `live/cam1`).
    pub path: String,
    /// Where its media come from: `file:PATH` (an FLV looped as a live stream). Without a
    /// source the entry configures a path that publishers push to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Pin the stream to this shard; by default streams are spread round-robin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<usize>,
    /// Key a publisher of this path must give (`rtmp://host/app/key?key=...`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publish_key: Option<String>,
    /// `rtsp://` sources: `tcp`, `udp` or `auto` (default: `rtsp.transport`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transport: Option<RtspTransport>,
    /// `rtsp://` sources: pull the camera only while someone watches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_demand: Option<bool>,
    /// With `on_demand`: how long after the last viewer left the camera is released.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_demand_close_after: Option<Millis>,
    /// `rtsp://` sources: user name (overrides one in the URL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// `rtsp://` sources: password (overrides one in the URL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// `rtsp://` sources: which redirects are followed (default: `rtsp.follow_redirects`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub follow_redirects: Option<FollowRedirects>,
}

/// A size in bytes, written as a number or a string with a unit (`"512KiB"`, `"8MiB"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteSize(pub u64);

impl ByteSize {
    /// As `usize`, saturating.
    pub fn as_usize(self) -> usize {
        usize::try_from(self.0).unwrap_or(usize::MAX)
    }
}

/// A duration, written as a string with a unit (`"500ms"`, `"10s"`, `"2m"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Millis(pub Duration);

/// A parsed source URL.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum SourceUrl {
    /// A file looped as a live stream.
    File(PathBuf),
    /// An RTSP camera pulled by the owner shard.
    Rtsp(Box<RtspSource>),
}

/// A configured RTSP pull.
#[derive(Debug, Clone, PartialEq)]
pub struct RtspSource {
    /// The camera's URL (credentials, if any, inside).
    pub url: crate::rtsp::proto::url::RtspUrl,
    /// Transport.
    pub transport: RtspTransport,
    /// Pull only while watched.
    pub on_demand: bool,
    /// Linger after the last viewer of an on-demand stream.
    pub close_after: Duration,
    /// Credentials from the config (else from the URL).
    pub credentials: Option<crate::rtsp::proto::auth::Credentials>,
    /// Which redirects are followed.
    pub follow_redirects: FollowRedirects,
}

impl SourceUrl {
    /// Parses a `source` value. Relative file paths are resolved against `base`.
    pub fn parse(s: &str, base: &Path) -> Result<SourceUrl, String> {
        if let Some(rest) = s.strip_prefix("file:") {
            let rest = rest.strip_prefix("//").unwrap_or(rest);
            if rest.is_empty() {
                return Err("empty file path (expected file:PATH)".into());
            }
            let p = Path::new(rest);
            let p = if p.is_absolute() {
                p.to_path_buf()
            } else {
                base.join(p)
            };
            return Ok(SourceUrl::File(p));
        }
        if s.len() >= 7 && s[..7].eq_ignore_ascii_case("rtsp://") {
            let url = crate::rtsp::proto::url::RtspUrl::parse(s).map_err(|e| e.to_string())?;
            return Ok(SourceUrl::Rtsp(Box::new(RtspSource {
                url,
                transport: RtspTransport::Auto,
                on_demand: false,
                close_after: Duration::from_secs(10),
                credentials: None,
                follow_redirects: FollowRedirects::SameHost,
            })));
        }
        let scheme = s.split(':').next().unwrap_or(s);
        Err(format!(
            "unsupported source '{scheme}' (supported: file:PATH, rtsp://[USER:PASS@]HOST[:PORT]/PATH)"
        ))
    }

    /// Short name of the source kind, as shown in the API.
    pub fn kind(&self) -> &'static str {
        match self {
            SourceUrl::File(_) => "file",
            SourceUrl::Rtsp(_) => "rtsp",
        }
    }
}

/// A validated configuration, with everything derived from it that the runtime needs.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The configuration as written (with defaults filled in).
    pub config: Config,
    /// Number of shards.
    pub shards: usize,
    /// CPU of each shard, when pinned to a fixed map.
    pub cpus: Option<Vec<usize>>,
    /// The `[[streams]]` as started. The running table is `Shared::streams`: the API
    /// and a reload change it.
    pub table: StreamTable,
    /// The file the configuration came from (`--config`), if any: where a reload reads
    /// and API changes are written.
    pub file: Option<PathBuf>,
    /// The access policy of `[auth]`.
    pub auth: crate::auth::Authorizer,
    /// The TLS listeners (HTTPS, RTMPS) that are on, with their certificates.
    pub tls: TlsSettings,
}

/// A configured stream, resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamPlan {
    /// Normalized path.
    pub path: StreamPath,
    /// Parsed source.
    pub source: SourceUrl,
    /// Owner shard.
    pub shard: usize,
}

impl Config {
    /// Parses TOML text. Errors name the key (`runtime.shards: invalid type ...`).
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        let de = toml::Deserializer::new(text);
        serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            let mut msg = inner.message().replace('\n', " ");
            if let Some(span) = inner.span() {
                let line = text
                    .get(..span.start)
                    .map_or(0, |s| s.lines().count().max(1));
                msg = format!("{msg} (line {line})");
            }
            let key = if path == "." {
                "config".to_string()
            } else {
                relabel_stream_key(path, text)
            };
            ConfigError::new(key, msg.trim().to_string())
        })
    }

    /// The effective configuration as TOML.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot print config: {e}\n"))
    }

    /// Validates the configuration and resolves what the runtime needs. `available_cpus`
    /// are the CPU ids this process may run on; `base` is where relative file paths start.
    /// Sections are checked in file order; the first error is returned.
    pub fn validate(self, available_cpus: &[usize], base: &Path) -> Result<Settings, ConfigError> {
        let shards = self.validate_runtime(available_cpus)?;
        self.validate_http()?;
        self.validate_webrtc(shards)?;
        self.validate_media()?;
        self.validate_rtmp()?;
        self.validate_rtsp()?;
        let auth = self.auth.validate(base)?;
        let tls = self.validate_tls(base)?;
        let table = self.stream_table(shards, base)?;
        let cpus = (!self.runtime.cpus.is_empty()).then(|| self.runtime.cpus.clone());
        Ok(Settings {
            config: self,
            shards,
            cpus,
            table,
            file: None,
            auth,
            tls,
        })
    }

    /// `[runtime]`: the CPU map and limits; returns the number of shards.
    fn validate_runtime(&self, available_cpus: &[usize]) -> Result<usize, ConfigError> {
        let rt = &self.runtime;
        if available_cpus.is_empty() {
            return Err(ConfigError::new("runtime.cpus", "no usable CPU found"));
        }
        for (i, cpu) in rt.cpus.iter().enumerate() {
            if !available_cpus.contains(cpu) {
                return Err(ConfigError::new(
                    format!("runtime.cpus[{i}]"),
                    format!("CPU {cpu} is not available (available: {available_cpus:?})"),
                ));
            }
            if rt.cpus[..i].contains(cpu) {
                return Err(ConfigError::new(
                    format!("runtime.cpus[{i}]"),
                    format!("CPU {cpu} is listed twice"),
                ));
            }
        }
        let shards = match rt.shards {
            Shards::Auto if rt.cpus.is_empty() => available_cpus.len(),
            Shards::Auto => rt.cpus.len(),
            Shards::Count(0) => {
                return Err(ConfigError::new("runtime.shards", "must be at least 1"));
            }
            Shards::Count(n) if n > 256 => {
                return Err(ConfigError::new("runtime.shards", "at most 256 shards"));
            }
            Shards::Count(n) => {
                if !rt.cpus.is_empty() && rt.cpus.len() != n {
                    return Err(ConfigError::new(
                        "runtime.cpus",
                        format!(
                            "lists {} CPUs for {n} shards (give one CPU per shard)",
                            rt.cpus.len()
                        ),
                    ));
                }
                n
            }
        };
        if rt.io_memory.0 < 64 * 1024 || rt.io_memory.0 > 1 << 30 {
            return Err(ConfigError::new(
                "runtime.io_memory",
                "must be between 64KiB and 1GiB",
            ));
        }
        if rt.mesh_capacity < 16 || rt.mesh_capacity > 1 << 20 {
            return Err(ConfigError::new(
                "runtime.mesh_capacity",
                "must be between 16 and 1048576",
            ));
        }
        Ok(shards)
    }

    /// `[http]`: limits and time-outs.
    fn validate_http(&self) -> Result<(), ConfigError> {
        let http = &self.http;
        if http.max_connections == 0 {
            return Err(ConfigError::new(
                "http.max_connections",
                "must be at least 1",
            ));
        }
        per_ip_limit("http.max_connections_per_ip", http.max_connections_per_ip)?;
        if http.max_header_bytes.0 < 1024 {
            return Err(ConfigError::new(
                "http.max_header_bytes",
                "must be at least 1KiB",
            ));
        }
        if http.header_timeout.0.is_zero() {
            return Err(ConfigError::new(
                "http.header_timeout",
                "must be more than 0",
            ));
        }
        if http.idle_timeout.0.is_zero() {
            return Err(ConfigError::new("http.idle_timeout", "must be more than 0"));
        }
        for (i, o) in http.allow_origins.iter().enumerate() {
            if let Err(why) = check_origin(o) {
                return Err(ConfigError::new(format!("http.allow_origins[{i}]"), why));
            }
        }
        Ok(())
    }

    /// `[webrtc]`: session limits and the UDP port range of `shards` shards.
    fn validate_webrtc(&self, shards: usize) -> Result<(), ConfigError> {
        let w = &self.webrtc;
        if w.max_sessions == 0 {
            return Err(ConfigError::new(
                "webrtc.max_sessions",
                "must be at least 1",
            ));
        }
        if w.gop_resend_budget.as_usize() < 64 * 1024 {
            return Err(ConfigError::new(
                "webrtc.gop_resend_budget",
                "must be at least 64KiB (a keyframe must fit)",
            ));
        }
        if w.keyframe_interval.0 < Duration::from_millis(100) {
            return Err(ConfigError::new(
                "webrtc.keyframe_interval",
                "must be at least 100ms (each answer re-sends a whole GOP)",
            ));
        }
        if !(16..=4096).contains(&w.nack_packets) {
            return Err(ConfigError::new(
                "webrtc.nack_packets",
                "must be between 16 and 4096",
            ));
        }
        if w.whip_max_bitrate != 0 && w.whip_max_bitrate < 100_000 {
            return Err(ConfigError::new(
                "webrtc.whip_max_bitrate",
                "must be 0 (tell publishers nothing) or at least 100000 bit/s",
            ));
        }
        if w.session_timeout.0 < Duration::from_secs(1) {
            return Err(ConfigError::new(
                "webrtc.session_timeout",
                "must be at least 1s (browsers send consent checks every ~5s)",
            ));
        }
        if w.udp_port != 0 && usize::from(w.udp_port) + shards - 1 > 65535 {
            return Err(ConfigError::new(
                "webrtc.udp_port",
                format!("udp_port + shards - 1 exceeds 65535 with {shards} shards"),
            ));
        }
        Ok(())
    }

    /// `[media]`: queue bounds.
    fn validate_media(&self) -> Result<(), ConfigError> {
        let m = &self.media;
        if m.gop_max_frames == 0 || m.sink_max_frames == 0 {
            return Err(ConfigError::new(
                if m.gop_max_frames == 0 {
                    "media.gop_max_frames"
                } else {
                    "media.sink_max_frames"
                },
                "must be at least 1",
            ));
        }
        Ok(())
    }

    /// Settings that are valid but probably not what the operator meant, one sentence
    /// each, for the log at start.
    pub fn warnings(&self) -> Vec<String> {
        let m = &self.media;
        let mut out = Vec::new();
        if m.sink_max_frames < m.gop_max_frames || m.sink_max_bytes.0 < m.gop_max_bytes.0 {
            out.push(format!(
                "media.sink_max_frames/sink_max_bytes ({} frames, {} bytes) are below \
                 media.gop_max_frames/gop_max_bytes ({} frames, {} bytes): a viewer joining a \
                 long GOP has it cut and waits for the next keyframe; raise the sink bounds",
                m.sink_max_frames, m.sink_max_bytes.0, m.gop_max_frames, m.gop_max_bytes.0
            ));
        }
        out
    }

    /// `[rtmp]`: chunk and message sizes, limits, time-outs, the global publish key.
    fn validate_rtmp(&self) -> Result<(), ConfigError> {
        let r = &self.rtmp;
        if !(128..=65536).contains(&r.chunk_size) {
            return Err(ConfigError::new(
                "rtmp.chunk_size",
                "must be between 128 and 65536",
            ));
        }
        if r.max_message_bytes.0 < 64 * 1024 || r.max_message_bytes.0 > 0xFF_FFFF {
            return Err(ConfigError::new(
                "rtmp.max_message_bytes",
                "must be between 64KiB and 16MiB (the RTMP message length field is 24 bits)",
            ));
        }
        if r.max_connections == 0 {
            return Err(ConfigError::new(
                "rtmp.max_connections",
                "must be at least 1",
            ));
        }
        per_ip_limit("rtmp.max_connections_per_ip", r.max_connections_per_ip)?;
        nonzero(&[
            ("rtmp.handshake_timeout", r.handshake_timeout),
            ("rtmp.idle_timeout", r.idle_timeout),
            ("rtmp.send_timeout", r.send_timeout),
        ])?;
        for (key, merge) in [
            ("rtmp.merge_write", r.merge_write),
            ("rtmp.merge_write_max", r.merge_write_max),
        ] {
            if merge.0 > Duration::from_secs(1) {
                return Err(ConfigError::new(
                    key,
                    "at most 1s (it adds up to this much latency)",
                ));
            }
        }
        if r.publish_key.as_deref() == Some("") {
            return Err(ConfigError::new(
                "rtmp.publish_key",
                "must not be empty (remove it to allow any publisher)",
            ));
        }
        Ok(())
    }

    /// `[rtsp]`: the UDP port range, time-outs and the retry backoff.
    fn validate_rtsp(&self) -> Result<(), ConfigError> {
        let rs = &self.rtsp;
        if rs.udp_port_min < 1024 || rs.udp_port_max < rs.udp_port_min.saturating_add(1) {
            return Err(ConfigError::new(
                "rtsp.udp_port_min",
                "udp_port_min..=udp_port_max must be a range of at least 2 ports above 1023",
            ));
        }
        nonzero(&[
            ("rtsp.udp_timeout", rs.udp_timeout),
            ("rtsp.connect_timeout", rs.connect_timeout),
            ("rtsp.response_timeout", rs.response_timeout),
            ("rtsp.read_timeout", rs.read_timeout),
            ("rtsp.retry_min", rs.retry_min),
            ("rtsp.on_demand_start_timeout", rs.on_demand_start_timeout),
        ])?;
        if rs.retry_max.0 < rs.retry_min.0 {
            return Err(ConfigError::new(
                "rtsp.retry_max",
                "must be at least rtsp.retry_min",
            ));
        }
        Ok(())
    }

    /// `[[streams]]` checked and resolved for `shards` shards (a reload checks a new
    /// file's streams against the running shards).
    pub fn stream_table(&self, shards: usize, base: &Path) -> Result<StreamTable, ConfigError> {
        let (plans, publish_keys) = self.validate_streams(shards, base)?;
        Ok(StreamTable {
            entries: self.streams.clone(),
            plans,
            publish_keys,
        })
    }

    /// `[[streams]]`: paths (normalised, unique), sources and owner shards; paths
    /// without a source give their publish keys.
    fn validate_streams(
        &self,
        shards: usize,
        base: &Path,
    ) -> Result<(Vec<StreamPlan>, HashMap<StreamPath, String>), ConfigError> {
        let mut streams: Vec<StreamPlan> = Vec::new();
        let mut publish_keys = HashMap::new();
        let mut seen: Vec<StreamPath> = Vec::new();
        for (i, s) in self.streams.iter().enumerate() {
            let at = stream_label(i, s);
            let path = StreamPath::parse(&s.path)
                .map_err(|e| ConfigError::new(format!("streams[{at}].path"), e.to_string()))?;
            for (j, other) in seen.iter().enumerate() {
                let why = match path.clash(other) {
                    None => continue,
                    Some(Clash::Same) => format!("duplicate stream path '{path}'"),
                    Some(_) => format!(
                        "'{path}' and streams[{j}] '{other}' share an RTMP name \
                         (players of 'APP/NAME' get 'NAME'); rename one"
                    ),
                };
                return Err(ConfigError::new(format!("streams[{at}].path"), why));
            }
            seen.push(path.clone());
            let Some(source) = &s.source else {
                match &s.publish_key {
                    Some(k) if !k.is_empty() => {
                        publish_keys.insert(path, k.clone());
                        continue;
                    }
                    _ => {
                        return Err(ConfigError::new(
                            format!("streams[{at}]"),
                            "needs a source, or a publish_key for a path publishers push to",
                        ));
                    }
                }
            };
            if s.publish_key.is_some() {
                return Err(ConfigError::new(
                    format!("streams[{at}].publish_key"),
                    "a stream with a source cannot be published to; remove one of the two",
                ));
            }
            let source = self.stream_source(&at, s, source, base)?;
            let shard = stream_shard(i, &at, s, shards)?;
            streams.push(StreamPlan {
                path,
                source,
                shard,
            });
        }
        Ok((streams, publish_keys))
    }

    /// The parsed `source` of the entry labelled `at`, with its per-source options applied.
    fn stream_source(
        &self,
        at: &str,
        s: &StreamConfig,
        source: &str,
        base: &Path,
    ) -> Result<SourceUrl, ConfigError> {
        let mut source = SourceUrl::parse(source, base)
            .map_err(|e| ConfigError::new(format!("streams[{at}].source"), e))?;
        match &mut source {
            SourceUrl::File(p) => {
                if !p.is_file() {
                    return Err(ConfigError::new(
                        format!("streams[{at}].source"),
                        format!("file {} does not exist or is not a file", p.display()),
                    ));
                }
                for (key, set) in [
                    ("transport", s.transport.is_some()),
                    ("on_demand", s.on_demand.is_some()),
                    ("on_demand_close_after", s.on_demand_close_after.is_some()),
                    ("user", s.user.is_some()),
                    ("password", s.password.is_some()),
                    ("follow_redirects", s.follow_redirects.is_some()),
                ] {
                    if set {
                        return Err(ConfigError::new(
                            format!("streams[{at}].{key}"),
                            "applies to rtsp:// sources only",
                        ));
                    }
                }
            }
            SourceUrl::Rtsp(r) => rtsp_options(at, s, r, &self.rtsp)?,
        }
        Ok(source)
    }
}

/// An `http.allow_origins` entry: `"*"`, or a web origin as browsers send it in `Origin`
/// (`http://host` or `https://host:port`: a scheme, a host, maybe a port, no path).
fn check_origin(o: &str) -> Result<(), String> {
    if o == "*" {
        return Ok(());
    }
    let lower = o.to_ascii_lowercase();
    let Some(rest) = lower
        .strip_prefix("http://")
        .or_else(|| lower.strip_prefix("https://"))
    else {
        return Err(format!(
            "'{o}' is not an origin: expected \"*\" or http(s)://host[:port]"
        ));
    };
    // `[v6]:port` or `host:port`.
    let (host, port) = match rest.strip_prefix('[').and_then(|r| r.split_once(']')) {
        Some((v6, after)) => (
            v6,
            after
                .strip_prefix(':')
                .or(Some(after).filter(|a| !a.is_empty())),
        ),
        None => match rest.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (rest, None),
        },
    };
    let host_ok = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':'));
    let port_ok = port.is_none_or(|p| p.parse::<u16>().is_ok_and(|n| n > 0));
    if !host_ok || !port_ok {
        return Err(format!(
            "'{o}' is not an origin: expected http(s)://host[:port], without a path"
        ));
    }
    Ok(())
}

/// `streams[3].x` as `streams[live/cam7].x` when entry 3 of `text` has a valid path (see
/// [`stream_label`]).
fn relabel_stream_key(key: String, text: &str) -> String {
    let Some((index, rest)) = key
        .strip_prefix("streams[")
        .and_then(|r| r.split_once(']'))
        .and_then(|(n, rest)| Some((n.parse::<usize>().ok()?, rest)))
    else {
        return key;
    };
    let path = text
        .parse::<toml::Table>()
        .ok()
        .and_then(|t| {
            Some(
                t.get("streams")?
                    .get(index)?
                    .get("path")?
                    .as_str()?
                    .to_string(),
            )
        })
        .and_then(|p| StreamPath::parse(&p).ok());
    match path {
        Some(p) => format!("streams[{p}]{rest}"),
        None => key,
    }
}

/// How errors name a `[[streams]]` entry: by its path (`streams[live/cam7]`) when that
/// is a valid path, else by its index (`streams[3]`).
pub fn stream_label(i: usize, s: &StreamConfig) -> String {
    StreamPath::parse(&s.path).map_or_else(|_| i.to_string(), |p| p.as_str().to_string())
}

/// Errors on the first zero duration of `(key, value)`.
fn nonzero(durations: &[(&str, Millis)]) -> Result<(), ConfigError> {
    match durations.iter().find(|(_, d)| d.0.is_zero()) {
        Some((key, _)) => Err(ConfigError::new(*key, "must be more than 0")),
        None => Ok(()),
    }
}

/// Applies the RTSP options (transport, on-demand, credentials, redirects) of the entry
/// labelled `at` over the `[rtsp]` defaults to `r`.
fn rtsp_options(
    at: &str,
    s: &StreamConfig,
    r: &mut RtspSource,
    defaults: &RtspConfig,
) -> Result<(), ConfigError> {
    r.transport = s.transport.unwrap_or(defaults.transport);
    r.follow_redirects = s.follow_redirects.unwrap_or(defaults.follow_redirects);
    r.on_demand = s.on_demand.unwrap_or(false);
    if let Some(d) = s.on_demand_close_after {
        if !r.on_demand {
            return Err(ConfigError::new(
                format!("streams[{at}].on_demand_close_after"),
                "needs on_demand = true",
            ));
        }
        r.close_after = d.0;
    }
    match (&s.user, &s.password) {
        (Some(user), password) => {
            r.credentials = Some(crate::rtsp::proto::auth::Credentials {
                user: user.clone(),
                password: password.clone().unwrap_or_default(),
            });
        }
        (None, Some(_)) => {
            return Err(ConfigError::new(
                format!("streams[{at}].password"),
                "needs user as well",
            ));
        }
        (None, None) => {}
    }
    Ok(())
}

/// The owner shard of `streams[i]` (labelled `at`): its `shard`, else round-robin.
fn stream_shard(i: usize, at: &str, s: &StreamConfig, shards: usize) -> Result<usize, ConfigError> {
    match s.shard {
        Some(n) if n >= shards => Err(ConfigError::new(
            format!("streams[{at}].shard"),
            format!(
                "shard {n} does not exist (there are {shards}: 0..{})",
                shards - 1
            ),
        )),
        Some(n) => Ok(n),
        None => Ok(i % shards),
    }
}

impl<'de> Deserialize<'de> for Shards {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Shards;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a number of shards or \"auto\"")
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Shards, E> {
                usize::try_from(v)
                    .map(Shards::Count)
                    .map_err(|_| E::custom("must be a positive number or \"auto\""))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Shards, E> {
                usize::try_from(v)
                    .map(Shards::Count)
                    .map_err(|_| E::custom("too large"))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Shards, E> {
                if v == "auto" {
                    Ok(Shards::Auto)
                } else {
                    Err(E::custom(format!(
                        "expected a number or \"auto\", found \"{v}\""
                    )))
                }
            }
        }
        d.deserialize_any(V)
    }
}

impl Serialize for Shards {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Shards::Auto => s.serialize_str("auto"),
            Shards::Count(n) => s.serialize_u64(*n as u64),
        }
    }
}

/// A per-address connection limit: at least 1, at most 1,000,000.
fn per_ip_limit(key: &str, v: usize) -> Result<(), ConfigError> {
    if v > 1_000_000 {
        return Err(ConfigError::new(
            key,
            "must be at most 1000000 (0 turns the limit off)",
        ));
    }
    Ok(())
}

/// Parses `"16KiB"`, `"8MiB"`, `"1GiB"`, `"512"` (bytes), `"64KB"` (= KiB).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("'{s}' is not a size (write e.g. \"512KiB\" or \"8MiB\")"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        other => {
            return Err(format!(
                "unknown size unit '{other}' (use B, KiB, MiB or GiB)"
            ));
        }
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("'{s}' is too large"))
}

/// Parses `"250ms"`, `"10s"`, `"2m"`, `"1h"`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("'{s}' is not a duration (write e.g. \"500ms\" or \"10s\")"))?;
    let d = match unit.trim() {
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n.saturating_mul(60)),
        "h" => Duration::from_secs(n.saturating_mul(3600)),
        "" => return Err(format!("'{s}' needs a unit (ms, s, m or h)")),
        other => {
            return Err(format!(
                "unknown duration unit '{other}' (use ms, s, m or h)"
            ));
        }
    };
    Ok(d)
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = ByteSize;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a size such as \"512KiB\" or a number of bytes")
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<ByteSize, E> {
                u64::try_from(v)
                    .map(ByteSize)
                    .map_err(|_| E::custom("must not be negative"))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<ByteSize, E> {
                Ok(ByteSize(v))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<ByteSize, E> {
                parse_size(v).map(ByteSize).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

impl Serialize for ByteSize {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let n = self.0;
        let text = if n >= 1 << 30 && n.is_multiple_of(1 << 30) {
            format!("{}GiB", n >> 30)
        } else if n >= 1 << 20 && n.is_multiple_of(1 << 20) {
            format!("{}MiB", n >> 20)
        } else if n >= 1 << 10 && n.is_multiple_of(1 << 10) {
            format!("{}KiB", n >> 10)
        } else {
            format!("{n}B")
        };
        s.serialize_str(&text)
    }
}

impl<'de> Deserialize<'de> for Millis {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        parse_duration(&s)
            .map(Millis)
            .map_err(serde::de::Error::custom)
    }
}

impl Serialize for Millis {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let ms = self.0.as_millis();
        let text = if ms.is_multiple_of(1000) {
            format!("{}s", ms / 1000)
        } else {
            format!("{ms}ms")
        };
        s.serialize_str(&text)
    }
}

mod auth;
mod edit;
mod streams;
#[cfg(test)]
mod tests;
mod tls;

pub use edit::{Edit, edit_streams, write_atomic};
pub use streams::{StreamChanges, StreamTable, entry_from_json, merge_patch};

use tls::optional_addr;
pub use tls::{TlsListener, TlsSettings};
