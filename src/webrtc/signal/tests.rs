//! Signaling tests.

use super::answer_candidates;

#[test]
fn candidates_and_first_mid_of_an_answer() {
    let answer = "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:v0\r\n\
a=candidate:1 1 udp 2130706431 127.0.0.1 8189 typ host\r\n\
a=candidate:2 1 udp 2130706175 192.0.2.1 8189 typ host\r\n\
m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:a1\r\n";
    let (mid, c) = answer_candidates(answer);
    assert_eq!(mid, "v0");
    assert_eq!(
        c,
        [
            "candidate:1 1 udp 2130706431 127.0.0.1 8189 typ host",
            "candidate:2 1 udp 2130706175 192.0.2.1 8189 typ host"
        ]
    );
    assert_eq!(answer_candidates("v=0\r\n"), ("0", vec![]));
}

#[test]
fn an_offer_is_read_once_with_a_normalised_path() {
    use super::{Offer, SignalError};
    let sdp = "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:0\r\na=recvonly\r\n\
a=rtpmap:96 H264/90000\r\na=fmtp:96 packetization-mode=1\r\n";
    let o = Offer::parse("/live/cam1/?token=x", sdp).expect("offer");
    assert_eq!(o.path.as_str(), "live/cam1");
    assert_eq!(o.media.len(), 1);
    assert_eq!(o.sdp, sdp);
    let bad = Offer::parse("live//cam1", sdp).expect_err("bad path");
    assert!(matches!(bad, SignalError::BadPath(_)));
    assert_eq!(bad.status(), 400);
    assert!(bad.to_string().starts_with("bad stream path: "), "{bad}");
    let e = Offer::parse("live/<x>", sdp).expect_err("bad char");
    assert_eq!(e.status(), 400);
    let e = Offer::parse("demo", "v=0 garbage").expect_err("bad sdp");
    assert!(matches!(e, SignalError::BadSdp(_)));
    assert_eq!(e.status(), 400);
}
