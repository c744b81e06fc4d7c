use super::*;

/// The shape of a Chrome recvonly offer (ICE/DTLS values shortened), with RTX, RED and
/// ULPFEC entries, `rtcp-fb` and `extmap` lines, and a data channel section.
const CHROME_OFFER: &str = "v=0\r\n\
o=- 4611731400430051336 2 IN IP4 127.0.0.1\r\n\
s=-\r\n\
t=0 0\r\n\
a=group:BUNDLE 0 1 2\r\n\
a=extmap-allow-mixed\r\n\
a=msid-semantic: WMS\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 96 97 102 103 112 116 118\r\n\
c=IN IP4 0.0.0.0\r\n\
a=rtcp:9 IN IP4 0.0.0.0\r\n\
a=ice-ufrag:abcd\r\n\
a=ice-pwd:0123456789abcdef01234567\r\n\
a=ice-options:trickle\r\n\
a=fingerprint:sha-256 00:11:22\r\n\
a=setup:actpass\r\n\
a=mid:0\r\n\
a=extmap:1 urn:ietf:params:rtp-hdrext:toffset\r\n\
a=recvonly\r\n\
a=rtcp-mux\r\n\
a=rtcp-rsize\r\n\
a=rtpmap:96 VP8/90000\r\n\
a=rtcp-fb:96 goog-remb\r\n\
a=rtcp-fb:96 nack pli\r\n\
a=rtpmap:97 rtx/90000\r\n\
a=fmtp:97 apt=96\r\n\
a=rtpmap:102 H264/90000\r\n\
a=rtcp-fb:102 nack\r\n\
a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f\r\n\
a=rtpmap:103 rtx/90000\r\n\
a=fmtp:103 apt=102\r\n\
a=rtpmap:112 H264/90000\r\n\
a=fmtp:112 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=64001f\r\n\
a=rtpmap:116 red/90000\r\n\
a=rtpmap:118 ulpfec/90000\r\n\
m=audio 9 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126\r\n\
c=IN IP4 0.0.0.0\r\n\
a=mid:1\r\n\
a=sendrecv\r\n\
a=rtpmap:111 opus/48000/2\r\n\
a=rtcp-fb:111 transport-cc\r\n\
a=fmtp:111 minptime=10;useinbandfec=1\r\n\
a=rtpmap:63 red/48000/2\r\n\
a=fmtp:63 111/111\r\n\
a=rtpmap:9 G722/8000\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:13 CN/8000\r\n\
a=rtpmap:110 telephone-event/48000\r\n\
a=rtpmap:126 telephone-event/8000\r\n\
m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n\
c=IN IP4 0.0.0.0\r\n\
a=mid:2\r\n\
a=sctp-port:5000\r\n\
a=max-message-size:262144\r\n";

/// The layout of a Hikvision DESCRIBE answer: session-level control, absolute media
/// controls, an `a=fmtp` with spaces after the semicolons, PCMU audio by its static
/// payload type, and the ONVIF metadata track.
const HIKVISION_LIKE: &str = "v=0\r\n\
o=- 1109162014219182 1109162014219192 IN IP4 192.0.2.10\r\n\
s=Media Presentation\r\n\
e=NONE\r\n\
b=AS:5100\r\n\
t=0 0\r\n\
a=control:rtsp://192.0.2.10:554/Streaming/Channels/101/?transportmode=unicast\r\n\
m=video 0 RTP/AVP 96\r\n\
c=IN IP4 0.0.0.0\r\n\
b=AS:5000\r\n\
a=recvonly\r\n\
a=x-dimensions:1920,1080\r\n\
a=control:rtsp://192.0.2.10:554/Streaming/Channels/101/trackID=1?transportmode=unicast\r\n\
a=rtpmap:96 H264/90000\r\n\
a=fmtp:96 profile-level-id=420029; packetization-mode=1; sprop-parameter-sets=Z01AKNkAeAIn5cBEAAADAAQAAAMAyDxgySA=,aOvDyyA=\r\n\
a=Media_header:MEDIAINFO=494D4B48010200000400000100000000000000000000000000000000;\r\n\
a=appversion:1.0\r\n\
m=audio 0 RTP/AVP 0\r\n\
c=IN IP4 0.0.0.0\r\n\
b=AS:50\r\n\
a=recvonly\r\n\
a=control:rtsp://192.0.2.10:554/Streaming/Channels/101/trackID=2?transportmode=unicast\r\n\
a=rtpmap:0 PCMU/8000\r\n\
m=application 0 RTP/AVP 107\r\n\
c=IN IP4 0.0.0.0\r\n\
b=AS:50\r\n\
a=recvonly\r\n\
a=control:rtsp://192.0.2.10:554/Streaming/Channels/101/trackID=3?transportmode=unicast\r\n\
a=rtpmap:107 vnd.onvif.metadata/90000\r\n";

#[test]
fn chrome_offer_sections_rtpmaps_and_fmtps() {
    let s = parse(CHROME_OFFER.as_bytes()).expect("parses");
    assert_eq!(s.version, "0");
    assert_eq!(s.direction, None);
    assert_eq!(s.control, None);
    assert_eq!(
        s.attributes
            .iter()
            .map(|a| a.name.as_str())
            .collect::<Vec<_>>(),
        ["group", "extmap-allow-mixed", "msid-semantic"]
    );
    assert_eq!(s.attributes[0].value, "BUNDLE 0 1 2");
    assert_eq!(s.attributes[1].value, "");
    assert_eq!(s.media.len(), 3);

    let video = &s.media[0];
    assert_eq!(
        (video.media.as_str(), video.port, video.protocol.as_str()),
        ("video", 9, "UDP/TLS/RTP/SAVPF")
    );
    assert_eq!(
        video.formats,
        ["96", "97", "102", "103", "112", "116", "118"]
    );
    assert_eq!(video.mid.as_deref(), Some("0"));
    assert_eq!(video.direction, Some(Direction::RecvOnly));
    assert!(video.direction.is_some_and(Direction::receives));
    assert_eq!(video.rtpmaps.len(), 7);
    assert_eq!(
        video.rtpmap(102),
        Some(&RtpMap {
            payload_type: 102,
            encoding: "H264".to_string(),
            clock_rate: 90000,
            channels: None
        })
    );
    assert_eq!(video.rtpmap(97).map(|m| m.encoding.as_str()), Some("rtx"));
    assert_eq!(video.fmtp(97).and_then(|f| f.param("apt")), Some("96"));
    let h264 = video.fmtp(112).expect("fmtp 112");
    assert_eq!(
        h264.params,
        [
            ("level-asymmetry-allowed".to_string(), "1".to_string()),
            ("packetization-mode".to_string(), "1".to_string()),
            ("profile-level-id".to_string(), "64001f".to_string()),
        ]
    );
    assert_eq!(h264.param("Profile-Level-Id"), Some("64001f"));
    assert_eq!(video.fmtp(96), None);
    // rtcp-fb, extmap, ICE and DTLS lines are kept as they are.
    assert!(
        video
            .attributes
            .iter()
            .any(|a| a.name == "rtcp-fb" && a.value == "96 nack pli")
    );
    assert!(video.attributes.iter().any(|a| a.name == "rtcp-mux"));

    let audio = &s.media[1];
    assert_eq!(audio.direction, Some(Direction::SendRecv));
    let opus = audio.rtpmap(111).expect("opus");
    assert_eq!(
        (opus.encoding.as_str(), opus.clock_rate, opus.channels),
        ("opus", 48000, Some(2))
    );
    assert_eq!(
        audio.fmtp(111).and_then(|f| f.param("useinbandfec")),
        Some("1")
    );
    // A RED fmtp has no key=value: the bare text is a key with an empty value.
    assert_eq!(
        audio.fmtp(63).map(|f| f.params.clone()),
        Some(vec![("111/111".to_string(), String::new())])
    );

    let data = &s.media[2];
    assert_eq!(data.media, "application");
    assert_eq!(data.formats, ["webrtc-datachannel"]);
    assert!(data.rtpmaps.is_empty() && data.direction.is_none());
    assert_eq!(data.mid.as_deref(), Some("2"));
}

#[test]
fn hikvision_like_describe() {
    let s = parse(HIKVISION_LIKE.as_bytes()).expect("parses");
    assert_eq!(
        s.control.as_deref(),
        Some("rtsp://192.0.2.10:554/Streaming/Channels/101/?transportmode=unicast")
    );
    assert_eq!(s.media.len(), 3);
    let video = &s.media[0];
    assert_eq!(
        (video.media.as_str(), video.port, video.protocol.as_str()),
        ("video", 0, "RTP/AVP")
    );
    assert_eq!(
        video.control.as_deref(),
        Some("rtsp://192.0.2.10:554/Streaming/Channels/101/trackID=1?transportmode=unicast")
    );
    let fmtp = video.fmtp(96).expect("fmtp");
    assert_eq!(fmtp.param("packetization-mode"), Some("1"));
    assert_eq!(
        fmtp.param("sprop-parameter-sets"),
        Some("Z01AKNkAeAIn5cBEAAADAAQAAAMAyDxgySA=,aOvDyyA=")
    );
    // A value with `=` and `:` in it stays whole.
    assert!(video.attributes.iter().any(|a| a.name == "Media_header"
        && a.value == "MEDIAINFO=494D4B48010200000400000100000000000000000000000000000000;"));
    let audio = &s.media[1];
    assert_eq!(audio.formats, ["0"]);
    assert_eq!(audio.rtpmap(0).map(|m| m.channels), Some(None));
    assert_eq!(
        s.media[2].rtpmap(107).map(|m| m.encoding.as_str()),
        Some("vnd.onvif.metadata")
    );
}

#[test]
fn line_ends_bom_and_first_control_wins() {
    let s = parse(
        "\u{feff}v=0\n\n  a=control:*  \na=control:other\na=sendonly\n\
m=audio 49170/2 RTP/AVP 97\r\na=rtpmap:97\tMPEG4-GENERIC / 16000 / 2\r\n\
a=fmtp:97\tmode=AAC-hbr; SizeLength=13 ;;config=1408\r\na=control:track1\r\na=control:track2\r\n\
a=mid:0123456789012345678901234567890123456789\r\na=mid:b\r\n"
            .as_bytes(),
    )
    .expect("parses");
    assert_eq!(s.control.as_deref(), Some("*"));
    assert_eq!(s.direction, Some(Direction::SendOnly));
    assert!(!Direction::SendOnly.receives() && !Direction::Inactive.receives());
    let m = &s.media[0];
    assert_eq!(m.port, 49170);
    assert_eq!(m.control.as_deref(), Some("track1"));
    assert_eq!(m.mid.as_deref(), Some("b"));
    assert_eq!(
        m.rtpmap(97),
        Some(&RtpMap {
            payload_type: 97,
            encoding: "MPEG4-GENERIC".to_string(),
            clock_rate: 16000,
            channels: Some(2)
        })
    );
    let f = m.fmtp(97).expect("fmtp");
    assert_eq!(f.params.len(), 3);
    assert_eq!(f.param("sizelength"), Some("13"));
    assert_eq!(f.param("config"), Some("1408"));
    let long = parse(b"v=0\nm=audio 0 RTP/AVP 0\na=mid:0123456789012345678901234567890123456789\n")
        .expect("parses");
    assert_eq!(long.media[0].mid.as_deref().map(str::len), Some(MAX_MID));
}

#[test]
fn malformed_lines_are_skipped() {
    let s = parse(
        b"v=0\nxyz\n=\nm=\nm=video x\nm=video 9/2 RTP/AVP 300 96\n\
a=rtpmap:\xff\xfe\na=rtpmap:96\na=rtpmap:96 /90000\na=rtpmap:96 H264\n\
a=rtpmap:96 H264/abc\na=rtpmap:300 H264/90000\na=rtpmap:x H264/90000\n\
a=fmtp:\na=fmtp:x a=1\na=fmtp:96\na=rtpmap:96 H264/90000/x\n",
    )
    .expect("lenient");
    assert_eq!(s.media.len(), 3);
    assert_eq!(s.media[0], MediaSection::default());
    assert_eq!(
        (
            s.media[1].media.as_str(),
            s.media[1].port,
            s.media[1].protocol.as_str()
        ),
        ("video", 0, "")
    );
    let m = &s.media[2];
    assert_eq!(m.port, 9);
    assert_eq!(m.formats, ["300", "96"]);
    // Only the last rtpmap parses (channels that are not a number are left out).
    assert_eq!(
        m.rtpmaps,
        [RtpMap {
            payload_type: 96,
            encoding: "H264".to_string(),
            clock_rate: 90000,
            channels: None
        }]
    );
    // `a=fmtp:96` with no parameters is kept, empty.
    assert_eq!(
        m.fmtps,
        [Fmtp {
            payload_type: 96,
            params: vec![]
        }]
    );
}

#[test]
fn errors_and_bounds() {
    assert_eq!(parse(b""), Err(SdpError::Empty));
    assert_eq!(parse(b"\r\n \r\n"), Err(SdpError::Empty));
    assert_eq!(
        parse(b"<html>Unauthorized</html>"),
        Err(SdpError::NotSdp("<html>Unauthorized</html>".to_string()))
    );
    assert_eq!(
        parse("x".repeat(100).as_bytes()),
        Err(SdpError::NotSdp("x".repeat(40)))
    );
    let long = format!("v=0\r\na={}\r\n", "x".repeat(MAX_LINE));
    assert_eq!(
        parse(long.as_bytes()),
        Err(SdpError::LineTooLong { line: 2 })
    );
    // A line of MAX_LINE bytes, its CR included, is fine.
    let edge = format!("v=0\r\na={}\r\n", "x".repeat(MAX_LINE - 3));
    assert!(parse(edge.as_bytes()).is_ok());
    let many = format!("v=0\n{}", "m=audio 0 RTP/AVP 0\n".repeat(MAX_MEDIA + 1));
    assert_eq!(parse(many.as_bytes()), Err(SdpError::TooManyMedia));
    let max = format!("v=0\n{}", "m=audio 0 RTP/AVP 0\n".repeat(MAX_MEDIA));
    assert_eq!(parse(max.as_bytes()).map(|s| s.media.len()), Ok(MAX_MEDIA));

    // Every list a peer controls stops at its bound.
    let formats: Vec<String> = (0..100).map(|n| n.to_string()).collect();
    let mut text = format!("v=0\nm=video 9 RTP/AVP {}\n", formats.join(" "));
    for pt in 0..100 {
        text.push_str(&format!(
            "a=rtpmap:{pt} H264/90000\na=fmtp:{pt} a=1\na=x-{pt}\n"
        ));
    }
    let params: Vec<String> = (0..100).map(|n| format!("k{n}={n}")).collect();
    text.push_str(&format!("a=fmtp:1 {}\n", params.join(";")));
    let s = parse(text.as_bytes()).expect("parses");
    let m = &s.media[0];
    assert_eq!(m.formats.len(), MAX_FORMATS);
    assert_eq!(m.rtpmaps.len(), MAX_RTPMAPS);
    assert_eq!(m.fmtps.len(), MAX_FMTPS);
    assert_eq!(m.attributes.len(), MAX_ATTRIBUTES);
    let one = format!("v=0\nm=video 9 RTP/AVP 1\na=fmtp:1 {}\n", params.join(";"));
    let s = parse(one.as_bytes()).expect("parses");
    assert_eq!(s.media[0].fmtps[0].params.len(), MAX_FMTP_PARAMS);
}

#[test]
fn static_payload_types() {
    let pcmu = static_rtpmap(0).expect("PCMU");
    assert_eq!(
        (pcmu.encoding.as_str(), pcmu.clock_rate, pcmu.channels),
        ("PCMU", 8000, Some(1))
    );
    assert_eq!(
        static_rtpmap(8).map(|m| m.encoding),
        Some("PCMA".to_string())
    );
    assert_eq!(static_rtpmap(26).map(|m| m.clock_rate), Some(90000));
    assert_eq!(static_rtpmap(96), None);
}
