//! Server side of the RTMP handshake (RTMP 1.0 spec section 5.2), plain and digest.
//!
//! The client sends C0 (the version byte, 3) and C1 (1536 bytes); we answer S0+S1+S2 at
//! once, then wait for C2 (1536 bytes, only its length is checked).
//!
//! Clients derived from the Flash Player (librtmp/OBS, ffmpeg, FMLE) put a non-zero version
//! in C1 bytes 4..8 and an HMAC-SHA256 digest inside C1 (the "complex" handshake, as
//! implemented publicly by rtmpdump, ffmpeg and nginx-rtmp). If that digest validates with
//! the Flash Player key at either offset scheme, we answer in kind: S1 carries our digest
//! keyed by the Flash Media Server key at the same scheme, and S2 is random bytes followed
//! by an HMAC keyed by `HMAC(FMS key with its 32 extra bytes, client digest)`; librtmp and
//! ffmpeg verify both. Otherwise we answer the plain handshake: S1 = time + zero + random,
//! S2 = an echo of C1. Encrypted RTMPE (C0 = 6) is refused.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The only protocol version served (C0/S0).
pub const RTMP_VERSION: u8 = 0x03;
/// Length of C1/C2/S1/S2.
pub const HANDSHAKE_LEN: usize = 0x600;
/// Length of an HMAC-SHA256 digest.
const DIGEST_LEN: usize = 0x20;
/// Digest offsets are taken modulo this: a 764-byte half of C1 minus its 4 offset bytes
/// and the 32-byte digest.
const DIGEST_OFFSET_MOD: usize = 728;

/// "Genuine Adobe Flash Player 001" followed by 32 constant bytes.
const GENUINE_FP_KEY: [u8; 62] = [
    0x47, 0x65, 0x6E, 0x75, 0x69, 0x6E, 0x65, 0x20, 0x41, 0x64, 0x6F, 0x62, 0x65, 0x20, 0x46, 0x6C,
    0x61, 0x73, 0x68, 0x20, 0x50, 0x6C, 0x61, 0x79, 0x65, 0x72, 0x20, 0x30, 0x30, 0x31, 0xF0, 0xEE,
    0xC2, 0x4A, 0x80, 0x68, 0xBE, 0xE8, 0x2E, 0x00, 0xD0, 0xD1, 0x02, 0x9E, 0x7E, 0x57, 0x6E, 0xEC,
    0x5D, 0x2D, 0x29, 0x80, 0x6F, 0xAB, 0x93, 0xB8, 0xE6, 0x36, 0xCF, 0xEB, 0x31, 0xAE,
];
/// Length of the text part of [`GENUINE_FP_KEY`] (the C1 digest key).
const FP_KEY_TEXT_LEN: usize = 30;
/// "Genuine Adobe Flash Media Server 001" followed by the same 32 constant bytes.
const GENUINE_FMS_KEY: [u8; 68] = [
    0x47, 0x65, 0x6E, 0x75, 0x69, 0x6E, 0x65, 0x20, 0x41, 0x64, 0x6F, 0x62, 0x65, 0x20, 0x46, 0x6C,
    0x61, 0x73, 0x68, 0x20, 0x4D, 0x65, 0x64, 0x69, 0x61, 0x20, 0x53, 0x65, 0x72, 0x76, 0x65, 0x72,
    0x20, 0x30, 0x30, 0x31, 0xF0, 0xEE, 0xC2, 0x4A, 0x80, 0x68, 0xBE, 0xE8, 0x2E, 0x00, 0xD0, 0xD1,
    0x02, 0x9E, 0x7E, 0x57, 0x6E, 0xEC, 0x5D, 0x2D, 0x29, 0x80, 0x6F, 0xAB, 0x93, 0xB8, 0xE6, 0x36,
    0xCF, 0xEB, 0x31, 0xAE,
];
/// Length of the text part of [`GENUINE_FMS_KEY`] (the S1 digest key).
const FMS_KEY_TEXT_LEN: usize = 36;
/// Server version written in S1 bytes 4..8 of a digest handshake (as nginx-rtmp does).
const SERVER_VERSION: [u8; 4] = [0x0D, 0x0E, 0x0A, 0x0D];

/// Errors from the handshake.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HandshakeError {
    /// C0 held a version other than 3 (6 is encrypted RTMPE, which is not supported).
    #[error("unsupported RTMP version {version:#04x} in C0, expected 0x03")]
    UnsupportedVersion {
        /// The C0 byte.
        version: u8,
    },
    /// Input after the handshake had already failed.
    #[error("handshake already failed")]
    Failed,
}

/// What the caller should do after [`Handshake::handle_input`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum HandshakeProgress {
    /// Nothing to send; more input is needed.
    NeedMore,
    /// Send these bytes (S0+S1+S2), then call [`Handshake::handle_input`] again: C2 may
    /// already be buffered.
    Send(Bytes),
    /// The handshake is complete; what remains in the buffer is the chunk stream.
    Done,
}

/// Which digest layout a client used in C1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DigestScheme {
    /// Digest offset from bytes 8..12 (key/digest halves in that order).
    Scheme0,
    /// Digest offset from bytes 772..776.
    Scheme1,
}

impl DigestScheme {
    /// Start of the 4 offset bytes; the digest follows somewhere after them.
    fn base(self) -> usize {
        match self {
            DigestScheme::Scheme0 => 8,
            DigestScheme::Scheme1 => 772,
        }
    }

    /// Offset of the 32-byte digest in a 1536-byte C1/S1.
    pub fn digest_offset(self, block: &[u8]) -> Option<usize> {
        let base = self.base();
        let sum: usize = block
            .get(base..base + 4)?
            .iter()
            .map(|&b| usize::from(b))
            .sum();
        let off = sum % DIGEST_OFFSET_MOD + base + 4;
        (off + DIGEST_LEN <= block.len()).then_some(off)
    }
}

/// What the handshake is waiting for.
#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// The version byte and the 1536-byte C1.
    ExpectC0C1,
    /// The 1536-byte C2.
    ExpectC2,
    /// Finished.
    Done,
    /// Rejected; any further input is an error.
    Failed,
}

/// Server handshake state machine.
#[derive(Debug, Clone)]
pub struct Handshake {
    state: State,
    rng: SplitMix64,
    digest: Option<DigestScheme>,
    consumed: u64,
}

impl Handshake {
    /// A handshake awaiting C0+C1; `random_seed` feeds the random parts of S1/S2.
    pub fn new(random_seed: u64) -> Self {
        Handshake {
            state: State::ExpectC0C1,
            rng: SplitMix64(random_seed),
            digest: None,
            consumed: 0,
        }
    }

    /// Whether C2 has been received.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// The digest scheme the client used, if it did the digest handshake.
    pub fn digest_scheme(&self) -> Option<DigestScheme> {
        self.digest
    }

    /// Bytes of C0, C1 and C2 consumed so far.
    pub fn bytes_consumed(&self) -> u64 {
        self.consumed
    }

    /// Consumes the handshake bytes available in `buf` (one step per call).
    ///
    /// Call in a loop until [`HandshakeProgress::NeedMore`] or [`HandshakeProgress::Done`];
    /// after `Done` the rest of `buf` belongs to the chunk stream.
    pub fn handle_input(
        &mut self,
        buf: &mut BytesMut,
    ) -> Result<HandshakeProgress, HandshakeError> {
        match self.state {
            State::ExpectC0C1 => {
                let Some(&version) = buf.first() else {
                    return Ok(HandshakeProgress::NeedMore);
                };
                if version != RTMP_VERSION {
                    self.state = State::Failed;
                    return Err(HandshakeError::UnsupportedVersion { version });
                }
                if buf.len() < 1 + HANDSHAKE_LEN {
                    return Ok(HandshakeProgress::NeedMore);
                }
                buf.advance(1);
                let c1 = buf.split_to(HANDSHAKE_LEN);
                self.consumed += (1 + HANDSHAKE_LEN) as u64;
                let reply = self.reply(&c1);
                self.state = State::ExpectC2;
                Ok(HandshakeProgress::Send(reply))
            }
            State::ExpectC2 => {
                if buf.len() < HANDSHAKE_LEN {
                    return Ok(HandshakeProgress::NeedMore);
                }
                buf.advance(HANDSHAKE_LEN);
                self.consumed += HANDSHAKE_LEN as u64;
                self.state = State::Done;
                Ok(HandshakeProgress::Done)
            }
            State::Done => Ok(HandshakeProgress::Done),
            State::Failed => Err(HandshakeError::Failed),
        }
    }

    /// S0+S1+S2 answering `c1`.
    fn reply(&mut self, c1: &[u8]) -> Bytes {
        let mut out = BytesMut::with_capacity(1 + 2 * HANDSHAKE_LEN);
        out.put_u8(RTMP_VERSION);
        let client_digest = find_client_digest(c1);
        match client_digest {
            Some((scheme, digest)) => {
                self.digest = Some(scheme);
                let mut s1 = [0u8; HANDSHAKE_LEN];
                self.rng.fill(&mut s1[8..]);
                s1[4..8].copy_from_slice(&SERVER_VERSION);
                if let Some(off) = scheme.digest_offset(&s1) {
                    let d = block_digest(&s1, off, &GENUINE_FMS_KEY[..FMS_KEY_TEXT_LEN]);
                    s1[off..off + DIGEST_LEN].copy_from_slice(&d);
                }
                out.put_slice(&s1);
                let mut s2 = [0u8; HANDSHAKE_LEN];
                self.rng.fill(&mut s2);
                let sig = s2_signature(&digest, &s2);
                s2[HANDSHAKE_LEN - DIGEST_LEN..].copy_from_slice(&sig);
                out.put_slice(&s2);
            }
            None => {
                // S1: time (0), zero, random; S2: echo of C1.
                let mut s1 = [0u8; HANDSHAKE_LEN];
                self.rng.fill(&mut s1[8..]);
                out.put_slice(&s1);
                out.put_slice(c1);
            }
        }
        out.freeze()
    }
}

/// HMAC-SHA256 of `parts` concatenated, keyed by `key`.
fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; DIGEST_LEN] {
    // HMAC accepts keys of any length; the error branch is unreachable.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
        return [0; DIGEST_LEN];
    };
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().into()
}

/// Digest of a C1/S1 block: HMAC over the block minus the 32 digest bytes at `off`.
fn block_digest(block: &[u8], off: usize, key: &[u8]) -> [u8; DIGEST_LEN] {
    let before = block.get(..off).unwrap_or_default();
    let after = block.get(off + DIGEST_LEN..).unwrap_or_default();
    hmac_sha256(key, &[before, after])
}

/// Whether `block` carries a valid digest at `scheme`, keyed by `key`; returns it.
pub fn validate_digest(block: &[u8], scheme: DigestScheme, key: &[u8]) -> Option<[u8; DIGEST_LEN]> {
    if block.len() != HANDSHAKE_LEN {
        return None;
    }
    let off = scheme.digest_offset(block)?;
    let expected = block_digest(block, off, key);
    let found = block.get(off..off + DIGEST_LEN)?;
    // Not secret material: a plain comparison is fine.
    (found == expected).then_some(expected)
}

/// The client digest of a digest-handshake C1, with its scheme.
fn find_client_digest(c1: &[u8]) -> Option<(DigestScheme, [u8; DIGEST_LEN])> {
    // A zero version means the plain handshake.
    if c1.get(4..8)? == [0, 0, 0, 0] {
        return None;
    }
    let key = &GENUINE_FP_KEY[..FP_KEY_TEXT_LEN];
    [DigestScheme::Scheme0, DigestScheme::Scheme1]
        .into_iter()
        .find_map(|s| validate_digest(c1, s, key).map(|d| (s, d)))
}

/// Last 32 bytes of a digest-handshake S2: HMAC over the first 1504 bytes, keyed by
/// `HMAC(full FMS key, client digest)`.
fn s2_signature(client_digest: &[u8], s2: &[u8]) -> [u8; DIGEST_LEN] {
    let key = hmac_sha256(&GENUINE_FMS_KEY, &[client_digest]);
    let body = s2.get(..HANDSHAKE_LEN - DIGEST_LEN).unwrap_or_default();
    hmac_sha256(&key, &[body])
}

/// SplitMix64: a tiny, seedable, non-cryptographic generator for the random filler.
#[derive(Debug, Clone)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn fill(&mut self, out: &mut [u8]) {
        for chunk in out.chunks_mut(8) {
            let r = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&r[..chunk.len()]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed_all(hs: &mut Handshake, buf: &mut BytesMut) -> Vec<Bytes> {
        let mut sent = Vec::new();
        loop {
            match hs.handle_input(buf).unwrap() {
                HandshakeProgress::Send(b) => sent.push(b),
                HandshakeProgress::NeedMore | HandshakeProgress::Done => return sent,
            }
        }
    }

    fn plain_c1() -> Vec<u8> {
        let mut c1 = vec![0u8; HANDSHAKE_LEN];
        c1[..4].copy_from_slice(&[0x00, 0x00, 0x12, 0x34]);
        for (i, b) in c1.iter_mut().enumerate().skip(8) {
            *b = (i * 7) as u8;
        }
        c1
    }

    /// A Flash-style C1 with a valid client digest at `scheme`.
    fn digest_c1(scheme: DigestScheme) -> Vec<u8> {
        let mut c1 = plain_c1();
        c1[4..8].copy_from_slice(&[0x09, 0x00, 0x7C, 0x02]);
        let off = scheme.digest_offset(&c1).unwrap();
        let d = block_digest(&c1, off, &GENUINE_FP_KEY[..FP_KEY_TEXT_LEN]);
        c1[off..off + DIGEST_LEN].copy_from_slice(&d);
        c1
    }

    #[test]
    fn plain_handshake() {
        let mut hs = Handshake::new(42);
        let c1 = plain_c1();
        let mut buf = BytesMut::new();
        buf.put_u8(0x03);
        buf.put_slice(&c1);
        let sent = feed_all(&mut hs, &mut buf);
        assert_eq!(sent.len(), 1);
        let s = &sent[0];
        assert_eq!(s.len(), 1 + 2 * HANDSHAKE_LEN);
        assert_eq!(s[0], 0x03);
        assert_eq!(&s[1..9], &[0; 8], "S1 time and zero fields");
        assert_eq!(&s[1 + HANDSHAKE_LEN..], &c1[..], "S2 echoes C1");
        assert!(hs.digest_scheme().is_none());
        assert!(!hs.is_done());
        // C2 plus the start of the chunk stream.
        buf.put_slice(&[0xAA; HANDSHAKE_LEN]);
        buf.put_slice(&[0x02, 0x00]);
        assert_eq!(hs.handle_input(&mut buf).unwrap(), HandshakeProgress::Done);
        assert!(hs.is_done());
        assert_eq!(&buf[..], &[0x02, 0x00]);
        assert_eq!(hs.bytes_consumed(), 3073);
    }

    #[test]
    fn same_seed_same_reply() {
        let mut input = vec![0x03];
        input.extend_from_slice(&plain_c1());
        let reply = |seed| {
            let mut hs = Handshake::new(seed);
            feed_all(&mut hs, &mut BytesMut::from(&input[..]))
        };
        assert_eq!(reply(7), reply(7));
        assert_ne!(reply(7), reply(8));
    }

    #[test]
    fn digest_handshake_both_schemes() {
        for scheme in [DigestScheme::Scheme0, DigestScheme::Scheme1] {
            let c1 = digest_c1(scheme);
            let client_digest = validate_digest(&c1, scheme, &GENUINE_FP_KEY[..30]).unwrap();
            let mut hs = Handshake::new(1);
            let mut buf = BytesMut::new();
            buf.put_u8(0x03);
            buf.put_slice(&c1);
            let sent = feed_all(&mut hs, &mut buf);
            assert_eq!(hs.digest_scheme(), Some(scheme));
            let s = &sent[0];
            let s1 = &s[1..1 + HANDSHAKE_LEN];
            let s2 = &s[1 + HANDSHAKE_LEN..];
            assert_eq!(&s1[4..8], &SERVER_VERSION);
            // The S1 digest validates with the FMS key at the client's scheme (what
            // librtmp/ffmpeg check).
            assert!(validate_digest(s1, scheme, &GENUINE_FMS_KEY[..36]).is_some());
            // S2's signature, computed as a client does.
            let key = hmac_sha256(&GENUINE_FMS_KEY, &[&client_digest]);
            let sig = hmac_sha256(&key, &[&s2[..HANDSHAKE_LEN - 32]]);
            assert_eq!(&s2[HANDSHAKE_LEN - 32..], &sig);
            assert_ne!(s2, &c1[..], "S2 is not an echo");
        }
    }

    #[test]
    fn bad_digest_falls_back_to_plain() {
        let mut c1 = digest_c1(DigestScheme::Scheme0);
        let off = DigestScheme::Scheme0.digest_offset(&c1).unwrap();
        c1[off] ^= 0x01;
        let mut hs = Handshake::new(3);
        let mut buf = BytesMut::from(&[0x03][..]);
        buf.put_slice(&c1);
        let sent = feed_all(&mut hs, &mut buf);
        assert!(hs.digest_scheme().is_none());
        assert_eq!(&sent[0][1 + HANDSHAKE_LEN..], &c1[..]);
    }

    #[test]
    fn rtmpe_version_is_refused() {
        let mut hs = Handshake::new(0);
        let mut buf = BytesMut::from(&[0x06][..]);
        assert_eq!(
            hs.handle_input(&mut buf),
            Err(HandshakeError::UnsupportedVersion { version: 0x06 })
        );
        assert_eq!(hs.handle_input(&mut buf), Err(HandshakeError::Failed));
    }

    #[test]
    fn byte_by_byte() {
        let mut input = vec![0x03];
        input.extend_from_slice(&digest_c1(DigestScheme::Scheme1));
        input.extend_from_slice(&[0x55; HANDSHAKE_LEN]);
        input.push(0xC3);
        let mut hs = Handshake::new(9);
        let mut buf = BytesMut::new();
        let mut sends = 0;
        let mut done_at = None;
        for (i, b) in input.iter().enumerate() {
            buf.put_u8(*b);
            loop {
                match hs.handle_input(&mut buf).unwrap() {
                    HandshakeProgress::Send(s) => {
                        assert_eq!(i, HANDSHAKE_LEN, "reply after C0+C1");
                        assert_eq!(s.len(), 3073);
                        sends += 1;
                    }
                    HandshakeProgress::Done => {
                        done_at.get_or_insert(i);
                        break;
                    }
                    HandshakeProgress::NeedMore => break,
                }
            }
        }
        assert_eq!(sends, 1);
        assert_eq!(done_at, Some(2 * HANDSHAKE_LEN));
        assert_eq!(&buf[..], &[0xC3]);
    }

    #[test]
    fn c0c1c2_in_one_buffer() {
        let mut buf = BytesMut::from(&[0x03][..]);
        buf.put_slice(&plain_c1());
        buf.put_slice(&plain_c1());
        let mut hs = Handshake::new(5);
        let sent = feed_all(&mut hs, &mut buf);
        assert_eq!(sent.len(), 1);
        assert!(hs.is_done());
        assert!(buf.is_empty());
    }
}
