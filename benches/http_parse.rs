//! Request-parser throughput: a browser GET, a WHEP-style POST with a 4 KiB SDP offer, and
//! 16 pipelined small GETs in one buffer.

use std::hint::black_box;

use bytes::BytesMut;
use corecast::http::proto::{Limits, RequestParser};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};

fn browser_get() -> Vec<u8> {
    b"GET /live/cam1/index.html?quality=high HTTP/1.1\r\n\
      Host: media.example.com:8080\r\n\
      Connection: keep-alive\r\n\
      Cache-Control: max-age=0\r\n\
      sec-ch-ua: \"Chromium\";v=\"124\", \"Google Chrome\";v=\"124\", \"Not-A.Brand\";v=\"99\"\r\n\
      sec-ch-ua-mobile: ?0\r\n\
      sec-ch-ua-platform: \"Linux\"\r\n\
      Upgrade-Insecure-Requests: 1\r\n\
      User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36\r\n\
      Accept: text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8\r\n\
      Sec-Fetch-Site: none\r\n\
      Accept-Encoding: gzip, deflate, br, zstd\r\n\
      Accept-Language: en-US,en;q=0.9\r\n\r\n"
        .to_vec()
}

fn whep_post() -> Vec<u8> {
    let mut sdp = String::from(
        "v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
         a=group:BUNDLE 0 1\r\na=extmap-allow-mixed\r\na=msid-semantic: WMS\r\n",
    );
    let mut i = 0;
    while sdp.len() < 4096 - 64 {
        sdp.push_str(&format!(
            "a=candidate:{i} 1 udp 2122260223 192.168.1.{} 5{i:04} typ host generation 0\r\n",
            i % 250
        ));
        i += 1;
    }
    while sdp.len() < 4096 {
        sdp.push_str("a=x\r\n");
    }
    sdp.truncate(4096);
    let mut req = format!(
        "POST /whep/live/cam1 HTTP/1.1\r\nHost: media.example.com\r\n\
         Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.e30.ZRrHA1JJJW8opsbCGfG_HACGpVUMN_a9IV7pAx_Zmeo\r\n\
         Content-Type: application/sdp\r\nAccept: application/sdp\r\nContent-Length: {}\r\n\r\n",
        sdp.len()
    )
    .into_bytes();
    req.extend_from_slice(sdp.as_bytes());
    req
}

fn pipelined_gets() -> Vec<u8> {
    (0..16)
        .flat_map(|i| {
            format!("GET /hls/cam1/seg{i}.ts HTTP/1.1\r\nHost: media.example.com\r\n\r\n")
                .into_bytes()
        })
        .collect()
}

fn parse_all(mut buf: BytesMut) -> usize {
    let mut parser = RequestParser::new(Limits::default());
    let mut n = 0;
    while let Ok(Some(req)) = parser.parse(&mut buf) {
        black_box(&req);
        n += 1;
    }
    n
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("http_parse");
    for (name, input, expected) in [
        ("browser_get", browser_get(), 1),
        ("whep_post_4k_sdp", whep_post(), 1),
        ("pipelined_16_gets", pipelined_gets(), 16),
    ] {
        assert_eq!(parse_all(BytesMut::from(&input[..])), expected, "{name}");
        group.throughput(Throughput::Bytes(input.len() as u64));
        group.bench_function(name, |b| {
            b.iter_batched(
                || BytesMut::from(&input[..]),
                |buf| black_box(parse_all(black_box(buf))),
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
