//! Fuzzes the HTTP/1.1 request parser (input split into two feeds at a data-derived
//! point), the `Origin` rules on what it parses, and the WebSocket session.
#![no_main]

use bytes::BytesMut;
use corecast::http::proto::{Limits, RequestParser};
use corecast::http::ws::WsSession;
use libfuzzer_sys::fuzz_target;

/// The browser-boundary rules on a parsed request: a same-origin or listed origin is
/// allowed, and the API's CORS answer never allows credentials nor names an origin that
/// is not listed.
fn origin_rules(req: &corecast::http::proto::Request) {
    use corecast::http::origin::{OriginKind, Scheme, api_cors, classify};
    use corecast::http::proto::Response;
    let allow = ["http://a.example".to_owned()];
    for scheme in [Scheme::Http, Scheme::Https] {
        let kind = classify(req, &allow, scheme);
        let r = api_cors(Response::new(200), req, &allow, scheme);
        let acao = r
            .headers
            .iter()
            .find(|(n, _)| n == "Access-Control-Allow-Origin");
        assert_eq!(acao.is_some(), matches!(kind, OriginKind::Listed(_)));
        assert!(r.headers.iter().all(|(n, _)| !n.contains("Credentials")));
    }
}

fuzz_target!(|data: &[u8]| {
    let split = data
        .first()
        .map_or(0, |&b| usize::from(b) % (data.len() + 1));
    let (first, second) = data.split_at(split);

    // Small limits so the limit paths are reachable.
    let limits = Limits {
        max_header_bytes: 2048,
        max_headers: 16,
        max_body_bytes: 4096,
    };
    let mut parser = RequestParser::new(limits);
    let mut buf = BytesMut::new();
    let mut fed = 0usize;
    let mut requests = 0usize;
    let mut body_bytes = 0usize;
    'feeds: for part in [first, second] {
        buf.extend_from_slice(part);
        fed += part.len();
        loop {
            let _ = parser.take_expect_continue();
            match parser.parse(&mut buf) {
                Ok(Some(req)) => {
                    requests += 1;
                    body_bytes += req.body.len();
                    assert!(requests <= fed, "{requests} requests from {fed} bytes");
                    assert!(
                        body_bytes <= fed,
                        "{body_bytes} body bytes from {fed} bytes"
                    );
                    assert!(req.body.len() <= limits.max_body_bytes);
                    assert!(req.headers.len() <= limits.max_headers);
                    let _ = (req.keep_alive(), req.wants_upgrade("websocket"));
                    let _ = corecast::http::ws::accept_key(&req);
                    origin_rules(&req);
                }
                Ok(None) => break,
                Err(e) => {
                    assert!(matches!(e.status(), 400 | 413 | 431 | 501 | 505));
                    break 'feeds;
                }
            }
        }
        assert!(buf.len() <= fed);
    }

    let mut ws = WsSession::new(1024);
    ws.handle_input(first);
    ws.handle_input(second);
    for _ in 0..=data.len() {
        match ws.poll_message() {
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => break,
        }
    }
    let _ = ws.send_text("x".to_owned());
    ws.close();
    let _ = ws.take_output();
});
