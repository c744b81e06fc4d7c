use super::*;

/// Maps every section the way the session does: usable ones get ids in order.
fn map_all(sdp: &Sdp) -> (Vec<(Track, DepackConfig)>, Vec<String>) {
    let (tracks, skipped) = sdp.setup_tracks("rtsp://192.0.2.99/base/");
    (
        tracks.into_iter().map(|t| (t.track, t.depack)).collect(),
        skipped,
    )
}

// The vectors below reproduce the layout of each vendor's DESCRIBE answer as shown in
// their public integration notes and user forum posts; the parameter sets are real
// ones, made by x264/x265 at the camera's resolution through ffmpeg's RTP muxer
// (`ffmpeg -f lavfi -i testsrc=size=WxH ... -flags:v +global_header -f rtp
// -sdp_file`), so that the SPS parses to a known size.

/// Hikvision DS-2CD2xxx, main stream: absolute control URLs with
/// `?transportmode=unicast`, PCMU audio without rtpmap channels, and the ONVIF
/// metadata track.
const HIKVISION: &str = "v=0\r\n\
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

/// Dahua / Amcrest, H.265 main stream with AAC (`a=control:*`, relative `trackID=`
/// controls, Dahua's own attributes).
const DAHUA: &str = "v=0\r\n\
o=- 2251938197 2251938197 IN IP4 0.0.0.0\r\n\
s=Media Server\r\n\
c=IN IP4 0.0.0.0\r\n\
t=0 0\r\n\
a=control:*\r\n\
a=packetization-supported:DH\r\n\
a=rtppayload-supported:DH\r\n\
a=range:npt=now-\r\n\
m=video 0 RTP/AVP 98\r\n\
a=control:trackID=0\r\n\
a=framerate:25.000000\r\n\
a=rtpmap:98 H265/90000\r\n\
a=fmtp:98 profile-id=1;sprop-sps=QgEBAWAAAAMAkAAAAwAAAwCWoAFAIAWhZZWaSTK8BaAgAAADACAAAAMDIQ==;sprop-pps=RAHBcrRiQA==;sprop-vps=QAEMAf//AWAAAAMAkAAAAwAAAwCWlZgJ\r\n\
a=recvonly\r\n\
m=audio 0 RTP/AVP 97\r\n\
a=control:trackID=1\r\n\
a=rtpmap:97 MPEG4-GENERIC/16000\r\n\
a=fmtp:97 streamtype=5;profile-level-id=1;mode=AAC-hbr;sizelength=13;indexlength=3;indexdeltalength=3;config=1408\r\n\
a=recvonly\r\n";

/// Axis (AXIS OS, GStreamer-based server): absolute session-level and media
/// controls carrying the stream's query.
const AXIS: &str = "v=0\r\n\
o=- 1580128402713456 1 IN IP4 192.0.2.30\r\n\
s=Session streamed with GStreamer\r\n\
i=rtsp-server\r\n\
t=0 0\r\n\
a=tool:GStreamer\r\n\
a=type:broadcast\r\n\
a=range:npt=now-\r\n\
a=control:rtsp://192.0.2.30/axis-media/media.amp?videocodec=h264&resolution=1280x720\r\n\
m=video 0 RTP/AVP 96\r\n\
c=IN IP4 0.0.0.0\r\n\
b=AS:50000\r\n\
a=rtpmap:96 H264/90000\r\n\
a=fmtp:96 packetization-mode=1;profile-level-id=4d401f;sprop-parameter-sets=Z01AH9kAUAW7ARAAAAMAEAAAAwPA8YMkgA==,aOvDyyA=\r\n\
a=control:rtsp://192.0.2.30/axis-media/media.amp/stream=0?videocodec=h264&resolution=1280x720\r\n\
a=framerate:30.000000\r\n\
a=transform:1.000000,0.000000,0.000000;0.000000,1.000000,0.000000;0.000000,0.000000,1.000000\r\n";

/// Reolink (live555 server), 2560x1440 High profile with AAC; bare LF line ends as
/// some firmware sends them.
const REOLINK: &str = "v=0\n\
o=- 1644161009146218 1 IN IP4 192.0.2.50\n\
s=Session streamed by \"preview\"\n\
i=h264_main\n\
t=0 0\n\
a=tool:LIVE555 Streaming Media v2013.04.08\n\
a=type:broadcast\n\
a=control:*\n\
a=range:npt=0-\n\
a=x-qt-text-nam:Session streamed by \"preview\"\n\
a=x-qt-text-inf:h264_main\n\
m=video 0 RTP/AVP 96\n\
c=IN IP4 0.0.0.0\n\
b=AS:500\n\
a=rtpmap:96 H264/90000\n\
a=fmtp:96 packetization-mode=1;profile-level-id=640032;sprop-parameter-sets=Z2QAMqyyAFABa2AiAAADAAIAAAMAUB4wZJA=,aOvDyyLA\n\
a=control:track1\n\
m=audio 0 RTP/AVP 97\n\
c=IN IP4 0.0.0.0\n\
b=AS:256\n\
a=rtpmap:97 MPEG4-GENERIC/16000/1\n\
a=fmtp:97 streamtype=5;profile-level-id=1;mode=AAC-hbr;sizelength=13;indexlength=3;indexdeltalength=3; config=140856E500\n\
a=control:track2\n";

#[test]
fn hikvision_h264_pcmu_and_onvif_metadata() {
    let sdp = Sdp::parse(HIKVISION.as_bytes()).expect("parses");
    assert_eq!(
        sdp.control.as_deref(),
        Some("rtsp://192.0.2.10:554/Streaming/Channels/101/?transportmode=unicast")
    );
    assert_eq!(sdp.media.len(), 3);
    let (tracks, skipped) = map_all(&sdp);
    assert_eq!(
        skipped,
        ["application/vnd.onvif.metadata: not a media codec"]
    );
    let [(video, vd), (audio, ad)] = tracks.as_slice() else {
        panic!("two tracks: {tracks:?}");
    };
    assert_eq!(
        (video.id, video.codec, video.clock_rate),
        (TrackId(0), Codec::H264, 90000)
    );
    assert_eq!((video.width, video.height), (Some(1920), Some(1080)));
    // The SPS wins over a profile-level-id that disagrees with it.
    assert_eq!(video.profile.as_deref(), Some("Main"));
    assert_eq!(video.fps, Some(25.0));
    assert_eq!(video.params.sps.len(), 1);
    assert_eq!(&video.params.pps[0][..], &[0x68, 0xEB, 0xC3, 0xCB, 0x20]);
    assert_eq!(*vd, DepackConfig::H264);
    assert_eq!(
        (audio.id, audio.codec, audio.clock_rate, audio.channels),
        (TrackId(1), Codec::Pcmu, 8000, Some(1))
    );
    assert_eq!(*ad, DepackConfig::Pcmu);
    assert_eq!(
        sdp.media[1].control.as_deref(),
        Some("rtsp://192.0.2.10:554/Streaming/Channels/101/trackID=2?transportmode=unicast")
    );
}

#[test]
fn dahua_h265_and_aac_hbr() {
    let sdp = Sdp::parse(DAHUA.as_bytes()).expect("parses");
    assert_eq!(sdp.control.as_deref(), Some("*"));
    let (tracks, skipped) = map_all(&sdp);
    assert!(skipped.is_empty(), "{skipped:?}");
    let [(video, vd), (audio, ad)] = tracks.as_slice() else {
        panic!("two tracks: {tracks:?}");
    };
    assert_eq!((video.codec, *vd), (Codec::H265, DepackConfig::H265));
    assert_eq!(
        (
            video.params.vps.len(),
            video.params.sps.len(),
            video.params.pps.len()
        ),
        (1, 1, 1)
    );
    assert_eq!(video.params.vps[0][0], 0x40);
    assert_eq!(video.profile.as_deref(), Some("Main"));
    // Size from the x265 SPS (a 4 MP Dahua main stream).
    assert_eq!((video.width, video.height), (Some(2560), Some(1440)));
    assert_eq!(sdp.media[0].control.as_deref(), Some("trackID=0"));
    assert_eq!(
        (audio.codec, audio.clock_rate, audio.channels),
        (Codec::Aac, 16000, Some(1))
    );
    assert_eq!(
        audio.params.audio_config.as_deref(),
        Some(&[0x14, 0x08][..])
    );
    assert_eq!(audio.profile.as_deref(), Some("LC"));
    assert_eq!(
        *ad,
        DepackConfig::Aac {
            size_length: 13,
            index_length: 3,
            index_delta_length: 3
        }
    );
}

#[test]
fn axis_h264_with_absolute_controls() {
    let sdp = Sdp::parse(AXIS.as_bytes()).expect("parses");
    assert_eq!(
        sdp.control.as_deref(),
        Some("rtsp://192.0.2.30/axis-media/media.amp?videocodec=h264&resolution=1280x720")
    );
    let (tracks, _) = map_all(&sdp);
    let [(video, _)] = tracks.as_slice() else {
        panic!("one track");
    };
    assert_eq!((video.width, video.height), (Some(1280), Some(720)));
    assert_eq!(
        sdp.media[0].control.as_deref(),
        Some("rtsp://192.0.2.30/axis-media/media.amp/stream=0?videocodec=h264&resolution=1280x720")
    );
}

#[test]
fn reolink_h264_high_and_aac_with_lf_line_ends() {
    let sdp = Sdp::parse(REOLINK.as_bytes()).expect("parses");
    let (tracks, skipped) = map_all(&sdp);
    assert!(skipped.is_empty());
    let [(video, _), (audio, _)] = tracks.as_slice() else {
        panic!("two tracks");
    };
    assert_eq!(
        (video.width, video.height, video.profile.as_deref()),
        (Some(2560), Some(1440), Some("High"))
    );
    assert_eq!(
        audio.params.audio_config.as_deref(),
        Some(&[0x14, 0x08, 0x56, 0xE5, 0x00][..])
    );
    assert_eq!(sdp.media[1].control.as_deref(), Some("track2"));
    assert_eq!(sdp.media[1].fmtp("config"), Some("140856E500"));
}

#[test]
fn static_payload_types_opus_and_unsupported_codecs() {
    let sdp = Sdp::parse(
            b"v=0\r\n\
m=audio 0 RTP/AVP 8\r\n\
m=audio 0 RTP/AVP 14\r\n\
m=video 0 RTP/AVP 26\r\n\
m=audio 0 RTP/AVP 111\r\na=rtpmap:111 opus/48000/2\r\n\
m=audio 0 RTP/AVP 96\r\na=rtpmap:96 MP4A-LATM/90000\r\n\
m=audio 0 RTP/AVP 97\r\n\
m=video 0 RTP/AVP 96 97\r\na=rtpmap:97 H264/90000\r\na=rtpmap:96 H264/90000\r\n\
m=audio 0 RTP/AVP 96\r\na=rtpmap:96 mpeg4-generic/44100/2\r\na=fmtp:96 mode=CELP-cbr\r\n\
m=audio 0 RTP/AVP 96\r\na=rtpmap:96 mpeg4-generic/44100/2\r\na=fmtp:96 mode=AAC-hbr;sizelength=40\r\n\
m=audio 0 RTP/AVP 96\r\na=rtpmap:96 mpeg4-generic/44100/2\r\na=fmtp:96 mode=AAC-lbr;config=zz\r\n\
m=audio 0 RTP/AVP 96\r\na=rtpmap:96 MPEG4-GENERIC/8000\r\na=fmtp:96 MODE=aac-LBR\r\n\
m=video 0 RTP/SAVP 96\r\na=rtpmap:96 H264/90000\r\n\
m=video 0 udp MP2T\r\n\
m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/0\r\n",
        )
        .expect("parses");
    let ids: Vec<_> = sdp
        .media
        .iter()
        .map(|m| {
            m.track(TrackId(0))
                .map(|(t, d)| (t.codec, t.clock_rate, t.channels, d))
        })
        .collect();
    assert_eq!(ids[0], Ok((Codec::Pcma, 8000, Some(1), DepackConfig::Pcma)));
    assert_eq!(ids[1], Err("audio/MPA: codec not supported".to_string()));
    assert_eq!(ids[2], Err("video/JPEG: codec not supported".to_string()));
    assert_eq!(
        ids[3],
        Ok((Codec::Opus, 48000, Some(2), DepackConfig::Opus))
    );
    assert_eq!(
        ids[4],
        Err("audio/MP4A-LATM: codec not supported".to_string())
    );
    assert_eq!(
        ids[5],
        Err("audio: payload type 97 without a=rtpmap".to_string())
    );
    assert!(ids[6].is_ok(), "rtpmap of the first payload type is used");
    assert_eq!(
        ids[7],
        Err("audio/mpeg4-generic: mode=CELP-cbr not supported".to_string())
    );
    assert_eq!(
        ids[8],
        Err("audio/mpeg4-generic: sizelength=40 out of range".to_string())
    );
    assert_eq!(
        ids[9],
        Err("audio/mpeg4-generic: config=zz is not hex".to_string())
    );
    // No config=: AAC-LC at the rtpmap rate, lbr header lengths.
    let (t, d) = sdp.media[10].track(TrackId(3)).expect("usable");
    assert_eq!(t.params.audio_config.as_deref(), Some(&[0x15, 0x88][..]));
    assert_eq!(
        d,
        DepackConfig::Aac {
            size_length: 6,
            index_length: 2,
            index_delta_length: 2
        }
    );
    assert!(ids[11].is_ok(), "SAVP is still RTP");
    assert_eq!(
        ids[12],
        Err("video: m= line without a payload type".to_string())
    );
    assert_eq!(ids[13], Err("video/H264: clock rate 0".to_string()));
}

#[test]
fn bad_sprop_falls_back_to_profile_level_id() {
    let sdp = Sdp::parse(
        b"v=0\nm=video 0 RTP/AVP 96\na=rtpmap:96 H264/90000\n\
a=fmtp:96 profile-level-id=42e01f;sprop-parameter-sets=!!!,aOvDyyA=\n",
    )
    .expect("parses");
    let (t, _) = sdp.media[0].track(TrackId(0)).expect("usable");
    assert!(t.params.sps.is_empty() && t.params.pps.is_empty());
    assert_eq!(t.profile.as_deref(), Some("Constrained Baseline"));
    assert_eq!(t.width, None);
}

#[test]
fn malformed_descriptions() {
    assert_eq!(Sdp::parse(b""), Err(SdpError::Empty));
    assert_eq!(Sdp::parse(b"\r\n \r\n"), Err(SdpError::Empty));
    assert_eq!(
        Sdp::parse(b"<html>Unauthorized</html>"),
        Err(SdpError::NotSdp("<html>Unauthorized</html>".to_string()))
    );
    let long = format!("v=0\r\na={}\r\n", "x".repeat(MAX_LINE));
    assert_eq!(
        Sdp::parse(long.as_bytes()),
        Err(SdpError::LineTooLong { line: 2 })
    );
    let many = format!("v=0\n{}", "m=audio 0 RTP/AVP 0\n".repeat(MAX_MEDIA + 1));
    assert_eq!(Sdp::parse(many.as_bytes()), Err(SdpError::TooManyMedia));
    // Garbage inside a valid start is ignored, not fatal.
    let sdp =
        Sdp::parse(b"v=0\nxyz\n=\nm=\nm=video x\nm=video 9/2 RTP/AVP 300\na=rtpmap:\xff\xfe\n")
            .expect("lenient");
    assert_eq!(sdp.media.len(), 3);
    assert_eq!(sdp.media[2].port, 9);
    assert_eq!(sdp.media[2].payload_type, None);
    for m in &sdp.media {
        assert!(m.track(TrackId(0)).is_err());
    }
}

#[test]
fn base64_decoder_vectors_and_garbage() {
    assert_eq!(base64_decode("", 10), Some(vec![]));
    assert_eq!(base64_decode("Zg==", 10), Some(b"f".to_vec()));
    assert_eq!(base64_decode("Zm8", 10), Some(b"fo".to_vec()));
    assert_eq!(base64_decode("Zm9v", 10), Some(b"foo".to_vec()));
    assert_eq!(base64_decode("+/8=", 10), Some(vec![0xFB, 0xFF]));
    assert_eq!(base64_decode("-_8", 10), Some(vec![0xFB, 0xFF]));
    assert_eq!(base64_decode("Zm9v", 2), None);
    assert_eq!(base64_decode("Z", 10), None);
    assert_eq!(base64_decode("Zm9v===", 10), None);
    assert_eq!(base64_decode("Zm 9", 10), None);
    assert_eq!(base64_decode("Zm=v", 10), None);
    assert_eq!(base64_decode("é", 10), None);
    let round: Vec<u8> = (0..=255).collect();
    let enc = crate::rtsp::proto::auth::base64_encode(&round);
    assert_eq!(base64_decode(&enc, 256), Some(round));
}
