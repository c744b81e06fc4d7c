//! AAC → Opus transcoding core: decodes the AAC access units of one track, resamples them
//! to 48 kHz and encodes 20 ms Opus frames, so that browsers (which cannot play AAC over
//! WebRTC) hear the stream. Pure and synchronous: no I/O, no clock, no shared state.
//!
//! The caller feeds AAC frames with [`Transcoder::handle_frame`] and drains Opus frames with
//! [`Transcoder::poll_frame`] until it returns `None`. There are no timers: output only
//! depends on input. [`Transcoder::flush`] drains the delay lines at the end of a stream.
//!
//! Libraries (no codec is written here):
//! - AAC-LC decoding: `symphonia-codec-aac` (pure Rust, MPL-2.0, part of the maintained
//!   Symphonia project; safe code, so a hostile access unit cannot corrupt memory).
//! - Resampling: `rubato`'s synchronous FFT resampler (fixed ratio, the library's
//!   recommendation for that case, no allocation while processing).
//! - Opus encoding: the `opus` crate, bindings to the reference libopus (built from the
//!   bundled source by `opusic-sys`, so every machine encodes with the same libopus).
//!
//! # Timing
//! Output timestamps are derived from the input ones, never from a sample count alone:
//! a *segment* starts at the pts of its first AAC frame (its *anchor*), and the k-th Opus
//! frame of the segment gets `anchor·48000/clock + 960·k − delay`, where `delay` is the sum
//! of the latencies of the pipeline, each in 48 kHz samples:
//! - the AAC decoder: 0. An access unit with pts `p` decodes to the samples `p..p+1024`
//!   (the encoder's priming is already inside the stream and its pts);
//! - the resampler: [`rubato::Resampler::output_delay`], half the FFT block: 160 samples
//!   (3.3 ms) for 44.1 kHz, 0 at 48 kHz where no resampler runs;
//! - the Opus encoder: its look-ahead (`OPUS_GET_LOOKAHEAD`), 312 samples (6.5 ms) with
//!   the `audio` application at 48 kHz. WebRTC receivers do not skip a pre-roll, so the
//!   look-ahead is taken off the pts instead.
//!
//! A frame whose pts is more than half an AAC frame away from where the previous frames
//! end is a discontinuity: the pending samples (less than one Opus frame) are dropped, the
//! decoder, resampler and encoder are reset and a new segment starts at that frame. Output
//! pts therefore never go backwards unless the input's do.
//!
//! # Errors and bounds
//! A frame that fails to decode is replaced by silence of the same length (so the timing of
//! what follows is kept) and counted in [`TranscodeStats::decode_errors`]; an Opus frame that
//! fails to encode is dropped and counted in [`TranscodeStats::encode_errors`]. Nothing a
//! peer sends can make the transcoder panic. The PCM waiting for the encoder never exceeds
//! one Opus frame plus one resampler output chunk ([`Transcoder::pending_frames`]).
//!
//! Only AAC-LC with one or two channels and a standard sampling rate is accepted; HE-AAC
//! (SBR, object type 5), HE-AACv2 (PS, 29), other object types, 960-sample frames and more
//! than two channels are refused by [`Transcoder::new`] with an error naming them.

use super::aac::{AacError, AudioSpecificConfig};
use super::{Codec, Frame, MediaKind, Track, TrackId};
use bytes::Bytes;
use rubato::Resampler as _;
use std::collections::VecDeque;
use symphonia_codec_aac::AacDecoder;
use symphonia_core::codecs::audio::well_known::CODEC_ID_AAC;
use symphonia_core::codecs::audio::{AudioCodecParameters, AudioDecoder, AudioDecoderOptions};
use symphonia_core::packet::PacketRef;
use symphonia_core::units::{Duration, Timestamp};

#[cfg(test)]
mod tests;

/// Clock rate of the Opus track (RFC 7587: always 48 kHz).
pub const OPUS_CLOCK_RATE: u32 = 48_000;
/// Samples per channel in one Opus frame: 20 ms at 48 kHz.
pub const OPUS_FRAME_SAMPLES: usize = 960;
/// Samples per channel in one AAC-LC access unit.
pub const AAC_FRAME_SAMPLES: usize = 1024;
/// Default Opus bit rate per channel, in bit/s.
pub const DEFAULT_BITRATE_PER_CHANNEL: u32 = 64_000;
/// Accepted Opus bit rates per channel, in bit/s.
pub const BITRATE_PER_CHANNEL_RANGE: std::ops::RangeInclusive<u32> = 6_000..=256_000;
/// Largest Opus packet we let libopus write (RFC 6716 §3.4 recommends 1275 per frame).
const MAX_OPUS_PACKET: usize = 1500;
/// AAC sampling rates (ISO/IEC 14496-3 table 1.18) the transcoder accepts: other
/// (explicitly coded) rates would make the resampler's FFT sizes unbounded.
const AAC_RATES: [u32; 13] = [
    96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350,
];

/// Settings of a transcoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TranscodeConfig {
    /// Opus bit rate per channel, in bit/s (default 64 000; see
    /// [`BITRATE_PER_CHANNEL_RANGE`]).
    pub bitrate_per_channel: u32,
}

impl Default for TranscodeConfig {
    fn default() -> Self {
        TranscodeConfig {
            bitrate_per_channel: DEFAULT_BITRATE_PER_CHANNEL,
        }
    }
}

/// Why a transcoder could not be built for a track.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TranscodeError {
    /// The track is not AAC.
    #[error("track codec is {0}, not aac")]
    NotAac(&'static str),
    /// The track has no AudioSpecificConfig.
    #[error("the AAC track has no AudioSpecificConfig")]
    MissingConfig,
    /// The AudioSpecificConfig does not parse.
    #[error("invalid AudioSpecificConfig: {0}")]
    Config(#[from] AacError),
    /// An AAC object type other than LC (HE-AAC, HE-AACv2, ...).
    #[error(
        "unsupported AAC object type {object_type} ({name}): only AAC-LC (2) can be transcoded"
    )]
    UnsupportedObjectType {
        /// Audio object type from the configuration.
        object_type: u8,
        /// Its common name (`HE-AAC`, `HE-AACv2`, ...).
        name: &'static str,
    },
    /// A channel count other than one or two (0: defined by a program config element).
    #[error("unsupported AAC channel count {0}: only mono and stereo can be transcoded")]
    UnsupportedChannels(u8),
    /// A sampling rate outside the AAC table.
    #[error("unsupported AAC sampling rate {0} Hz")]
    UnsupportedSampleRate(u32),
    /// A track clock of zero.
    #[error("AAC track clock rate is zero")]
    ZeroClockRate,
    /// An Opus bit rate out of [`BITRATE_PER_CHANNEL_RANGE`].
    #[error("Opus bit rate {0} bit/s per channel is out of 6000..=256000")]
    InvalidBitrate(u32),
    /// The AAC decoder refused the configuration (e.g. 960-sample frames).
    #[error("AAC decoder: {0}")]
    Decoder(String),
    /// The resampler could not be built.
    #[error("resampler: {0}")]
    Resampler(String),
    /// libopus refused the encoder settings.
    #[error("Opus encoder: {0}")]
    Encoder(#[from] opus::Error),
}

/// Counters of one transcoder, read by the caller (metrics, logs).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TranscodeStats {
    /// AAC frames handled.
    pub frames_in: u64,
    /// Opus frames produced.
    pub frames_out: u64,
    /// AAC frames that failed to decode (replaced by silence).
    pub decode_errors: u64,
    /// Opus frames that failed to encode (dropped).
    pub encode_errors: u64,
    /// Pts jumps that restarted the pipeline.
    pub discontinuities: u64,
}

/// The stretch of input since the last (re)start: output pts are counted from its anchor.
#[derive(Debug, Clone, Copy)]
struct Segment {
    /// Pts of the segment's first AAC frame, in the AAC track clock.
    anchor_in: i64,
    /// The same instant in the Opus clock.
    anchor_out: i64,
    /// AAC samples (per channel) decoded in this segment.
    decoded: u64,
    /// 48 kHz samples (per channel) handed to the encoder in this segment.
    encoded: u64,
}

/// The 48 kHz conversion with its reusable buffers.
struct Resample {
    fft: rubato::Fft<f32>,
    out: Vec<f32>,
}

/// AAC → Opus transcoder for one track. See the module documentation.
pub struct Transcoder {
    out_track: TrackId,
    clock_rate: u32,
    sample_rate: u32,
    channels: usize,
    decoder: AacDecoder,
    resampler: Option<Resample>,
    encoder: opus::Encoder,
    /// Compensated latency of decoder, resampler and encoder, in 48 kHz samples.
    delay: u32,
    /// Decoded interleaved samples of the current AAC frame.
    decoded: Vec<f32>,
    /// Interleaved 48 kHz samples waiting for a full Opus frame.
    pending: Vec<f32>,
    packet: Vec<u8>,
    segment: Option<Segment>,
    output: VecDeque<Frame>,
    stats: TranscodeStats,
}

impl std::fmt::Debug for Transcoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transcoder")
            .field("sample_rate", &self.sample_rate)
            .field("channels", &self.channels)
            .field("delay", &self.delay)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

/// `value` ticks of a `from` Hz clock in a `to` Hz clock, rounded to nearest, saturating.
fn rescale(value: i64, from: u32, to: u32) -> i64 {
    let from = i128::from(from.max(1));
    let scaled = i128::from(value) * i128::from(to);
    let half = if scaled >= 0 { from / 2 } else { -(from / 2) };
    let q = (scaled + half) / from;
    q.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
}

/// Checks the AudioSpecificConfig against what the transcoder handles.
fn check_config(asc: &AudioSpecificConfig) -> Result<(), TranscodeError> {
    if asc.object_type != 2 {
        return Err(TranscodeError::UnsupportedObjectType {
            object_type: asc.object_type,
            name: asc.object_type_name(),
        });
    }
    if !(1..=2).contains(&asc.channels) {
        return Err(TranscodeError::UnsupportedChannels(asc.channels));
    }
    if !AAC_RATES.contains(&asc.sample_rate) {
        return Err(TranscodeError::UnsupportedSampleRate(asc.sample_rate));
    }
    Ok(())
}

impl Transcoder {
    /// A transcoder for the AAC track `aac` (its clock and AudioSpecificConfig) whose Opus
    /// frames belong to track `out`.
    pub fn new(
        aac: &Track,
        out: TrackId,
        config: &TranscodeConfig,
    ) -> Result<Self, TranscodeError> {
        if aac.codec != Codec::Aac {
            return Err(TranscodeError::NotAac(aac.codec.name()));
        }
        if aac.clock_rate == 0 {
            return Err(TranscodeError::ZeroClockRate);
        }
        if !BITRATE_PER_CHANNEL_RANGE.contains(&config.bitrate_per_channel) {
            return Err(TranscodeError::InvalidBitrate(config.bitrate_per_channel));
        }
        let raw = aac
            .params
            .audio_config
            .as_ref()
            .ok_or(TranscodeError::MissingConfig)?;
        let asc = AudioSpecificConfig::parse(raw)?;
        check_config(&asc)?;
        let channels = usize::from(asc.channels);

        let mut params = AudioCodecParameters::new();
        params
            .for_codec(CODEC_ID_AAC)
            .with_extra_data(raw.to_vec().into_boxed_slice());
        let decoder = AacDecoder::try_new(&params, &AudioDecoderOptions::default())
            .map_err(|e| TranscodeError::Decoder(e.to_string()))?;

        let resampler = if asc.sample_rate == OPUS_CLOCK_RATE {
            None
        } else {
            let fft = rubato::Fft::<f32>::new(
                asc.sample_rate as usize,
                OPUS_CLOCK_RATE as usize,
                AAC_FRAME_SAMPLES,
                channels,
                rubato::FixedSync::Input,
            )
            .map_err(|e| TranscodeError::Resampler(e.to_string()))?;
            let out = vec![0.0; fft.output_frames_max() * channels];
            Some(Resample { fft, out })
        };

        let opus_channels = if channels == 1 {
            opus::Channels::Mono
        } else {
            opus::Channels::Stereo
        };
        let mut encoder =
            opus::Encoder::new(OPUS_CLOCK_RATE, opus_channels, opus::Application::Audio)?;
        let bitrate = config.bitrate_per_channel.saturating_mul(channels as u32);
        encoder.set_bitrate(opus::Bitrate::Bits(bitrate as i32))?;
        let lookahead = u32::try_from(encoder.get_lookahead()?).unwrap_or(0);
        let resampler_delay = resampler
            .as_ref()
            .map_or(0, |r| r.fft.output_delay() as u32);

        Ok(Transcoder {
            out_track: out,
            clock_rate: aac.clock_rate,
            sample_rate: asc.sample_rate,
            channels,
            decoder,
            resampler,
            encoder,
            delay: resampler_delay + lookahead,
            decoded: Vec::with_capacity(AAC_FRAME_SAMPLES * channels),
            pending: Vec::new(),
            packet: vec![0; MAX_OPUS_PACKET],
            segment: None,
            output: VecDeque::new(),
            stats: TranscodeStats::default(),
        })
    }

    /// The Opus track this transcoder produces (clock 48 kHz, the source's channels).
    pub fn output_track(&self) -> Track {
        let mut track = Track::new(self.out_track, Codec::Opus, OPUS_CLOCK_RATE);
        track.channels = Some(self.channels as u8);
        track
    }

    /// Latency taken off the output pts (decoder + resampler + encoder), in 48 kHz ticks.
    pub fn delay(&self) -> u32 {
        self.delay
    }

    /// The counters so far.
    pub fn stats(&self) -> TranscodeStats {
        self.stats
    }

    /// Samples per channel at 48 kHz waiting for the encoder.
    pub fn pending_frames(&self) -> usize {
        self.pending.len() / self.channels
    }

    /// Most samples per channel that can wait for the encoder: one Opus frame plus one
    /// resampler output chunk.
    pub fn max_pending_frames(&self) -> usize {
        OPUS_FRAME_SAMPLES
            + self
                .resampler
                .as_ref()
                .map_or(AAC_FRAME_SAMPLES, |r| r.fft.output_frames_max())
    }

    /// Feeds one AAC access unit (raw, no ADTS header; pts in the AAC track clock).
    pub fn handle_frame(&mut self, frame: &Frame) {
        self.stats.frames_in += 1;
        if let Some(seg) = self.segment {
            let expected = seg.anchor_in.saturating_add(rescale(
                seg.decoded as i64,
                self.sample_rate,
                self.clock_rate,
            ));
            let tolerance = rescale(
                AAC_FRAME_SAMPLES as i64 / 2,
                self.sample_rate,
                self.clock_rate,
            );
            if frame.pts.abs_diff(expected) > tolerance.unsigned_abs() {
                self.stats.discontinuities += 1;
                self.reset();
            }
        }
        let seg = self.segment.get_or_insert(Segment {
            anchor_in: frame.pts,
            anchor_out: rescale(frame.pts, self.clock_rate, OPUS_CLOCK_RATE),
            decoded: 0,
            encoded: 0,
        });
        seg.decoded += AAC_FRAME_SAMPLES as u64;
        self.decode(&frame.data);
        self.resample_and_encode(u64::MAX);
    }

    /// The next Opus frame, if any.
    pub fn poll_frame(&mut self) -> Option<Frame> {
        self.output.pop_front()
    }

    /// Ends the current segment: pushes silence through the resampler and the encoder so
    /// that every sample fed so far comes out, then resets. Call at the end of a stream.
    pub fn flush(&mut self) {
        let Some(seg) = self.segment else {
            return;
        };
        // The last 48 kHz sample of content leaves the encoder `delay` samples late.
        let content = rescale(seg.decoded as i64, self.sample_rate, OPUS_CLOCK_RATE);
        let end = u64::try_from(content).unwrap_or(0) + u64::from(self.delay);
        // Each silent AAC frame moves at least one resampler chunk out; bounded by the
        // delay, which is under one AAC frame.
        for _ in 0..4 {
            let have = self.segment.map_or(0, |s| s.encoded) + self.pending_frames() as u64;
            if have >= end {
                break;
            }
            self.decoded.clear();
            self.decoded.resize(AAC_FRAME_SAMPLES * self.channels, 0.0);
            self.resample_and_encode(end);
        }
        let have = self.segment.map_or(0, |s| s.encoded);
        if have < end && !self.pending.is_empty() {
            let frames = self.pending_frames().div_ceil(OPUS_FRAME_SAMPLES) * OPUS_FRAME_SAMPLES;
            self.pending.resize(frames * self.channels, 0.0);
            self.encode_pending(end);
        }
        self.reset();
    }

    /// Drops all state: the next frame starts a new segment.
    pub fn reset(&mut self) {
        self.segment = None;
        self.pending.clear();
        self.decoder.reset();
        if let Some(r) = self.resampler.as_mut() {
            r.fft.reset();
        }
        // Only fails on a destroyed encoder state, which `opus::Encoder` cannot hold.
        let _ = self.encoder.reset_state();
    }

    /// Decodes one access unit into `self.decoded` (silence on error).
    fn decode(&mut self, data: &[u8]) {
        let len = AAC_FRAME_SAMPLES * self.channels;
        let packet = PacketRef::new(
            0,
            Timestamp::new(0),
            Duration::new(AAC_FRAME_SAMPLES as u64),
            data,
        );
        // An empty payload is not an access unit (even a silent one holds an END element);
        // the decoder would return a buffer it did not write.
        let decoded = (!data.is_empty()).then(|| self.decoder.decode_ref(&packet));
        let ok = match decoded {
            Some(Ok(buf))
                if buf.frames() == AAC_FRAME_SAMPLES && buf.num_planes() == self.channels =>
            {
                buf.copy_to_vec_interleaved(&mut self.decoded);
                self.decoded.len() == len
            }
            _ => false,
        };
        if !ok {
            self.stats.decode_errors += 1;
            self.decoded.clear();
            self.decoded.resize(len, 0.0);
        }
    }

    /// Moves `self.decoded` into the pending 48 kHz samples and encodes every full frame,
    /// up to `limit` samples into the segment.
    fn resample_and_encode(&mut self, limit: u64) {
        match self.resampler.as_mut() {
            None => self.pending.extend_from_slice(&self.decoded),
            Some(r) => {
                let frames = self.decoded.len() / self.channels;
                let out_cap = r.out.len() / self.channels;
                let written = rubato::audioadapter_buffers::direct::InterleavedSlice::new(
                    &self.decoded,
                    self.channels,
                    frames,
                )
                .ok()
                .zip(
                    rubato::audioadapter_buffers::direct::InterleavedSlice::new_mut(
                        &mut r.out,
                        self.channels,
                        out_cap,
                    )
                    .ok(),
                )
                .and_then(|(input, mut output)| {
                    r.fft.process_into_buffer(&input, &mut output, None).ok()
                });
                match written {
                    Some((_, n)) => self.pending.extend_from_slice(&r.out[..n * self.channels]),
                    // Sizes are fixed at construction, so this is a bug; keep going.
                    None => self.stats.decode_errors += 1,
                }
            }
        }
        self.encode_pending(limit);
    }

    /// Encodes every full Opus frame of `pending`, stopping once the segment has handed
    /// `limit` samples to the encoder.
    fn encode_pending(&mut self, limit: u64) {
        let frame_len = OPUS_FRAME_SAMPLES * self.channels;
        let mut start = 0;
        while self.pending.len() - start >= frame_len {
            let Some(seg) = self.segment.as_mut() else {
                break;
            };
            if seg.encoded >= limit {
                break;
            }
            let pts = seg
                .anchor_out
                .saturating_add(seg.encoded as i64)
                .saturating_sub(i64::from(self.delay));
            seg.encoded += OPUS_FRAME_SAMPLES as u64;
            let pcm = &self.pending[start..start + frame_len];
            start += frame_len;
            match self.encoder.encode_float(pcm, &mut self.packet) {
                Ok(n) => {
                    self.stats.frames_out += 1;
                    self.output.push_back(Frame {
                        track: self.out_track,
                        kind: MediaKind::Audio,
                        keyframe: true,
                        dts: pts,
                        pts,
                        data: Bytes::copy_from_slice(&self.packet[..n]),
                    });
                }
                Err(_) => self.stats.encode_errors += 1,
            }
        }
        self.pending.drain(..start);
    }
}
