#!/usr/bin/python3
"""An RTSP camera stand-in for the integration tests (GStreamer's RTSP server).

Serves live test video (H.264 or H.265) and audio (AAC, PCMA, PCMU or Opus) on
127.0.0.1, optionally behind Basic or Digest authentication:

    /usr/bin/python3 tests/camera/rtsp_camera.py --port 0 --video h264 --audio aac

Prints exactly one line `READY rtsp://127.0.0.1:<port><mount>` on stdout once it
listens (the first mount when there are several), then runs until SIGTERM or SIGINT
(exit 0). Every RTSP connection is logged on stderr as `CLIENT connected <ip:port>` and
`CLIENT closed <ip:port>`, each PLAY as `CLIENT play <ip:port> <path>`, each TEARDOWN
as `CLIENT teardown <ip:port>`. Errors go to
stderr with a non-zero exit code: 2 bad usage or missing GStreamer element, 3 Python
GObject bindings or the GstRtspServer typelib missing, 4 address already in use.

Run it with Debian's /usr/bin/python3: python3-gi is installed for that interpreter only.
"""

import argparse
import os
import signal
import sys
import threading

EXIT_USAGE = 2
EXIT_NO_GI = 3
EXIT_ADDR_IN_USE = 4

INSTALL_HINT = (
    "install python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-base "
    "gstreamer1.0-plugins-good gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly "
    "gstreamer1.0-libav (tests/run.sh does)"
)

try:
    import gi

    gi.require_version("Gst", "1.0")
    gi.require_version("GstRtsp", "1.0")
    gi.require_version("GstRtspServer", "1.0")
    from gi.repository import Gio, GLib, Gst, GstRtsp, GstRtspServer
except (ImportError, ValueError) as e:  # ValueError: typelib not found
    print(f"rtsp_camera: {e}; run with /usr/bin/python3 and {INSTALL_HINT}", file=sys.stderr)
    sys.exit(EXIT_NO_GI)


def log(line):
    print(line, file=sys.stderr, flush=True)


def die(msg, code=1):
    log(f"rtsp_camera: {msg}")
    sys.exit(code)


def parse_size(s):
    try:
        w, h = (int(x) for x in s.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must be WIDTHxHEIGHT, not {s!r}")
    if w <= 0 or h <= 0 or w % 2 or h % 2:
        raise argparse.ArgumentTypeError(f"size must be positive and even, not {s!r}")
    return w, h


def parse_args(argv):
    p = argparse.ArgumentParser(description="RTSP camera stand-in (GStreamer RTSP server)")
    p.add_argument("--port", type=int, default=8554, help="TCP port, 0 picks a free one")
    p.add_argument("--address", default="127.0.0.1", help="address to listen on")
    p.add_argument("--mount", action="append", default=[],
                   help="mount path, repeatable (default /cam)")
    p.add_argument("--mounts", type=int, default=0,
                   help="serve N independent mounts /cam0 .. /cam<N-1> instead")
    p.add_argument("--video", choices=["h264", "h265"], default="h264")
    p.add_argument("--audio", choices=["none", "aac", "pcma", "pcmu", "opus"], default="aac")
    p.add_argument("--size", type=parse_size, default=(640, 360), help="WIDTHxHEIGHT")
    p.add_argument("--fps", type=int, default=25)
    p.add_argument("--bitrate", type=int, default=1000, help="video bitrate in kbit/s")
    p.add_argument("--audio-bitrate", type=int, default=0,
                   help="AAC or Opus bitrate in kbit/s (default: AAC 128, Opus 64)")
    p.add_argument("--pattern", default="ball", help="videotestsrc pattern (ball, smpte, ...)")
    p.add_argument("--protocols", choices=["tcp", "udp", "both"], default="both",
                   help="RTP transports offered: interleaved TCP, UDP unicast, or both")
    p.add_argument("--auth", choices=["none", "basic", "digest"], default="none")
    p.add_argument("--user", default="user")
    p.add_argument("--password", default="pass")
    p.add_argument("--realm", default=None, help="authentication realm")
    p.add_argument("--exit-on-stdin-eof", action="store_true",
                   help="exit when stdin reaches end of file (the parent went away)")
    a = p.parse_args(argv)
    if not 0 <= a.port <= 65535:
        p.error("--port must be 0..65535")
    if a.fps <= 0 or a.fps > 240:
        p.error("--fps must be 1..240")
    if a.bitrate <= 0:
        p.error("--bitrate must be positive")
    if not 0 <= a.audio_bitrate <= 512:
        p.error("--audio-bitrate must be 1..512 kbit/s")
    if a.mounts < 0 or (a.mounts and a.mount):
        p.error("use either --mount (repeatable) or --mounts N")
    if a.mounts:
        a.mount = [f"/cam{i}" for i in range(a.mounts)]
    elif not a.mount:
        a.mount = ["/cam"]
    for m in a.mount:
        if not m.startswith("/") or len(m) < 2 or any(c.isspace() for c in m):
            p.error(f"mount must look like /name, not {m!r}")
    if len(set(a.mount)) != len(a.mount):
        p.error("mounts must be distinct")
    return a


def require(*names):
    for n in names:
        if Gst.ElementFactory.find(n) is None:
            die(f"GStreamer element {n} is missing; {INSTALL_HINT}", EXIT_USAGE)


def first_available(*names):
    for n in names:
        if Gst.ElementFactory.find(n) is not None:
            return n
    require(names[0])  # dies


def video_branch(a):
    w, h = a.size
    gop = 2 * a.fps
    src = (f"videotestsrc is-live=true pattern={a.pattern} "
           f"! video/x-raw,format=I420,width={w},height={h},framerate={a.fps}/1 ")
    require("videotestsrc", "videoconvert")
    if Gst.ElementFactory.find("timeoverlay") is not None:
        src += "! timeoverlay ! "
    else:
        src += "! "
    src += "videoconvert ! video/x-raw,format=I420 ! "
    if a.video == "h264":
        require("x264enc", "rtph264pay")
        # threads=1: one slice per frame, as most cameras send.
        enc = (f"x264enc tune=zerolatency speed-preset=ultrafast bitrate={a.bitrate} "
               f"key-int-max={gop} bframes=0 threads=1 "
               "! video/x-h264,profile=constrained-baseline,stream-format=byte-stream "
               "! rtph264pay name=pay0 pt=96 config-interval=-1 ")
    else:
        require("x265enc", "rtph265pay")
        enc = (f"x265enc tune=zerolatency speed-preset=ultrafast bitrate={a.bitrate} "
               f"key-int-max={gop} "
               'option-string="bframes=0:open-gop=0:frame-threads=1:pools=2:log-level=error" '
               "! video/x-h265,stream-format=byte-stream "
               "! rtph265pay name=pay0 pt=96 config-interval=-1 ")
    return src + enc


def audio_branch(a):
    if a.audio == "none":
        return ""
    rate, channels = {"aac": (48000, 2), "opus": (48000, 2), "pcma": (8000, 1),
                      "pcmu": (8000, 1)}[a.audio]
    require("audiotestsrc", "audioconvert", "audioresample")
    src = (f"audiotestsrc is-live=true wave=sine freq=440 volume=0.3 "
           f"samplesperbuffer={rate // 50} "
           f"! audioconvert ! audioresample ! audio/x-raw,rate={rate},channels={channels} ! ")
    if a.audio == "aac":
        enc = first_available("avenc_aac", "voaacenc")
        require("rtpmp4gpay")
        kbps = a.audio_bitrate or 128
        return src + f"{enc} bitrate={kbps * 1000} ! rtpmp4gpay name=pay1 pt=97 "
    if a.audio == "opus":
        require("opusenc", "rtpopuspay")
        kbps = a.audio_bitrate or 64
        return src + f"opusenc bitrate={kbps * 1000} ! rtpopuspay name=pay1 pt=97 "
    if a.audio == "pcma":
        require("alawenc", "rtppcmapay")
        return src + "alawenc ! rtppcmapay name=pay1 pt=8 "
    require("mulawenc", "rtppcmupay")
    return src + "mulawenc ! rtppcmupay name=pay1 pt=0 "


def launch_line(a):
    return video_branch(a) + audio_branch(a)


def peer_of(client):
    conn = client.get_connection()
    if conn is None:
        return "?"
    ip = conn.get_ip() or "?"
    port = "?"
    try:
        port = conn.get_read_socket().get_remote_address().get_port()
    except (AttributeError, GLib.Error, TypeError):
        pass
    return f"{ip}:{port}"


def on_client_connected(_server, client):
    peer = peer_of(client)
    log(f"CLIENT connected {peer}")
    client.connect("closed", lambda _c: log(f"CLIENT closed {peer}"))

    def on_play(_c, ctx):
        path = "?"
        try:
            path = ctx.uri.abspath
        except AttributeError:
            pass
        log(f"CLIENT play {peer} {path}")

    client.connect("play-request", on_play)
    client.connect("teardown-request", lambda _c, _ctx: log(f"CLIENT teardown {peer}"))


def make_auth(a):
    if a.auth == "none":
        return None
    auth = GstRtspServer.RTSPAuth()
    if a.realm:
        auth.set_realm(a.realm)
    token = GstRtspServer.RTSPToken()
    token.set_string(GstRtspServer.RTSP_TOKEN_MEDIA_FACTORY_ROLE, "camera-user")
    if a.auth == "basic":
        auth.set_supported_methods(GstRtsp.RTSPAuthMethod.BASIC)
        auth.add_basic(GstRtspServer.RTSPAuth.make_basic(a.user, a.password), token)
    else:
        auth.set_supported_methods(GstRtsp.RTSPAuthMethod.DIGEST)
        auth.add_digest(a.user, a.password, token)
    # No default token: anonymous requests get 401.
    return auth


def main(argv):
    a = parse_args(argv)
    Gst.init(None)

    launch = launch_line(a)
    # The factory only builds the pipeline when a client asks; catch mistakes now.
    try:
        probe = Gst.parse_launch(launch)
        probe.set_state(Gst.State.NULL)
    except GLib.Error as e:
        die(f"bad pipeline ({e.message}): {launch}", EXIT_USAGE)

    server = GstRtspServer.RTSPServer()
    server.set_address(a.address)
    server.set_service(str(a.port))
    server.set_backlog(64)
    auth = make_auth(a)
    if auth is not None:
        server.set_auth(auth)

    protocols = {
        "tcp": GstRtsp.RTSPLowerTrans.TCP,
        "udp": GstRtsp.RTSPLowerTrans.UDP,
        "both": GstRtsp.RTSPLowerTrans.UDP | GstRtsp.RTSPLowerTrans.TCP,
    }[a.protocols]
    mounts = server.get_mount_points()
    for m in a.mount:
        factory = GstRtspServer.RTSPMediaFactory()  # one per mount: they share nothing
        factory.set_launch(f"( {launch})")
        factory.set_shared(True)
        factory.set_protocols(protocols)
        if auth is not None:
            factory.add_role_from_structure(Gst.Structure.new_from_string(
                "camera-user, media.factory.access=(boolean)true, "
                "media.factory.construct=(boolean)true"))
        mounts.add_factory(m, factory)

    server.connect("client-connected", on_client_connected)

    try:
        source = server.create_source(None)
    except GLib.Error as e:
        in_use = e.matches(Gio.io_error_quark(), Gio.IOErrorEnum.ADDRESS_IN_USE)
        die(f"cannot listen on {a.address}:{a.port}: {e.message}",
            EXIT_ADDR_IN_USE if in_use else 1)
    source.attach(None)
    port = server.get_bound_port()

    loop = GLib.MainLoop()

    def stop(*_):
        loop.quit()
        return GLib.SOURCE_REMOVE

    GLib.unix_signal_add(GLib.PRIORITY_HIGH, signal.SIGTERM, stop)
    GLib.unix_signal_add(GLib.PRIORITY_HIGH, signal.SIGINT, stop)
    if a.exit_on_stdin_eof:
        def watch_stdin():
            try:
                while os.read(0, 4096):
                    pass
            except OSError:
                pass
            GLib.idle_add(stop)

        threading.Thread(target=watch_stdin, daemon=True).start()

    print(f"READY rtsp://{a.address}:{port}{a.mount[0]}", flush=True)
    loop.run()
    # Quick, quiet exit: tearing down running pipelines buys the tests nothing.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main(sys.argv[1:])
