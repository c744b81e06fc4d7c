#!/usr/bin/env python3
"""Checks a running corecast against its OpenAPI description (src/http/admin/openapi.json).

Run by tests/openapi.rs, which starts the server (a file source `demo`, an RTMP publisher
on `live/pub`, a WHEP viewer of `demo`, `[auth]` with the users below) and passes what
the script needs as arguments. The script:

1. validates the description itself (openapi-spec-validator) and checks that the server
   serves exactly that file at /api/v1/openapi.json;
2. makes requests to every endpoint, the successes and the errors (400, 401, 403, 404,
   405, 406, 409, 415, 426, 429, 502), and validates each request/response pair with
   openapi-core (status described, content type, body schema, required headers);
3. checks every 405's `Allow` against the methods the description lists for that path.

Exits non-zero naming each failing request and the schema error. A 501 answer means the
endpoint is still a stub: it is a failure, listed apart so it is easy to tell from a
mismatch.
"""

import argparse
import base64
import http.client
import json
import re
import socket
import sys
import threading
import time
import urllib.parse

from openapi_core import Config, OpenAPI
from openapi_core.datatypes import RequestParameters
from openapi_spec_validator import validate as validate_spec
from werkzeug.datastructures import Headers, ImmutableMultiDict

TIMEOUT = 20


# --- the description's paths ------------------------------------------------------------


class Router:
    """Finds the description's path template for a request path. A `{path}` parameter is
    the rest of the URL (it spans segments, as the description says); others are one
    segment."""

    def __init__(self, spec):
        self.exact = {p for p in spec["paths"] if "{" not in p}
        self.templates = []
        for p in spec["paths"]:
            if "{" not in p:
                continue
            rx = ""
            for part in re.split(r"(\{[^}]+\})", p):
                if part.startswith("{"):
                    name = part[1:-1]
                    rx += f"(?P<{name}>.+)" if name == "path" else f"(?P<{name}>[^/]+)"
                else:
                    rx += re.escape(part)
            self.templates.append((p.count("{"), p, re.compile(rx + "$")))
        self.templates.sort()

    def find(self, path):
        if path in self.exact:
            return path, {}
        for _, template, rx in self.templates:
            m = rx.match(path)
            if m:
                return template, m.groupdict()
        return None, {}


class Req:
    """A request as openapi-core reads it (its Request and SupportsPathPattern protocols)."""

    def __init__(self, host_url, method, path, query, headers, body, pattern, params):
        self.host_url = host_url
        self.path = path
        self.path_pattern = pattern
        self.method = method.lower()
        self.body = body or b""
        self.content_type = (headers.get("Content-Type") or "").lower()
        self.parameters = RequestParameters(
            query=ImmutableMultiDict(urllib.parse.parse_qsl(query or "")),
            header=Headers(headers),
            cookie=ImmutableMultiDict(),
            path=params,
        )


class Resp:
    """A response as openapi-core reads it."""

    def __init__(self, status, headers, data):
        self.status_code = status
        self.headers = Headers(headers)
        self.content_type = (self.headers.get("Content-Type") or "").lower()
        self.data = data


# --- the checks ----------------------------------------------------------------------------


class Checker:
    def __init__(self, spec, base):
        self.spec = spec
        # An SDP body (WHEP) is text, as text/plain is; a merge patch is JSON.
        extra = {
            "application/sdp": lambda b, **_: b.decode("utf-8", errors="replace"),
            "application/merge-patch+json": lambda b, **_: json.loads(b),
        }
        self.api = OpenAPI.from_dict(spec, config=Config(extra_media_type_deserializers=extra))
        self.router = Router(spec)
        u = urllib.parse.urlsplit(base)
        self.host, self.port = u.hostname, u.port
        self.host_url = f"http://{self.host}:{self.port}"
        self.failures = []
        self.stubs = []
        self.count = 0
        self.seen = set()

    def raw(self, method, target, headers=None, body=None, source=None):
        """One request on its own connection; (status, headers list, body bytes)."""
        c = http.client.HTTPConnection(
            self.host, self.port, timeout=TIMEOUT,
            source_address=(source, 0) if source else None)
        h = {"Host": f"{self.host}:{self.port}", "Connection": "close"}
        h.update(headers or {})
        if body is not None:
            h.setdefault("Content-Length", str(len(body)))
        c.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
        for k, v in h.items():
            c.putheader(k, v)
        c.endheaders(body)
        r = c.getresponse()
        data = r.read() if method != "HEAD" else b""
        out = (r.status, r.getheaders(), data)
        c.close()
        return out

    def call(self, case, method, target, expect, headers=None, body=None, source=None,
             valid_request=True):
        """Sends a request, checks its status is `expect` (an int or a set) and validates
        the pair against the description. `valid_request`: the request itself should match
        the description (false for deliberately malformed ones: only the response is
        checked). Returns (status, headers, body)."""
        self.count += 1
        headers = dict(headers or {})
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            headers.setdefault("Content-Type", "application/json")
        elif isinstance(body, str):
            body = body.encode()
        name = f"{method} {target} ({case})"
        try:
            status, rh, data = self.raw(method, target, headers, body, source)
        except OSError as e:
            self.fail(name, f"request failed: {e}")
            return None, [], b""
        expected = expect if isinstance(expect, (set, frozenset)) else {expect}
        if status == 501:
            self.stubs.append(f"{name}: 501 {data.decode(errors='replace').strip()}")
            return status, rh, data
        if status not in expected:
            self.fail(name, f"status {status}, expected {sorted(expected)}: "
                      f"{data[:300].decode(errors='replace').strip()}")
        path, _, query = target.partition("?")
        pattern, params = self.router.find(path)
        if pattern is None:
            self.fail(name, f"no path of the description matches {path}")
            return status, rh, data
        self.seen.add((pattern, method.lower(), status))
        if routed_by_admin(pattern, method):
            h = Headers(rh)
            if "no-store" not in (h.get("Cache-Control") or ""):
                self.fail(name, f"{status} without Cache-Control: no-store "
                          f"(got {h.getlist('Cache-Control')})")
            if "origin" not in (h.get("Vary") or "").lower():
                self.fail(name, f"{status} without Vary: Origin")
        req = Req(self.host_url, method, path, query, headers, body, pattern, params)
        if valid_request:
            try:
                self.api.validate_request(req)
            except Exception as e:  # noqa: BLE001 - reported with its schema errors
                self.fail(name, "request does not match the description: " + explain(e))
        try:
            self.api.validate_response(req, Resp(status, rh, data))
        except Exception as e:  # noqa: BLE001
            self.fail(name, f"response {status} does not match the description: " + explain(e))
        return status, rh, data

    def fail(self, name, msg):
        self.failures.append(f"{name}: {msg}")

    def method_not_allowed(self, method, target, expect_json):
        """A 405: `Allow` lists exactly the description's methods of the path (and
        OPTIONS), the body is the description's MethodNotAllowed content."""
        self.count += 1
        name = f"{method} {target} (method not allowed)"
        status, rh, data = self.raw(method, target)
        if status != 405:
            self.fail(name, f"status {status}, expected 405")
            return
        headers = Headers(rh)
        path = target.partition("?")[0]
        pattern, _ = self.router.find(path)
        described = {m.upper() for m in self.spec["paths"].get(pattern, {})
                     if m != "parameters" and not m.startswith("x-")}
        allow = {m.strip() for m in (headers.get("Allow") or "").split(",") if m.strip()}
        if allow != described:
            self.fail(name, f"Allow {sorted(allow)} but the description lists {sorted(described)} for {pattern}")
        if routed_by_admin(pattern, method):
            if "no-store" not in (headers.get("Cache-Control") or ""):
                self.fail(name, "405 without Cache-Control: no-store")
            if "origin" not in (headers.get("Vary") or "").lower():
                self.fail(name, "405 without Vary: Origin")
        ct = (headers.get("Content-Type") or "").split(";")[0].strip()
        want = "application/json" if expect_json else "text/plain"
        if ct != want:
            self.fail(name, f"Content-Type {ct!r}, expected {want}")
        content = self.spec["components"]["responses"]["MethodNotAllowed"]["content"]
        if ct not in content:
            self.fail(name, f"MethodNotAllowed does not describe {ct}")
        elif ct == "application/json":
            from jsonschema import Draft202012Validator
            schema = dict(self.spec["components"]["schemas"]["Error"])
            try:
                doc = json.loads(data)
                errs = list(Draft202012Validator(schema).iter_errors(doc))
            except ValueError as e:
                errs = [e]
            for e in errs:
                self.fail(name, f"body does not match Error: {getattr(e, 'message', e)}")


def routed_by_admin(pattern, method):
    """Whether src/http/admin.rs answers it: everything under /api/v1/ but the stream
    list's GET and HEAD and health. Those answers all carry `Cache-Control: no-store` and
    `Vary: Origin`, refusals and preflights included."""
    if not pattern.startswith("/api/v1/") or pattern == "/api/v1/health":
        return False
    return not (pattern == "/api/v1/streams" and method in ("GET", "HEAD"))


def short(text, n=200):
    text = str(text)
    return text if len(text) <= n else text[:n] + "..."


def explain(e):
    """An openapi-core error with its schema errors, on one line each."""
    parts = [f"{type(e).__name__}: {short(e)}"]
    seen = set()
    cur = e
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        for se in getattr(cur, "schema_errors", None) or []:
            where = "/".join(str(p) for p in se.absolute_path) or "(root)"
            parts.append(f"at {where}: {short(se.message)}")
        cur = cur.__cause__ or cur.__context__
        if cur is not None and cur is not e and not getattr(cur, "schema_errors", None):
            parts.append(f"{type(cur).__name__}: {short(cur)}")
    return " | ".join(parts)


# --- a stand-in camera for the probe -------------------------------------------------------

SDP = (
    "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=stand-in\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\n"
    "m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n"
    "a=fmtp:96 packetization-mode=1;profile-level-id=42e01f;"
    "sprop-parameter-sets=Z0LgH9oBQBbpUgAAAwACAAADAGQeMGVA,aM4yyA==\r\na=control:trackID=1\r\n"
    "m=audio 0 RTP/AVP 97\r\na=rtpmap:97 MPEG4-GENERIC/48000/2\r\n"
    "a=fmtp:97 streamtype=5;profile-level-id=1;mode=AAC-hbr;config=1190;sizelength=13;"
    "indexlength=3;indexdeltalength=3\r\na=control:trackID=2\r\n"
)


def describe_server():
    """A listener that answers RTSP OPTIONS and DESCRIBE with a fixed SDP (what a probe
    asks of a camera), until the process ends. Returns its port."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)

    def serve(conn):
        conn.settimeout(TIMEOUT)
        buf = b""
        try:
            while True:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                buf += chunk
                while b"\r\n\r\n" in buf:
                    head, buf = buf.split(b"\r\n\r\n", 1)
                    lines = head.decode(errors="replace").split("\r\n")
                    method, url = lines[0].split(" ")[:2]
                    cseq = next((ln.split(":", 1)[1].strip() for ln in lines
                                 if ln.lower().startswith("cseq:")), "1")
                    if method == "DESCRIBE":
                        body = SDP.encode()
                        out = (f"RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\nServer: stand-in camera\r\n"
                               f"Content-Base: {url}/\r\nContent-Type: application/sdp\r\n"
                               f"Content-Length: {len(body)}\r\n\r\n").encode() + body
                    elif method == "OPTIONS":
                        out = (f"RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\nServer: stand-in camera\r\n"
                               "Public: OPTIONS, DESCRIBE, SETUP, PLAY, TEARDOWN\r\n\r\n").encode()
                    else:
                        out = f"RTSP/1.0 405 Method Not Allowed\r\nCSeq: {cseq}\r\n\r\n".encode()
                    conn.sendall(out)
        except OSError:
            return
        finally:
            conn.close()

    def accept():
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    return srv.getsockname()[1]


# --- the requests --------------------------------------------------------------------------


def basic(user, password):
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def ws_upgrade(ck, headers, target="/ws"):
    """A WebSocket upgrade of `target`; the status line the server answers."""
    key = base64.b64encode(b"0123456789abcdef").decode()
    h = {"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
         "Sec-WebSocket-Key": key}
    h.update(headers)
    s = socket.create_connection((ck.host, ck.port), timeout=TIMEOUT)
    req = f"GET {target} HTTP/1.1\r\nHost: {ck.host}:{ck.port}\r\n"
    req += "".join(f"{k}: {v}\r\n" for k, v in h.items()) + "\r\n"
    s.sendall(req.encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = s.recv(4096)
        if not chunk:
            break
        head += chunk
    s.close()
    return head.split(b"\r\n", 1)[0].decode(errors="replace"), h


def upgraded(ck, target, pattern, params):
    """A WebSocket upgrade of `target` must be answered 101, which the description (the
    operation at `pattern` with `params`) must allow."""
    line, h = ws_upgrade(ck, {}, target)
    ck.count += 1
    if " 101 " not in line + " ":
        ck.fail(f"GET {target} (upgrade)", f"answered {line!r}")
        return
    ck.seen.add((pattern, "get", 101))
    ck.api.validate_response(
        Req(ck.host_url, "GET", target, "", h, b"", pattern, params),
        Resp(101, [("Upgrade", "websocket"), ("Connection", "Upgrade")], b""))


def run(ck, a):
    sdp_offer = open(a.offer).read()
    obs = basic("obs", "s3cret")
    jwt = {"Authorization": "Bearer " + a.jwt}
    other = "127.0.0.2"

    # The page.
    ck.call("page", "GET", "/", 200)
    ck.call("page", "GET", "/index.html", 200)
    ck.call("page head", "HEAD", "/", 200)
    ck.call("page head", "HEAD", "/index.html", 200)
    ck.call("preflight", "OPTIONS", "/", 204)
    ck.call("preflight", "OPTIONS", "/index.html", 204)

    # Operations.
    ck.call("health", "GET", "/api/v1/health", 200)
    ck.call("health head", "HEAD", "/api/v1/health", 200)
    ck.call("preflight", "OPTIONS", "/api/v1/health", 204)
    ck.call("metrics", "GET", "/metrics", 200)
    ck.call("metrics head", "HEAD", "/metrics", 200)
    ck.call("preflight", "OPTIONS", "/metrics", 204)
    _, _, served = ck.call("description", "GET", "/api/v1/openapi.json", 200)
    try:
        if json.loads(served) != ck.spec:
            ck.fail("GET /api/v1/openapi.json", "the server serves another description than the file")
    except ValueError as e:
        ck.fail("GET /api/v1/openapi.json", f"not JSON: {e}")
    ck.call("description head", "HEAD", "/api/v1/openapi.json", 200)
    ck.call("preflight", "OPTIONS", "/api/v1/openapi.json", 204)

    # Streams: the list and one stream, a configured file source and a publisher.
    _, _, body = ck.call("list", "GET", "/api/v1/streams", 200)
    try:
        paths = {s["path"] for s in json.loads(body)["streams"]}
        for p in ("demo", "live/pub"):
            if p not in paths:
                ck.fail("GET /api/v1/streams", f"{p} is not listed: {sorted(paths)}")
    except (ValueError, KeyError, TypeError) as e:
        ck.fail("GET /api/v1/streams", f"unreadable list: {e}")
    ck.call("list head", "HEAD", "/api/v1/streams", 200)
    ck.call("preflight", "OPTIONS", "/api/v1/streams", 204)
    ck.call("file source", "GET", "/api/v1/streams/demo", 200)
    ck.call("publisher", "GET", "/api/v1/streams/live/pub", 200)
    ck.call("percent-encoded path", "GET", "/api/v1/streams/live%2Fpub", 200)
    ck.call("head", "HEAD", "/api/v1/streams/demo", 200)
    ck.call("unknown stream", "GET", "/api/v1/streams/no/such/stream", 404)
    ck.call("unknown stream head", "HEAD", "/api/v1/streams/no/such/stream", 404)
    ck.call("preflight", "OPTIONS", "/api/v1/streams/demo", 204)

    added = {"path": "api/added", "source": "file:" + a.media}
    ck.call("add", "POST", "/api/v1/streams", 201, body=added)
    ck.call("path exists", "POST", "/api/v1/streams", 409, body=added)
    ck.call("path published", "POST", "/api/v1/streams", 409,
            body={"path": "live/pub", "source": "file:" + a.media})
    ck.call("unsupported source", "POST", "/api/v1/streams", 400,
            body={"path": "api/bad", "source": "gopher://x"})
    ck.call("missing path", "POST", "/api/v1/streams", 400, body={"source": "file:" + a.media},
            valid_request=False)
    ck.call("unknown key", "POST", "/api/v1/streams", 400,
            body={"path": "api/bad", "colour": "blue"}, valid_request=False)
    ck.call("not JSON", "POST", "/api/v1/streams", 400, body="{not json",
            headers={"Content-Type": "application/json"}, valid_request=False)
    ck.call("wrong content type", "POST", "/api/v1/streams", 415, body="path=x",
            headers={"Content-Type": "application/x-www-form-urlencoded"}, valid_request=False)
    ck.call("foreign page", "POST", "/api/v1/streams", 403, body={"path": "api/evil"},
            headers={"Origin": "http://evil.example"})
    ck.call("added", "GET", "/api/v1/streams/api/added", 200)
    ck.call("add a path for publishers", "POST", "/api/v1/streams", 201,
            body={"path": "api/keyed", "publish_key": "k"})
    ck.call("configured, not published", "GET", "/api/v1/streams/api/keyed", 200)
    ck.call("remove it", "DELETE", "/api/v1/streams/api%2Fkeyed", 200)
    ck.call("change", "PATCH", "/api/v1/streams/api/added", 200,
            body=json.dumps({"shard": 1}),
            headers={"Content-Type": "application/merge-patch+json"})
    ck.call("change as JSON", "PATCH", "/api/v1/streams/api%2Fadded", 200,
            body={"shard": None})
    ck.call("change the path", "PATCH", "/api/v1/streams/api/added", 400, body={"path": "api/other"})
    ck.call("bad value", "PATCH", "/api/v1/streams/api/added", 400, body={"transport": "carrier-pigeon"},
            valid_request=False)
    ck.call("not JSON", "PATCH", "/api/v1/streams/api/added", 400, body="{",
            headers={"Content-Type": "application/merge-patch+json"}, valid_request=False)
    ck.call("wrong content type", "PATCH", "/api/v1/streams/api/added", 415, body="x",
            headers={"Content-Type": "text/plain"}, valid_request=False)
    ck.call("unknown stream", "PATCH", "/api/v1/streams/no/such", 404, body={"publish_key": "k"})
    ck.call("remove", "DELETE", "/api/v1/streams/api/added", 200)
    ck.call("removed", "DELETE", "/api/v1/streams/api/added", 404)

    # Config reload: the file as it is, then a broken file (rejected), then restored.
    ck.call("preflight", "OPTIONS", "/api/v1/config/reload", 204)
    ck.call("reload", "POST", "/api/v1/config/reload", 200)
    good = open(a.config).read()
    try:
        with open(a.config, "w") as f:
            f.write(good + "\n[runtime]\nshards = \"many\"\n")
        ck.call("file with an error", "POST", "/api/v1/config/reload", 400)
    finally:
        with open(a.config, "w") as f:
            f.write(good)
    ck.call("reload restored", "POST", "/api/v1/config/reload", 200)

    # Probe: a stand-in camera that answers DESCRIBE, a closed port, bad bodies.
    cam = describe_server()
    ck.call("preflight", "OPTIONS", "/api/v1/probe", 204)
    ck.call("camera answers", "POST", "/api/v1/probe", 200,
            body={"url": f"rtsp://127.0.0.1:{cam}/stream", "transport": "tcp"})
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    ck.call("camera refuses", "POST", "/api/v1/probe", 502, body={"url": f"rtsp://127.0.0.1:{port}/x"})
    ck.call("not an RTSP URL", "POST", "/api/v1/probe", 400, body={"url": "http://127.0.0.1/x"})
    ck.call("no url", "POST", "/api/v1/probe", 400, body={"user": "u"}, valid_request=False)
    ck.call("body over 64 KiB", "POST", "/api/v1/probe", 413,
            body={"url": "rtsp://127.0.0.1/" + "a" * (65 * 1024)})
    ck.call("wrong content type", "POST", "/api/v1/probe", 415, body="url",
            headers={"Content-Type": "text/plain"}, valid_request=False)

    # WHEP: an offer answered, ended by DELETE, another ended through the sessions API.
    ck.call("preflight", "OPTIONS", "/whep/demo", 204)
    status, rh, _ = ck.call("offer", "POST", "/whep/demo", 201, body=sdp_offer,
                            headers={"Content-Type": "application/sdp"})
    location = Headers(rh).get("Location") if status == 201 else None
    ck.call("trickle", "PATCH", "/whep/demo", 405, body="a=candidate:x",
            headers={"Content-Type": "application/trickle-ice-sdpfrag"})
    ck.call("not SDP", "POST", "/whep/demo", 415, body="{}",
            headers={"Content-Type": "application/json"}, valid_request=False)
    ck.call("bad SDP", "POST", "/whep/demo", 400, body="v=0\r\n",
            headers={"Content-Type": "application/sdp"})
    no_codec = re.sub(r"H264/90000", "VP9/90000", sdp_offer)
    no_codec = re.sub(r"opus/48000/2", "G722/8000", no_codec, flags=re.I)
    ck.call("no common codec", "POST", "/whep/demo", 406, body=no_codec,
            headers={"Content-Type": "application/sdp"})
    ck.call("unknown stream", "POST", "/whep/no/such", 404, body=sdp_offer,
            headers={"Content-Type": "application/sdp"})
    if location:
        ck.call("end", "DELETE", location, 200)
        ck.call("ended", "DELETE", location, 404)
    ck.call("unknown session", "DELETE", "/whep/demo/0000000000000000", 404)

    # Sessions: the publisher, the viewer; one WHEP session ended through the API.
    _, _, before = ck.call("list", "GET", "/api/v1/sessions", 200)
    ck.call("list head", "HEAD", "/api/v1/sessions", 200)
    ck.call("preflight", "OPTIONS", "/api/v1/sessions", 204)
    ck.call("preflight", "OPTIONS", "/api/v1/sessions/1", 204)
    status, rh, _ = ck.call("offer to end", "POST", "/whep/demo", 201, body=sdp_offer,
                            headers={"Content-Type": "application/sdp"})
    _, _, after = ck.call("list with the new viewer", "GET", "/api/v1/sessions", 200)
    try:
        old = {s["id"] for s in json.loads(before)["sessions"]}
        new = [s for s in json.loads(after)["sessions"] if s["id"] not in old
               and s.get("protocol") == "webrtc"]
        kinds = {(s.get("protocol"), s.get("kind")) for s in json.loads(after)["sessions"]}
        for want in (("rtmp", "publisher"), ("webrtc", "viewer")):
            if want not in kinds:
                ck.fail("GET /api/v1/sessions", f"no {want} session listed: {sorted(map(str, kinds))}")
        if not new:
            ck.fail("GET /api/v1/sessions", "the new WHEP viewer is not listed")
        else:
            sid = urllib.parse.quote(new[0]["id"], safe="")
            ck.call("kick", "DELETE", f"/api/v1/sessions/{sid}", 204)
            # The kick is asked of the session's shard: it leaves the list shortly after.
            gone = wait_gone(ck, new[0]["id"])
            if not gone:
                ck.fail(f"DELETE /api/v1/sessions/{sid}", "the kicked session is still listed after 5 s")
            ck.call("kicked", "DELETE", f"/api/v1/sessions/{sid}", 404)
    except (ValueError, KeyError, TypeError) as e:
        if not ck.stubs:
            ck.fail("GET /api/v1/sessions", f"unreadable list: {e}")
    ck.call("unknown session", "DELETE", "/api/v1/sessions/999999999", 404)
    ck.call("malformed id", "DELETE", "/api/v1/sessions/not-a-session-id", 400)

    # The WebSocket endpoint.
    ck.call("no upgrade", "GET", "/ws", 426)
    ck.call("no upgrade head", "HEAD", "/ws", 426)
    ck.call("preflight", "OPTIONS", "/ws", 204)
    upgraded(ck, "/ws", "/ws", {})
    upgrade = {"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
               "Sec-WebSocket-Key": "MDEyMzQ1Njc4OWFiY2RlZg=="}
    ck.call("foreign page", "GET", "/ws", 403, headers=dict(upgrade, Origin="http://evil.example"))

    # The MSE endpoint: the same upgrade, for one stream.
    ck.call("mse no upgrade", "GET", "/mse/demo", 426)
    ck.call("mse no upgrade head", "HEAD", "/mse/demo", 426)
    ck.call("mse preflight", "OPTIONS", "/mse/demo", 204)
    ck.call("mse no such stream", "GET", "/mse/no/such/stream", 404, headers=upgrade)
    ck.call("mse foreign page", "GET", "/mse/demo", 403,
            headers=dict(upgrade, Origin="http://evil.example"))
    ck.call("mse bad upgrade", "GET", "/mse/demo", 400,
            headers=dict(upgrade, **{"Sec-WebSocket-Key": "short"}))
    upgraded(ck, "/mse/demo", "/mse/{path}", {"path": "demo"})

    # Access: another address without credentials, with each kind of credentials, a user
    # without `api`, and the failed-attempt limit.
    for target in ("/api/v1/streams", "/api/v1/health", "/api/v1/sessions",
                   "/api/v1/openapi.json", "/api/v1/streams/demo", "/metrics"):
        ck.call("no credentials", "GET", target, 401, source=other)
    ck.call("no credentials", "POST", "/api/v1/streams", 401, body={"path": "api/x"}, source=other)
    ck.call("no credentials", "POST", "/whep/demo", 401, body=sdp_offer,
            headers={"Content-Type": "application/sdp"}, source=other)
    ck.call("no credentials", "POST", "/api/v1/config/reload", 401, source=other)
    ck.call("basic", "GET", "/api/v1/sessions", 200, headers=obs, source=other)
    ck.call("bearer JWT", "GET", "/api/v1/health", 200, headers=jwt, source=other)
    ck.call("token query", "GET", "/api/v1/streams?token=" + a.jwt, 200, source=other)
    ck.call("basic", "GET", "/metrics", 200, headers=obs, source=other)
    ck.call("read only", "GET", "/api/v1/sessions", 403, headers=basic("viewer", "v"), source=other)
    ck.call("read only", "GET", "/metrics", 403, headers=basic("viewer", "v"), source=other)
    ck.call("read only", "DELETE", "/api/v1/streams/demo", 403, headers=basic("viewer", "v"),
            source=other)
    blocked = False
    for i in range(30):
        status, _, _ = ck.call("wrong password", "GET", "/api/v1/health", {401, 429},
                               headers=basic("obs", f"wrong{i}"), source="127.0.0.3")
        if status == 429:
            blocked = True
            break
    if not blocked:
        ck.fail("GET /api/v1/health (wrong password)", "never answered 429 after 30 failed attempts")

    # Methods a resource does not allow.
    for method, target, as_json in (
        ("PUT", "/api/v1/streams/demo", True),
        ("PUT", "/api/v1/streams", True),
        ("DELETE", "/api/v1/sessions", True),
        ("GET", "/api/v1/sessions/1", True),
        ("GET", "/api/v1/config/reload", True),
        ("GET", "/api/v1/probe", True),
        ("DELETE", "/api/v1/openapi.json", True),
        ("POST", "/api/v1/health", False),
        ("POST", "/metrics", False),
        ("POST", "/", False),
        ("DELETE", "/index.html", False),
        ("POST", "/ws", False),
        ("POST", "/mse/demo", False),
        ("PUT", "/whep/demo", False),
    ):
        ck.method_not_allowed(method, target, as_json)


def wait_gone(ck, sid):
    """Waits (at most 5 s) until session `sid` is no longer listed."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        status, _, body = ck.raw("GET", "/api/v1/sessions")
        try:
            if status == 200 and all(s["id"] != sid for s in json.loads(body)["sessions"]):
                return True
        except (ValueError, KeyError, TypeError):
            return False
        time.sleep(0.05)
    return False


def coverage(ck):
    """Every operation of the description was exercised."""
    for path, item in ck.spec["paths"].items():
        for method, op in item.items():
            if method == "parameters":
                continue
            done = {s for (p, m, s) in ck.seen if p == path and m == method}
            if not done and not any(s.startswith(f"{method.upper()} ") for s in ck.stubs):
                ck.fail(f"{method.upper()} {path}", "the description has it but no request reached it")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--spec", required=True)
    p.add_argument("--base", required=True, help="http://127.0.0.1:PORT")
    p.add_argument("--offer", required=True, help="a file with a WebRTC SDP offer")
    p.add_argument("--jwt", required=True, help="a JWT with api, read and metrics")
    p.add_argument("--config", required=True, help="the server's config file")
    p.add_argument("--media", required=True, help="an FLV file for a file source")
    a = p.parse_args()
    spec = json.load(open(a.spec))
    try:
        validate_spec(spec)
    except Exception as e:  # noqa: BLE001
        print(f"FAIL the description is not valid OpenAPI: {e}")
        return 1
    print(f"the description is valid OpenAPI {spec['openapi']}")
    ck = Checker(spec, a.base)
    started = time.monotonic()
    run(ck, a)
    coverage(ck)
    print(f"{ck.count} requests in {time.monotonic() - started:.1f} s; "
          f"{len(ck.failures)} mismatches, {len(ck.stubs)} answered by a stub (501)")
    for f in ck.failures:
        print(f"FAIL {f}")
    for s in ck.stubs:
        print(f"STUB {s}")
    return 1 if ck.failures or ck.stubs else 0


if __name__ == "__main__":
    sys.exit(main())
