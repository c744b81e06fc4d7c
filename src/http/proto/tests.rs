use super::*;

fn parser() -> RequestParser {
    RequestParser::new(Limits::default())
}

fn parse_one(bytes: &[u8]) -> Result<Option<Request>, HttpError> {
    let mut buf = BytesMut::from(bytes);
    parser().parse(&mut buf)
}

fn parse_ok(bytes: &[u8]) -> Request {
    match parse_one(bytes) {
        Ok(Some(req)) => req,
        other => panic!("expected a request, got {other:?}"),
    }
}

fn parse_err(bytes: &[u8]) -> HttpError {
    match parse_one(bytes) {
        Err(e) => e,
        other => panic!("expected an error, got {other:?}"),
    }
}

/// Feeds `bytes` one at a time, collecting every request.
fn feed_bytewise(p: &mut RequestParser, bytes: &[u8]) -> Vec<Request> {
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for &b in bytes {
        buf.extend_from_slice(&[b]);
        while let Some(req) = p.parse(&mut buf).expect("valid input") {
            out.push(req);
        }
    }
    assert!(buf.is_empty(), "left over: {buf:?}");
    out
}

#[test]
fn simple_get() {
    let req = parse_ok(b"GET /index.html HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\r\n");
    assert_eq!(req.method, "GET");
    assert_eq!(req.path, "/index.html");
    assert_eq!(req.query, None);
    assert_eq!(req.minor_version, 1);
    assert_eq!(
        req.headers,
        vec![
            ("Host".to_owned(), "example.com".to_owned()),
            ("Accept".to_owned(), "*/*".to_owned())
        ]
    );
    assert!(req.body.is_empty());
}

#[test]
fn consumes_exactly_one_request() {
    let mut buf = BytesMut::from(&b"GET / HTTP/1.1\r\nHost: a\r\n\r\nGET /x HT"[..]);
    let mut p = parser();
    let req = p.parse(&mut buf).unwrap().unwrap();
    assert_eq!(req.path, "/");
    assert_eq!(&buf[..], b"GET /x HT");
    assert_eq!(p.parse(&mut buf), Ok(None));
    buf.extend_from_slice(b"TP/1.1\r\n\r\n");
    assert_eq!(p.parse(&mut buf).unwrap().unwrap().path, "/x");
    assert!(buf.is_empty());
}

#[test]
fn query_split() {
    let req = parse_ok(b"GET /whep/live?token=abc&x=1 HTTP/1.1\r\n\r\n");
    assert_eq!(req.path, "/whep/live");
    assert_eq!(req.query.as_deref(), Some("token=abc&x=1"));

    let req = parse_ok(b"GET /a? HTTP/1.1\r\n\r\n");
    assert_eq!((req.path.as_str(), req.query.as_deref()), ("/a", Some("")));

    let req = parse_ok(b"GET /a#frag HTTP/1.1\r\n\r\n");
    assert_eq!((req.path.as_str(), req.query.as_deref()), ("/a", None));

    let req = parse_ok(b"GET HTTP://example.com:8080/p/q?z=9 HTTP/1.1\r\n\r\n");
    assert_eq!(
        (req.path.as_str(), req.query.as_deref()),
        ("/p/q", Some("z=9"))
    );

    let req = parse_ok(b"GET https://example.com?z HTTP/1.1\r\n\r\n");
    assert_eq!((req.path.as_str(), req.query.as_deref()), ("/", Some("z")));

    let req = parse_ok(b"OPTIONS * HTTP/1.1\r\n\r\n");
    assert_eq!(req.path, "*");

    for bad in [
        &b"GET * HTTP/1.1\r\n\r\n"[..],
        b"GET http:///x HTTP/1.1\r\n\r\n",
        b"GET example.com:80 HTTP/1.1\r\n\r\n",
        b"GET index.html HTTP/1.1\r\n\r\n",
    ] {
        assert!(
            matches!(parse_err(bad), HttpError::BadRequest(_)),
            "{bad:?}"
        );
    }
}

#[test]
fn headers_case_insensitive() {
    let req = parse_ok(
            b"GET / HTTP/1.1\r\ncontent-TYPE: application/sdp\r\nX-Dup: 1\r\nx-dup: 2\r\nX-Pad:  \t v \t \r\n\r\n",
        );
    assert_eq!(req.header("Content-Type"), Some("application/sdp"));
    assert_eq!(req.header("CONTENT-type"), Some("application/sdp"));
    assert_eq!(req.header("x-dup"), Some("1"));
    assert_eq!(req.header("x-pad"), Some("v"));
    assert_eq!(req.header("missing"), None);
}

#[test]
fn non_utf8_and_duplicate_host_rejected() {
    assert!(matches!(
        parse_err(b"GET / HTTP/1.1\r\nX: \xff\xfe\r\n\r\n"),
        HttpError::BadRequest(_)
    ));
    assert_eq!(
        parse_err(b"GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n"),
        HttpError::BadRequest("duplicate Host")
    );
}

#[test]
fn keep_alive_rules() {
    let cases: &[(&[u8], bool)] = &[
        (b"GET / HTTP/1.1\r\n\r\n", true),
        (b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n", false),
        (
            b"GET / HTTP/1.1\r\nConnection: Keep-Alive, CLOSE\r\n\r\n",
            false,
        ),
        (
            b"GET / HTTP/1.1\r\nConnection: keep-alive, Upgrade\r\n\r\n",
            true,
        ),
        (b"GET / HTTP/1.0\r\n\r\n", false),
        (b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", true),
        (
            b"GET / HTTP/1.0\r\nConnection: Upgrade, Keep-Alive\r\n\r\n",
            true,
        ),
        (
            b"GET / HTTP/1.0\r\nConnection: upgrade\r\nConnection: keep-alive\r\n\r\n",
            true,
        ),
        (
            b"GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n",
            false,
        ),
        (b"GET / HTTP/1.0\r\nConnection: keep-alivex\r\n\r\n", false),
    ];
    for (bytes, expected) in cases {
        assert_eq!(parse_ok(bytes).keep_alive(), *expected, "{bytes:?}");
    }
}

#[test]
fn upgrade_detection() {
    let req = parse_ok(
        b"GET /ws HTTP/1.1\r\nConnection: keep-alive, Upgrade\r\nUpgrade: WebSocket\r\n\r\n",
    );
    assert!(req.wants_upgrade("websocket"));
    assert!(!req.wants_upgrade("h2c"));
    let req =
        parse_ok(b"GET / HTTP/1.1\r\nConnection: upgrade\r\nUpgrade: h2c, websocket/13\r\n\r\n");
    assert!(req.wants_upgrade("websocket"));
    assert!(req.wants_upgrade("h2c"));
    let req = parse_ok(b"GET / HTTP/1.1\r\nUpgrade: websocket\r\n\r\n");
    assert!(!req.wants_upgrade("websocket"));
}

#[test]
fn pipelined_requests_in_order() {
    let mut buf = BytesMut::from(
        &b"GET /one HTTP/1.1\r\nHost: a\r\n\r\n\
               POST /two HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello\
               POST /three HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"[..],
    );
    let mut p = parser();
    let one = p.parse(&mut buf).unwrap().unwrap();
    let two = p.parse(&mut buf).unwrap().unwrap();
    let three = p.parse(&mut buf).unwrap().unwrap();
    assert_eq!(p.parse(&mut buf), Ok(None));
    assert!(buf.is_empty());
    assert_eq!((one.path.as_str(), &one.body[..]), ("/one", &b""[..]));
    assert_eq!((two.path.as_str(), &two.body[..]), ("/two", &b"hello"[..]));
    assert_eq!(
        (three.path.as_str(), &three.body[..]),
        ("/three", &b"abc"[..])
    );
}

#[test]
fn byte_by_byte_content_length() {
    let input = b"POST /whip HTTP/1.1\r\nContent-Type: application/sdp\r\nContent-Length: 11\r\n\r\nv=0\r\no=- 1\r\nGET /next HTTP/1.1\r\n\r\n";
    let reqs = feed_bytewise(&mut parser(), input);
    assert_eq!(reqs.len(), 2);
    assert_eq!(&reqs[0].body[..], b"v=0\r\no=- 1\r");
    // The "\n" after the 11 body bytes starts the next request as an empty line.
    assert_eq!(reqs[1].path, "/next");
}

#[test]
fn byte_by_byte_chunked() {
    let input = b"POST /up HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n\
                      5;name=val\r\nhello\r\n1A\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nX-Trailer: 1\r\n\r\n\
                      GET /after HTTP/1.1\r\n\r\n";
    let reqs = feed_bytewise(&mut parser(), input);
    assert_eq!(reqs.len(), 2);
    assert_eq!(&reqs[0].body[..], b"helloabcdefghijklmnopqrstuvwxyz");
    assert_eq!(reqs[1].path, "/after");
}

#[test]
fn chunked_extensions_and_trailers() {
    let req = parse_ok(
            b"POST / HTTP/1.1\r\nTransfer-Encoding: Chunked\r\n\r\n\
              4 ;a=b;c=\"d e\"\r\nWiki\r\n000005\t; x\r\npedia\r\n0;last\r\nExpires: never\r\nX-Sum: 42\r\n\r\n",
        );
    assert_eq!(&req.body[..], b"Wikipedia");
    assert_eq!(req.header("expires"), None, "trailers are skipped");
}

#[test]
fn malformed_chunked_rejected() {
    let head = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
    for body in [
        &b"zz\r\n"[..],
        b"\r\n",
        b"5x\r\nhello\r\n0\r\n\r\n",
        b"5\nhello\r\n0\r\n\r\n",
        b"5\r\nhelloXX0\r\n\r\n",
        b"5;a\rb\r\nhello\r\n0\r\n\r\n",
        b"0\r\nno-colon-trailer\r\n\r\n",
        b"0\r\nX: 1\n\r\n",
    ] {
        let mut input = head.to_vec();
        input.extend_from_slice(body);
        assert!(
            matches!(parse_err(&input), HttpError::BadRequest(_)),
            "{body:?}"
        );
    }
    let mut input = head.to_vec();
    input.extend_from_slice(&[b'1'; MAX_CHUNK_LINE]);
    assert!(matches!(parse_err(&input), HttpError::BadRequest(_)));
}

#[test]
fn oversize_headers_complete() {
    let mut input = b"GET / HTTP/1.1\r\nX-Big: ".to_vec();
    input.extend(std::iter::repeat_n(b'a', 17 * 1024));
    input.extend_from_slice(b"\r\n\r\n");
    assert_eq!(parse_err(&input), HttpError::HeadersTooLarge);
    assert_eq!(HttpError::HeadersTooLarge.status(), 431);
}

#[test]
fn oversize_headers_incomplete() {
    let limits = Limits::default();
    let mut p = parser();
    let mut buf = BytesMut::from(&b"GET / HTTP/1.1\r\nX-Big: "[..]);
    assert_eq!(p.parse(&mut buf), Ok(None));
    let mut fed = buf.len();
    let mut result = Ok(None);
    while fed < 20 * 1024 {
        buf.extend_from_slice(&[b'a'; 512]);
        fed += 512;
        result = p.parse(&mut buf);
        if result.is_err() {
            break;
        }
    }
    assert_eq!(result, Err(HttpError::HeadersTooLarge));
    assert!(fed < limits.max_header_bytes + 512, "reported late: {fed}");

    // Endless empty lines count too.
    let mut p = parser();
    let mut buf = BytesMut::new();
    let mut result = Ok(None);
    for _ in 0..(limits.max_header_bytes / 2 + 1) {
        buf.extend_from_slice(b"\r\n");
        result = p.parse(&mut buf);
        if result.is_err() {
            break;
        }
    }
    assert_eq!(result, Err(HttpError::HeadersTooLarge));
}

#[test]
fn too_many_headers() {
    let mut input = b"GET / HTTP/1.1\r\n".to_vec();
    for i in 0..65 {
        input.extend_from_slice(format!("X-H{i}: v\r\n").as_bytes());
    }
    input.extend_from_slice(b"\r\n");
    let e = parse_err(&input);
    assert_eq!(e, HttpError::TooManyHeaders);
    assert_eq!(e.status(), 431);

    let mut input = b"GET / HTTP/1.1\r\n".to_vec();
    for i in 0..64 {
        input.extend_from_slice(format!("X-H{i}: v\r\n").as_bytes());
    }
    input.extend_from_slice(b"\r\n");
    assert_eq!(parse_ok(&input).headers.len(), 64);
}

#[test]
fn content_length_over_limit_before_body() {
    let mut p = parser();
    let mut buf = BytesMut::from(&b"POST / HTTP/1.1\r\nContent-Length: 1048577\r\n\r\n"[..]);
    let e = p.parse(&mut buf).unwrap_err();
    assert_eq!(e, HttpError::BodyTooLarge);
    assert_eq!(e.status(), 413);
    assert_eq!(
        parse_err(b"POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999999\r\n\r\n"),
        HttpError::BodyTooLarge
    );
    // Exactly at the limit is fine (waits for the body).
    assert_eq!(
        parse_one(b"POST / HTTP/1.1\r\nContent-Length: 1048576\r\n\r\n"),
        Ok(None)
    );
}

#[test]
fn chunked_over_limit() {
    let limits = Limits {
        max_body_bytes: 8,
        ..Limits::default()
    };
    let mut p = RequestParser::new(limits);
    // Rejected from the chunk size alone, before its data arrives.
    let mut buf = BytesMut::from(
        &b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n4\r\n"[..],
    );
    assert_eq!(p.parse(&mut buf), Err(HttpError::BodyTooLarge));

    let mut p = RequestParser::new(limits);
    let mut buf = BytesMut::from(
            &b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n4\r\nefgh\r\n0\r\n\r\n"[..],
        );
    assert_eq!(&p.parse(&mut buf).unwrap().unwrap().body[..], b"abcdefgh");

    assert_eq!(
        parse_err(
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffffffffff\r\n"
        ),
        HttpError::BodyTooLarge
    );
}

#[test]
fn bad_content_length() {
    for cl in [
        &b"abc"[..],
        b"-1",
        b"+5",
        b"0x10",
        b"5 5",
        b"",
        b"5,",
        b"5, 6",
    ] {
        let mut input = b"POST / HTTP/1.1\r\nContent-Length: ".to_vec();
        input.extend_from_slice(cl);
        input.extend_from_slice(b"\r\n\r\nhello");
        assert!(
            matches!(parse_err(&input), HttpError::BadRequest(_)),
            "{cl:?}"
        );
    }
    assert_eq!(
        parse_err(b"POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!"),
        HttpError::BadRequest("conflicting Content-Length")
    );
    // Identical duplicates are accepted (RFC 9112 §6.3).
    let req =
        parse_ok(b"POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 5, 5\r\n\r\nhello");
    assert_eq!(&req.body[..], b"hello");
    assert_eq!(HttpError::BadRequest("x").status(), 400);
}

#[test]
fn content_length_and_transfer_encoding() {
    assert!(matches!(
        parse_err(
            b"POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
        ),
        HttpError::BadRequest(_)
    ));
    assert!(matches!(
        parse_err(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n"),
        HttpError::BadRequest(_)
    ));
    assert!(matches!(
        parse_err(b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
        HttpError::BadRequest(_)
    ));
    assert!(matches!(
        parse_err(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked, chunked\r\n\r\n"),
        HttpError::BadRequest(_)
    ));
    assert!(matches!(
        parse_err(b"POST / HTTP/1.1\r\nTransfer-Encoding: ,\r\n\r\n"),
        HttpError::BadRequest(_)
    ));
}

#[test]
fn unsupported_transfer_coding() {
    for te in [
        &b"gzip"[..],
        b"gzip, chunked",
        b"chunked, gzip",
        b"identity",
    ] {
        let mut input = b"POST / HTTP/1.1\r\nTransfer-Encoding: ".to_vec();
        input.extend_from_slice(te);
        input.extend_from_slice(b"\r\n\r\n");
        let e = parse_err(&input);
        assert_eq!(e, HttpError::NotImplemented, "{te:?}");
        assert_eq!(e.status(), 501);
    }
}

#[test]
fn unsupported_versions() {
    for input in [
        &b"GET / HTTP/2.0\r\n\r\n"[..],
        b"GET / HTTP/1.2\r\n\r\n",
        b"GET / HTTP/3\r\n\r\n",
        b"GET / HTTP/2", // detected before the line is complete
    ] {
        let e = parse_err(input);
        assert_eq!(e, HttpError::VersionNotSupported, "{input:?}");
        assert_eq!(e.status(), 505);
    }
    assert!(matches!(
        parse_err(b"GET / HTTX/1.1\r\n\r\n"),
        HttpError::BadRequest(_)
    ));
    assert!(matches!(
        parse_err(b"GET / HTTP/x\r\n\r\n"),
        HttpError::BadRequest(_)
    ));
}

#[test]
fn garbage_rejected() {
    for input in [
        &b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"[..], // TLS ClientHello
        b"\x00\x01\x02garbage\r\n\r\n",
        b"GET\r\n\r\n",
        b"GET /\r\n\r\n",
        b"GET / HTTP/1.1 extra\r\n\r\n",
        b"GET  / HTTP/1.1\r\n\r\n",
        b"G(T / HTTP/1.1\r\n\r\n",
        b"GET / HTTP/1.1\r\nNo colon here\r\n\r\n",
        b"GET / HTTP/1.1\r\nName : value\r\n\r\n",
        b"GET / HTTP/1.1\r\n folded: x\r\n\r\n",
        b"GET / HTTP/1.1\r\nX: a\rb\r\n\r\n",
        b"GET / HTTP/1.1\rX\r\n\r\n",
        b"\rGET / HTTP/1.1\r\n\r\n",
        b"GET /a\x7fb HTTP/1.1\r\n\r\n",
    ] {
        assert!(
            matches!(parse_err(input), HttpError::BadRequest(_)),
            "{input:?}"
        );
    }
}

#[test]
fn garbage_detected_early() {
    // No line end yet, but the first bytes cannot start a request line.
    let mut p = parser();
    let mut buf = BytesMut::from(&b"\x16\x03\x01"[..]);
    assert!(matches!(p.parse(&mut buf), Err(HttpError::BadRequest(_))));
}

#[test]
fn leading_empty_lines_ignored() {
    let req = parse_ok(b"\r\n\r\nGET /a HTTP/1.1\r\n\r\n");
    assert_eq!(req.path, "/a");
    let req = parse_ok(b"\nGET /b HTTP/1.1\n\n");
    assert_eq!(req.path, "/b");

    let mut p = parser();
    let mut buf = BytesMut::from(&b"\r"[..]);
    assert_eq!(p.parse(&mut buf), Ok(None));
    buf.extend_from_slice(b"\nGET /c HTTP/1.1\r\n\r\n");
    assert_eq!(p.parse(&mut buf).unwrap().unwrap().path, "/c");

    // A CRLF after a complete request (some clients send one after a POST body).
    let mut buf = BytesMut::from(
        &b"POST / HTTP/1.1\r\nContent-Length: 1\r\n\r\nx\r\nGET /d HTTP/1.1\r\n\r\n"[..],
    );
    let mut p = parser();
    assert_eq!(&p.parse(&mut buf).unwrap().unwrap().body[..], b"x");
    assert_eq!(p.parse(&mut buf).unwrap().unwrap().path, "/d");
}

#[test]
fn expect_continue() {
    let mut p = parser();
    let mut buf = BytesMut::from(
        &b"POST /whip HTTP/1.1\r\nExpect: 100-Continue\r\nContent-Length: 4\r\n\r\n"[..],
    );
    assert!(!p.take_expect_continue());
    assert_eq!(p.parse(&mut buf), Ok(None));
    assert!(p.take_expect_continue());
    assert!(!p.take_expect_continue(), "only once");
    assert_eq!(p.parse(&mut buf), Ok(None));
    assert!(!p.take_expect_continue());
    buf.extend_from_slice(b"v=0\n");
    assert_eq!(&p.parse(&mut buf).unwrap().unwrap().body[..], b"v=0\n");
    assert!(!p.take_expect_continue());

    // Body already complete: nothing to continue.
    let mut p = parser();
    let mut buf = BytesMut::from(
        &b"POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\nx"[..],
    );
    assert!(p.parse(&mut buf).unwrap().is_some());
    assert!(!p.take_expect_continue());

    // Chunked, and ignored for HTTP/1.0 and for bodiless requests.
    let mut p = parser();
    let mut buf = BytesMut::from(
        &b"POST / HTTP/1.1\r\nExpect: 100-continue\r\nTransfer-Encoding: chunked\r\n\r\n"[..],
    );
    assert_eq!(p.parse(&mut buf), Ok(None));
    assert!(p.take_expect_continue());
    for input in [
        &b"POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n"[..],
        b"GET / HTTP/1.1\r\nExpect: 100-continue\r\n\r\n",
    ] {
        let mut p = parser();
        let mut buf = BytesMut::from(input);
        let _ = p.parse(&mut buf).unwrap();
        assert!(!p.take_expect_continue(), "{input:?}");
    }
}

#[test]
fn parser_reusable_after_error() {
    let mut p = parser();
    let mut buf = BytesMut::from(&b"BAD\x01\r\n\r\n"[..]);
    assert!(p.parse(&mut buf).is_err());
    let mut buf = BytesMut::from(&b"GET /ok HTTP/1.1\r\n\r\n"[..]);
    assert_eq!(p.parse(&mut buf).unwrap().unwrap().path, "/ok");
}

#[test]
fn mutated_inputs_never_panic() {
    let seeds: [&[u8]; 3] = [
        b"GET /a?b HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
        b"POST / HTTP/1.1\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\nabc",
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3;x\r\nabc\r\n0\r\nT: 1\r\n\r\n",
    ];
    let limits = Limits {
        max_header_bytes: 256,
        max_headers: 4,
        max_body_bytes: 64,
    };
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut rnd = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x as usize
    };
    for round in 0..20_000 {
        let mut d = seeds[round % seeds.len()].to_vec();
        for _ in 0..1 + rnd() % 4 {
            let i = rnd() % (d.len() + 1);
            match rnd() % 4 {
                0 if i < d.len() => d[i] = rnd() as u8,
                1 => d.insert(i, b"\r\n:; 0f"[rnd() % 7]),
                2 if i < d.len() => drop(d.remove(i)),
                _ => d.truncate(i),
            }
        }
        let mut p = RequestParser::new(limits);
        let mut buf = BytesMut::new();
        let (a, b) = d.split_at(rnd() % (d.len() + 1));
        let mut bodies = 0;
        'feeds: for part in [a, b] {
            buf.extend_from_slice(part);
            loop {
                match p.parse(&mut buf) {
                    Ok(Some(req)) => {
                        bodies += req.body.len();
                        assert!(bodies <= d.len() && req.body.len() <= 64);
                    }
                    Ok(None) => break,
                    Err(_) => break 'feeds,
                }
            }
        }
    }
}

fn written(resp: &Response, keep_alive: bool, head_request: bool) -> String {
    let mut out = BytesMut::new();
    resp.write(&mut out, keep_alive, head_request);
    String::from_utf8(out.to_vec()).unwrap()
}

#[test]
fn response_text() {
    let resp = Response::text(404, "no such stream");
    assert_eq!(
        written(&resp, true, false),
        "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain; charset=utf-8\r\n\
             Content-Length: 15\r\nConnection: keep-alive\r\n\r\nno such stream\n"
    );
    assert_eq!(
        written(&resp, false, true),
        "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain; charset=utf-8\r\n\
             Content-Length: 15\r\nConnection: close\r\n\r\n"
    );
}

#[test]
fn response_json_and_headers() {
    let resp = Response::json(201, "{\"id\":1}".to_owned())
        .header("Location", "/whep/1")
        .header("content-length", "999")
        .header("Connection", "close")
        .header("X-Evil", "a\r\nSet-Cookie: x")
        .header("Bad Name", "v");
    assert_eq!(
        written(&resp, true, false),
        "HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nLocation: /whep/1\r\n\
             Content-Length: 8\r\nConnection: keep-alive\r\n\r\n{\"id\":1}"
    );
    let resp = Response::new(200)
        .body("text/plain", "a")
        .body("application/sdp", "v=0\r\n");
    assert_eq!(
        written(&resp, false, false),
        "HTTP/1.1 200 OK\r\nContent-Type: application/sdp\r\nContent-Length: 5\r\n\
             Connection: close\r\n\r\nv=0\r\n"
    );
}

#[test]
fn response_bodiless_statuses() {
    assert_eq!(
        written(
            &Response::new(204).body("text/plain", "ignored"),
            true,
            false
        ),
        "HTTP/1.1 204 No Content\r\nContent-Type: text/plain\r\nConnection: keep-alive\r\n\r\n"
    );
    assert_eq!(
        written(&Response::new(304), false, false),
        "HTTP/1.1 304 Not Modified\r\nConnection: close\r\n\r\n"
    );
    let upgrade = Response::new(101)
        .header("Upgrade", "websocket")
        .header("Connection", "Upgrade");
    assert_eq!(
        written(&upgrade, true, false),
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
    );
    assert_eq!(
        written(&Response::new(100), true, false),
        "HTTP/1.1 100 Continue\r\n\r\n"
    );
    assert_eq!(
        written(&Response::new(200), true, false),
        "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: keep-alive\r\n\r\n"
    );
    assert_eq!(
        written(&Response::new(42), false, false),
        "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
}

#[test]
fn response_streaming_head() {
    let resp = Response::new(200)
        .header("Content-Type", "video/x-flv")
        .header("Transfer-Encoding", "chunked");
    let mut out = BytesMut::new();
    resp.write_head(&mut out, true);
    assert_eq!(
        &out[..],
        b"HTTP/1.1 200 OK\r\nContent-Type: video/x-flv\r\nTransfer-Encoding: chunked\r\n\
              Connection: keep-alive\r\n\r\n"
    );
}

#[test]
fn error_responses_and_reasons() {
    let resp = HttpError::BodyTooLarge.to_response();
    assert_eq!(resp.status, 413);
    assert_eq!(&resp.body[..], b"request body too large\n");
    for code in [
        100, 101, 200, 201, 204, 301, 304, 400, 404, 405, 406, 408, 411, 413, 415, 426, 431, 500,
        501, 503, 505,
    ] {
        assert!(!reason(code).is_empty(), "{code}");
    }
    assert_eq!(reason(299), "");
    assert_eq!(reason(431), "Request Header Fields Too Large");
}
