#!/usr/bin/env python3
"""The soak and fault suite's driver: perf/soak.sh builds corecast and corecast-load, then
runs this with the paths of the binaries and of a temp dir.

One corecast (release) with an RTSP camera (the GStreamer stand-in, path `cam`) and an
RTMP publisher (ffmpeg, path `live/pub`); WebRTC viewers (corecast-load whep) and RTMP
players (one rtmpdump process each) split between the two streams; each minute the
churning tenth of the viewers of each kind leaves and new ones join; the camera and the
publisher are killed (SIGKILL) and restarted on schedule. Every SOAK_SAMPLE seconds a row
of the server's RSS, open fds, CPU and viewers goes to samples.csv. At the end the verdict
(see check_*), a table, a PNG plot and a Markdown summary. Exit status 1 when a check fails.
"""

import json
import os
import selectors
import signal
import subprocess
import sys
import time
import urllib.request

CORECAST, LOAD, TMP, OUT, REPO = sys.argv[1:6]


def knob(name, default, kind=int):
    v = os.environ.get(name, "")
    try:
        return kind(v) if v else default
    except ValueError:
        sys.exit(f"soak: {name} must be a number, not {v!r}")


MINUTES = knob("SOAK_MINUTES", 60.0, float)
N_WEBRTC = knob("SOAK_WEBRTC", 200)
N_RTMP = knob("SOAK_RTMP", 200)
CHURN = knob("SOAK_CHURN", 10.0, float)  # % of each kind's viewers per minute
CAMERA_EVERY = knob("SOAK_CAMERA_EVERY", 300.0, float)
PUBLISHER_EVERY = knob("SOAK_PUBLISHER_EVERY", 420.0, float)
SAMPLE = knob("SOAK_SAMPLE", 10.0, float)
SHARDS = knob("SOAK_SHARDS", 2)
FPS = 25
# A library preloaded into the server only (e.g. another malloc, to tell the allocator's
# fragmentation from a leak).
PRELOAD = os.environ.get("SOAK_LD_PRELOAD", "")
# RSS growth bound after warm-up, % per hour; frames bound, % of the frames sent.
RSS_MAX_PCT_PER_H = 5.0
FRAMES_MIN_PCT = 95.0
# Open fds may exceed the baseline by this much at the end (see check_fds).
FD_MARGIN = 2
DURATION = MINUTES * 60.0
# Runs shorter than this are short: a fresh server's heap is still reaching its working
# set for its first minutes (with sources restarting every 20-25 s it grew 1.7 MiB in 3
# min, then stayed within 0.1 MiB), and a slope over a minute or two, extrapolated to an
# hour, measures that and the allocator's noise, not a leak.
SHORT = 600.0
# Warm-up: 20 % of the run or 5 minutes, whichever is smaller; half of a short run.
WARMUP = knob("SOAK_WARMUP", 0.5 * DURATION if DURATION < SHORT else min(0.2 * DURATION, 300.0), float)
# A short run checks the RSS growth over its post-warm-up part (the fitted slope times its
# length) instead: under this % of the mean. That still fails a leak that scales with the
# traffic (a few hundred bytes per frame and viewer), not one of a few KiB per minute.
SHORT_RSS_MAX_PCT = 10.0
CLK = os.sysconf("SC_CLK_TCK")
T0 = time.monotonic()


def now():
    return time.monotonic() - T0


def log(msg):
    print(f"soak [{now():7.1f} s] {msg}", file=sys.stderr, flush=True)


def free_port():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


HTTP, RTMP = free_port(), free_port()
CAM_PORT = free_port()
CAM_URL = f"rtsp://127.0.0.1:{CAM_PORT}/cam"
PATHS = ["cam", "live/pub"]
RTMP_URLS = {"cam": f"rtmp://127.0.0.1:{RTMP}/live/cam", "live/pub": f"rtmp://127.0.0.1:{RTMP}/live/pub"}


def stop(p, grace=5.0):
    """SIGTERM, up to `grace` s, then SIGKILL; returns the exit code."""
    if p is None:
        return None
    if p.poll() is None:
        try:
            p.terminate()
            p.wait(grace)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    return p.returncode


def http_json(path, timeout=3.0):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{HTTP}{path}", timeout=timeout) as r:
            return json.loads(r.read())
    except (OSError, ValueError):
        return None


# --- the server --------------------------------------------------------------------------

def server_config():
    """The temp config; per-address limits are raised when this build has them (every
    client here comes from 127.0.0.1)."""
    printed = subprocess.run([CORECAST, "--print-config"], capture_output=True, text=True).stdout
    per_ip = lambda key: f"{key} = 100000\n" if f"{key} =" in printed else ""
    return f"""[runtime]
shards = {SHARDS}
io_memory = "256KiB"
log = "info"

[http]
listen = "127.0.0.1:{HTTP}"
{per_ip("max_connections_per_ip")}
[rtmp]
listen = "127.0.0.1:{RTMP}"
{per_ip("max_connections_per_ip")}
[webrtc]
udp_port = 0
bind = "127.0.0.1"
advertised = ["127.0.0.1"]
max_sessions = 20000
{per_ip("max_sessions_per_ip")}
[[streams]]
path = "cam"
source = "{CAM_URL}"
"""


class Server:
    def __init__(self):
        cfg = os.path.join(TMP, "corecast.toml")
        with open(cfg, "w") as f:
            f.write(server_config())
        self.log_path = os.path.join(OUT, "server.log")
        self.logf = open(self.log_path, "w")
        env = dict(os.environ)
        if PRELOAD:
            env["LD_PRELOAD"] = PRELOAD
        self.p = subprocess.Popen([CORECAST, "--config", cfg], stdout=self.logf, env=env,
                                  stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.pid = self.p.pid
        self.last_ticks, self.last_t = None, None
        for _ in range(100):
            if self.p.poll() is not None:
                die(f"corecast exited {self.p.returncode} at start (see {self.log_path})")
            if http_json("/api/v1/health", 1.0):
                return
            time.sleep(0.1)
        die("corecast did not answer /api/v1/health within 10 s")

    def alive(self):
        return self.p.poll() is None

    def rss_kib(self, key="VmRSS"):
        """VmRSS, or one of its parts: RssAnon (heap, stacks, io buffers), RssFile (the
        binary's and libraries' pages as they are first touched), RssShmem."""
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
        return 0

    def fds(self):
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    def ticks(self):
        with open(f"/proc/{self.pid}/stat") as f:
            rest = f.read().rsplit(")", 1)[1].split()
        return int(rest[11]) + int(rest[12])

    def cpu_pct(self):
        """CPU % of one core since the previous call (utime+stime)."""
        t, k = time.monotonic(), self.ticks()
        pct = None
        if self.last_t is not None and t > self.last_t:
            pct = (k - self.last_ticks) / CLK / (t - self.last_t) * 100.0
        self.last_ticks, self.last_t = k, t
        return pct


# --- sources -----------------------------------------------------------------------------

class Source:
    """A source process killed and restarted on schedule; `up` holds its process's
    [start, end] intervals (run seconds)."""

    def __init__(self, name, every):
        self.name, self.every = name, every
        self.p, self.started, self.up, self.restarts = None, None, [], 0
        self.next_kill = None

    def start(self):
        self.p = subprocess.Popen(self.cmd(), stdout=self.out(), stderr=self.err(),
                                  stdin=subprocess.DEVNULL)
        self.started = now()
        if self.next_kill is None:
            self.next_kill = now() + self.every

    def end(self, sig):
        if self.p is None:
            return
        if sig == signal.SIGKILL:
            self.p.kill()
            self.p.wait()
        else:
            stop(self.p)
        self.up.append([self.started, now()])
        self.p = None

    def tick(self):
        if self.p is not None and self.p.poll() is not None:
            log(f"{self.name} exited by itself ({self.p.returncode}); restarting it")
            self.up.append([self.started, now()])
            self.p = None
            time.sleep(0.5)
            self.start()
        if self.p is not None and now() >= self.next_kill:
            log(f"fault: SIGKILL {self.name}, restarting it")
            self.end(signal.SIGKILL)
            self.restarts += 1
            self.next_kill += self.every
            self.start()

    def intervals(self):
        ivs = [list(i) for i in self.up]
        if self.p is not None:
            ivs.append([self.started, now()])
        return ivs


class Camera(Source):
    def __init__(self):
        super().__init__("camera", CAMERA_EVERY)
        self.errf = open(os.path.join(OUT, "camera.log"), "w")

    def cmd(self):
        return ["/usr/bin/python3", os.path.join(REPO, "tests/camera/rtsp_camera.py"),
                "--port", str(CAM_PORT), "--mount", "/cam", "--video", "h264",
                "--audio", "aac", "--size", "640x360", "--fps", str(FPS),
                "--bitrate", "700", "--protocols", "both"]

    def out(self):
        return subprocess.DEVNULL

    def err(self):
        return self.errf


class Publisher(Source):
    """ffmpeg: lavfi testsrc + sine, x264 zerolatency GOP 2 s, AAC, -re. Its `-progress`
    file gives the video frames it sent."""

    def __init__(self):
        super().__init__("publisher", PUBLISHER_EVERY)
        self.errf = open(os.path.join(OUT, "publisher.log"), "w")
        self.progress = []  # one progress file per run of ffmpeg

    def cmd(self):
        self.progress.append(os.path.join(TMP, f"progress{len(self.progress)}.txt"))
        return ["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-re",
                "-f", "lavfi", "-i", f"testsrc=size=640x360:rate={FPS}",
                "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100",
                "-c:v", "libx264", "-preset", "veryfast", "-tune", "zerolatency",
                "-g", str(2 * FPS), "-b:v", "700k", "-maxrate", "700k", "-bufsize", "700k",
                "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "64k",
                "-progress", self.progress[-1], "-stats_period", "0.5",
                "-f", "flv", RTMP_URLS["live/pub"]]

    def out(self):
        return subprocess.DEVNULL

    def err(self):
        return self.errf

    def frames_sent(self):
        """Video frames every run of ffmpeg reported muxed (the last report: up to 0.5 s
        old for a run that was killed)."""
        total = 0
        for path in self.progress:
            try:
                with open(path) as f:
                    last = [l for l in f.read().splitlines() if l.startswith("frame=")]
            except OSError:
                continue
            if last:
                total += int(last[-1].split("=", 1)[1] or 0)
        return total


# --- what the server received ------------------------------------------------------------

class Counters:
    """Video frames each path's source delivered, polled once a second: the camera's from
    the server (the video track's `frames` in /api/v1/streams, summed over the source's
    sessions), the publisher's from ffmpeg's own count. Also whether each path is live."""

    def __init__(self, publisher):
        self.publisher = publisher
        self.cam_total, self.cam_last = 0, 0
        self.live = {p: False for p in PATHS}
        self.live_since = {p: None for p in PATHS}
        self.live_ivs = {p: [] for p in PATHS}
        self.rtmp_paths = {}

    def poll(self):
        data = http_json("/api/v1/streams")
        if data is None:
            return
        seen = {}
        for s in data.get("streams", []):
            seen[s["path"]] = s
            self.rtmp_paths[s["path"]] = s.get("rtmp_path")
        cam = seen.get("cam")
        if cam and cam.get("source") and cam["source"].get("tracks"):
            frames = next((t["frames"] for t in cam["source"]["tracks"]
                           if t.get("codec") in ("h264", "H264")), None)
            if frames is not None:
                if frames < self.cam_last:  # a new session counts from 0
                    self.cam_last = 0
                self.cam_total += frames - self.cam_last
                self.cam_last = frames
        for p in PATHS:
            src = (seen.get(p) or {}).get("source") or {}
            live = p in seen and bool(seen[p].get("tracks")) and src.get("state", "live") == "live"
            if live and not self.live[p]:
                self.live_since[p] = now()
            if not live and self.live[p]:
                self.live_ivs[p].append([self.live_since[p], now()])
            self.live[p] = live

    def frames(self, path):
        return self.cam_total if path == "cam" else self.publisher.frames_sent()

    def intervals(self, path):
        ivs = [list(i) for i in self.live_ivs[path]]
        if self.live[path]:
            ivs.append([self.live_since[path], now()])
        return ivs


# --- RTMP players: rtmpdump processes ----------------------------------------------------

class Player:
    """One rtmpdump (live, FLV on stdout) whose video tags are counted; a stayer restarts
    it when it ends (rtmpdump ends at the publisher's UnpublishNotify, as players do)."""

    def __init__(self, idx, path, stayer):
        self.idx, self.path, self.stayer = idx, path, stayer
        self.p, self.buf, self.header = None, bytearray(), False
        self.frames, self.runs, self.exits = 0, 0, []
        self.restart_at = None

    def start(self, sel):
        self.p = subprocess.Popen(["rtmpdump", "-q", "-v", "-m", "30", "-r", RTMP_URLS[self.path],
                                   "-o", "-"], stdout=subprocess.PIPE,
                                  stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        os.set_blocking(self.p.stdout.fileno(), False)
        sel.register(self.p.stdout, selectors.EVENT_READ, self)
        self.buf, self.header, self.runs = bytearray(), False, self.runs + 1
        self.restart_at = None

    def close(self, sel, kill=True):
        if self.p is None:
            return
        sel.unregister(self.p.stdout)
        if kill:
            stop(self.p, 2.0)
        self.p.stdout.close()
        self.exits.append(self.p.wait())
        self.p = None

    def read(self, sel):
        try:
            data = os.read(self.p.stdout.fileno(), 1 << 16)
        except BlockingIOError:
            return
        if not data:
            self.close(sel, kill=False)
            self.restart_at = time.monotonic() + 0.2
            return
        self.buf += data
        self.parse()

    def parse(self):
        b, pos = self.buf, 0
        if not self.header:
            if len(b) < 13:
                return
            pos = int.from_bytes(b[5:9], "big") + 4
            self.header = True
        while len(b) - pos >= 11:
            size = int.from_bytes(b[pos + 1:pos + 4], "big")
            if len(b) - pos < 11 + size + 4:
                break
            # Video tag, AVC, NALU packet (not the sequence header): one frame.
            if b[pos] & 0x1F == 9 and size >= 2 and b[pos + 11] & 0x0F == 7 and b[pos + 12] == 1:
                self.frames += 1
            pos += 11 + size + 4
        del b[:pos]


class Players:
    def __init__(self):
        self.sel = selectors.DefaultSelector()
        self.all = []

    def add(self, path, stayer):
        pl = Player(len(self.all), path, stayer)
        self.all.append(pl)
        pl.start(self.sel)
        return pl

    def pump(self, timeout):
        for key, _ in self.sel.select(timeout):
            key.data.read(self.sel)
        t = time.monotonic()
        for pl in self.all:
            if pl.p is None and pl.restart_at is not None and t >= pl.restart_at:
                pl.start(self.sel)

    def replace(self, pls):
        """Ends the players' rtmpdump processes (SIGTERM to all at once, SIGKILL after
        2 s) and starts new ones in their slots (None: none)."""
        live = [pl for pl in pls if pl.p is not None]
        for pl in live:
            pl.p.terminate()
        deadline = time.monotonic() + 2.0
        for pl in live:
            try:
                pl.p.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pl.p.kill()
        for pl in pls:
            pl.restart_at = None
            pl.close(self.sel)
            if pls is not self.all:
                pl.start(self.sel)

    def stop_all(self):
        self.replace(self.all)


# --- WebRTC viewers: corecast-load whep --------------------------------------------------

class Whep:
    """One corecast-load whep process: `n` viewers of `path` for `duration` s."""

    def __init__(self, name, path, n, duration, ramp=25):
        self.name, self.path, self.n = name, path, n
        self.err_path = os.path.join(TMP, f"{name}.err")
        self.out_path = os.path.join(TMP, f"{name}.json")
        self.p = subprocess.Popen(
            [LOAD, "whep", "--url", f"http://127.0.0.1:{HTTP}", "--path", path,
             "--viewers", str(n), "--ramp", str(ramp), "--duration", str(max(1, int(duration))),
             "--settle", "2", "--stream-fps", str(FPS), "--rcvbuf", str(1 << 20),
             "--signal-threads", "1"],
            stdout=open(self.out_path, "w"), stderr=open(self.err_path, "w"),
            stdin=subprocess.DEVNULL)
        self.window = [None, None]
        self.frames_at = [None, None]

    def marker(self, k, counters):
        """Notes the window's start (k = 0) or end (1) once the tool printed it."""
        if self.window[k] is None:
            try:
                text = open(self.err_path).read()
            except OSError:
                return False
            if ("window start", "window end")[k] in text:
                self.window[k] = now()
                self.frames_at[k] = counters.frames(self.path)
        return self.window[k] is not None

    def result(self):
        try:
            return json.loads(open(self.out_path).read())
        except (OSError, ValueError):
            return None


# --- the run -----------------------------------------------------------------------------

CLEANUP = []


def die(msg):
    log(f"FAILED: {msg}")
    for f in CLEANUP:
        try:
            f()
        except Exception as e:  # noqa: BLE001 - best effort on the way out
            log(f"cleanup: {e}")
    sys.exit(1)


def per_stream(n):
    """`n` split between the two streams: (cam, pub)."""
    return n - n // 2, n // 2


def churners(n):
    """Viewers of a stream of `n` that leave and rejoin each minute."""
    return min(n, round(n * CHURN / 100.0))


def main():
    os.makedirs(OUT, exist_ok=True)
    signal.signal(signal.SIGTERM, lambda *_: die("terminated"))
    signal.signal(signal.SIGINT, lambda *_: die("interrupted"))
    log(f"{MINUTES:g} min, {N_WEBRTC} WebRTC viewers, {N_RTMP} RTMP players, churn {CHURN:g} %/min, "
        f"camera killed every {CAMERA_EVERY:g} s, publisher every {PUBLISHER_EVERY:g} s, "
        f"sample every {SAMPLE:g} s, {SHARDS} shards; results in {OUT}")
    server = Server()
    CLEANUP.append(lambda: stop(server.p))
    time.sleep(2)
    fd_base = server.fds()
    log(f"server pid {server.pid}: baseline {fd_base} open fds, {server.rss_kib()} KiB RSS")

    camera, publisher = Camera(), Publisher()
    CLEANUP.insert(0, lambda: camera.end(signal.SIGTERM))
    CLEANUP.insert(0, lambda: publisher.end(signal.SIGTERM))
    counters = Counters(publisher)
    camera.start()
    publisher.start()
    deadline = time.monotonic() + 60
    while not all(counters.live.values()):
        if time.monotonic() > deadline:
            die(f"sources not live within 60 s: {counters.live}")
        camera.tick()
        publisher.tick()
        time.sleep(0.5)
        counters.poll()
    log("both sources live")

    players = Players()
    CLEANUP.insert(0, players.stop_all)
    wheps = []
    CLEANUP.insert(0, lambda: [stop(w.p) for w in wheps])
    t_clients = now()
    end_at = t_clients + DURATION
    # Stayers: their window runs from the end of their ramp to the end of the run.
    stay = {}
    for path, n in zip(PATHS, per_stream(N_WEBRTC)):
        k = n - churners(n)
        if k > 0:
            w = Whep(f"whep-stay-{path.replace('/', '_')}", path, k,
                     DURATION - (k / 25.0 + 2 + 3))
            wheps.append(w)
            stay[path] = w
    rtmp_stay = []
    for path, n in zip(PATHS, per_stream(N_RTMP)):
        for i in range(n):
            pl = players.add(path, stayer=i >= churners(n))
            if pl.stayer:
                rtmp_stay.append(pl)
    churn_wheps, churn_done = [], []
    minute = 0

    def churn():
        # The new churners join, the old ones leave (most have ended their 50 s window by
        # now and printed their summary; one still running is stopped).
        nonlocal churn_wheps
        old, churn_wheps = churn_wheps, []
        for path, n in zip(PATHS, per_stream(N_WEBRTC)):
            c = churners(n)
            if c > 0:
                w = Whep(f"whep-churn{minute}-{path.replace('/', '_')}", path, c,
                         60 - c / 20.0 - 2 - 6, ramp=20)
                churn_wheps.append(w)
                wheps.append(w)
        for w in old:
            try:
                w.p.wait(3)
            except subprocess.TimeoutExpired:
                stop(w.p)
            churn_done.append(w)
        if minute > 0:
            players.replace([pl for pl in players.all if not pl.stayer])

    churn()
    rows = []
    csv = open(os.path.join(OUT, "samples.csv"), "w")
    csv.write("t_s,rss_kib,fds,cpu_pct,webrtc_sessions,viewers,rtmp_players,camera_live,publisher_live,"
              "rss_anon_kib,rss_file_kib\n")
    next_sample, next_poll, next_churn = now(), now(), t_clients + 60
    rtmp_window = [None, None]
    rtmp_frames_at = {}
    server.cpu_pct()
    while True:
        players.pump(0.1)
        t = now()
        if not server.alive():
            die(f"corecast exited {server.p.returncode} during the run (see {server.log_path})")
        if t >= next_poll:
            next_poll += 0.5
            counters.poll()
            camera.tick()
            publisher.tick()
            for w in stay.values():
                w.marker(0, counters)
                if w.window[0] is not None:
                    w.marker(1, counters)
            # RTMP stayers' window: once each has a frame, plus 3 s.
            if rtmp_window[0] is None and all(pl.frames > 0 for pl in rtmp_stay):
                rtmp_window[0] = t + 3
            if rtmp_window[0] is not None and not rtmp_frames_at and t >= rtmp_window[0]:
                rtmp_frames_at = {p: counters.frames(p) for p in PATHS}
                for pl in rtmp_stay:
                    pl.start_frames = pl.frames
                log(f"RTMP stayers' window starts ({len(rtmp_stay)} players)")
            if rtmp_window[0] is None and t > t_clients + 60:
                slow = [pl.idx for pl in rtmp_stay if pl.frames == 0]
                die(f"RTMP players without a frame after 60 s: {slow[:20]}")
        if t >= next_churn and t < end_at - 30:
            minute += 1
            next_churn += 60
            churn()
        if t >= next_sample:
            next_sample += SAMPLE
            h = http_json("/api/v1/health") or {}
            shards = h.get("shards", [])
            row = {
                "t_s": round(t, 1), "rss_kib": server.rss_kib(), "fds": server.fds(),
                "cpu_pct": server.cpu_pct(),
                "webrtc_sessions": sum(s.get("webrtc_sessions", 0) for s in shards),
                "viewers": sum(s.get("viewers", 0) for s in shards),
                "rtmp_players": sum(pl.p is not None for pl in players.all),
                "camera_live": int(counters.live["cam"]),
                "publisher_live": int(counters.live["live/pub"]),
                "rss_anon_kib": server.rss_kib("RssAnon"),
                "rss_file_kib": server.rss_kib("RssFile"),
            }
            rows.append(row)
            csv.write(",".join("" if row[k] is None else (f"{row[k]:.1f}" if isinstance(row[k], float) else str(row[k]))
                               for k in row) + "\n")
            csv.flush()
            log(f"rss {row['rss_kib']} KiB, fds {row['fds']}, cpu {row['cpu_pct'] or 0:.0f} %, "
                f"webrtc {row['webrtc_sessions']}, viewers {row['viewers']}, rtmp players {row['rtmp_players']}, "
                f"live cam={row['camera_live']} pub={row['publisher_live']}")
        stayers_done = all(w.window[1] is not None or w.p.poll() is not None for w in stay.values())
        if t >= end_at and stayers_done:
            break
        if t >= end_at + 120:
            die("the WebRTC stayers did not end their window within 120 s of the run's end")

    # The end: RTMP stayers' window closes, everything stops.
    rtmp_window[1] = now()
    rtmp_frames_end = {p: counters.frames(p) for p in PATHS}
    rtmp_got = [(pl, pl.frames - getattr(pl, "start_frames", pl.frames)) for pl in rtmp_stay]
    for w in wheps:
        if w.p.poll() is None and w not in stay.values():
            stop(w.p)
    for w in stay.values():
        try:
            w.p.wait(30)
        except subprocess.TimeoutExpired:
            stop(w.p)
    players.stop_all()
    camera.end(signal.SIGTERM)
    publisher.end(signal.SIGTERM)
    log("clients and sources stopped; waiting for the server's fds to settle")
    fd_end, settle_deadline = server.fds(), time.monotonic() + 30
    while fd_end > fd_base + FD_MARGIN and time.monotonic() < settle_deadline:
        time.sleep(1)
        fd_end = server.fds()
    rss_end = server.rss_kib()
    stop(server.p)
    report(rows, fd_base, fd_end, rss_end, server, stay, rtmp_got, rtmp_window,
           rtmp_frames_at, rtmp_frames_end, counters, camera, publisher, churn_done + churn_wheps,
           players)


# --- the verdict -------------------------------------------------------------------------

def slope_pct_per_hour(rows, warmup=None, key="rss_kib"):
    """Least-squares slope of RSS (or the part `key`) over the samples after `warmup` s
    (default: the warm-up), as % of their mean, per hour; (slope, mean KiB, samples)."""
    warmup = WARMUP if warmup is None else warmup
    pts = [(r["t_s"], r[key]) for r in rows if r["t_s"] >= rows[0]["t_s"] + warmup]
    if len(pts) < 3:
        return None, None, len(pts)
    n = len(pts)
    mx = sum(p[0] for p in pts) / n
    my = sum(p[1] for p in pts) / n
    sxx = sum((p[0] - mx) ** 2 for p in pts)
    sxy = sum((p[0] - mx) * (p[1] - my) for p in pts)
    slope = sxy / sxx if sxx else 0.0  # KiB/s
    return slope * 3600.0 / my * 100.0, my, n


def report(rows, fd_base, fd_end, rss_end, server, stay, rtmp_got, rtmp_window, rtmp_at,
           rtmp_end, counters, camera, publisher, churned, players):
    checks = []

    def check(name, ok, detail):
        checks.append((name, ok, detail))
        log(f"{'PASS' if ok else 'FAIL'} {name}: {detail}")

    slope, mean, n = slope_pct_per_hour(rows)
    span = rows[-1]["t_s"] - (rows[0]["t_s"] + WARMUP)
    if slope is None:
        check("RSS growth after warm-up", False, f"only {n} samples after the {WARMUP:.0f} s warm-up")
    elif DURATION < SHORT:
        growth = slope * span / 3600.0
        check("RSS growth after warm-up", growth < SHORT_RSS_MAX_PCT,
              f"{growth:+.2f} % over the last {span:.0f} s (short run: limit {SHORT_RSS_MAX_PCT:g} % "
              f"of the mean; least squares over {n} samples after {WARMUP:.0f} s, mean "
              f"{mean / 1024:.1f} MiB; {slope:+.1f} %/h if extrapolated)")
    else:
        check("RSS growth after warm-up", slope < RSS_MAX_PCT_PER_H,
              f"{slope:+.2f} %/h (limit {RSS_MAX_PCT_PER_H:g} %/h; least squares over {n} samples "
              f"after {WARMUP:.0f} s, mean {mean / 1024:.1f} MiB)")
    check("open fds back to baseline", fd_end <= fd_base + FD_MARGIN,
          f"{fd_end} at the end, baseline {fd_base} (margin {FD_MARGIN}), peak {max(r['fds'] for r in rows)}")

    frame_rows, worst = [], {}
    # WebRTC stayers: frames each got over its process's window vs the frames the source
    # delivered over it.
    for path, w in stay.items():
        res = w.result() or {}
        sent = (w.frames_at[1] or 0) - (w.frames_at[0] or 0) if w.frames_at[1] is not None else None
        vf = res.get("viewer_frames") or [None] * w.n
        got = [f for f in vf if f is not None]
        missing = sum(1 for f in vf if f is None) + res.get("viewers_dropped", 0)
        frame_rows.append(("WebRTC", path, w.n, len(got), missing, sent, got))
    for path in PATHS:
        got = [f for pl, f in rtmp_got if pl.path == path]
        sent = rtmp_end[path] - rtmp_at.get(path, rtmp_end[path])
        frame_rows.append(("RTMP", path, len(got), len(got), 0, sent, got))
    ok_frames, details = True, []
    for kind, path, n, k, missing, sent, got in frame_rows:
        if n == 0:
            continue
        if not sent or not got:
            ok_frames = False
            details.append(f"{kind} {path}: no window (sent {sent}, {len(got)} viewers counted)")
            continue
        lo = min(got)
        pct = lo / sent * 100.0
        worst[(kind, path)] = (lo, sent, pct, missing, n)
        ok_frames &= pct >= FRAMES_MIN_PCT and missing == 0
        details.append(f"{kind} {path}: {n} stayers, lowest {lo} of {sent} frames ({pct:.1f} %), "
                       f"median {sorted(got)[len(got) // 2]}, {missing} not playing to the end")
    check(f"every stayer got >= {FRAMES_MIN_PCT:g} % of the frames sent", ok_frames, "; ".join(details))

    log_text = open(server.log_path, errors="replace").read()
    panics = [l for l in log_text.splitlines() if "panic" in l.lower()]
    check("no panic in the server log", not panics, f"{len(panics)} lines" + (f": {panics[0][:200]}" if panics else ""))

    churn_req = sum(w.n for w in churned)
    churn_res = [w.result() for w in churned]
    churn_play = sum((r or {}).get("viewers_playing", 0) for r in churn_res)
    churn_fail = sum((r or {}).get("viewers_failed", 0) for r in churn_res)
    restarts = sum(pl.runs - 1 for pl in players.all if pl.stayer)

    summary = {
        "minutes": MINUTES, "webrtc": N_WEBRTC, "rtmp": N_RTMP, "churn_pct": CHURN,
        "camera_every_s": CAMERA_EVERY, "publisher_every_s": PUBLISHER_EVERY,
        "rss_slope_pct_per_h": slope, "rss_mean_kib": mean, "rss_end_kib": rss_end,
        "fd_baseline": fd_base, "fd_end": fd_end, "fd_peak": max(r["fds"] for r in rows),
        "cpu_mean_pct": sum(r["cpu_pct"] or 0 for r in rows) / len(rows),
        "frames": {f"{k[0]} {k[1]}": v for k, v in worst.items()},
        "panics": len(panics),
        "churn_requested": churn_req, "churn_playing": churn_play, "churn_failed": churn_fail,
        "rtmp_stayer_reconnects": restarts,
        "camera_restarts": camera.restarts, "publisher_restarts": publisher.restarts,
        "camera_process_up": camera.intervals(), "publisher_process_up": publisher.intervals(),
        "cam_live": counters.intervals("cam"), "pub_live": counters.intervals("live/pub"),
        "checks": [{"check": c, "ok": o, "detail": d} for c, o, d in checks],
    }
    with open(os.path.join(OUT, "verdict.json"), "w") as f:
        json.dump(summary, f, indent=1)
    plot(rows, fd_base)
    md = markdown(summary, checks, rows, frame_rows)
    with open(os.path.join(OUT, "summary.md"), "w") as f:
        f.write(md)
    print(md)
    failed = [c for c, o, _ in checks if not o]
    if failed:
        log(f"FAILED: {', '.join(failed)}")
        sys.exit(1)
    log("all checks passed")


def plot(rows, fd_base):
    if subprocess.run(["sh", "-c", "command -v gnuplot"], capture_output=True).returncode:
        log("gnuplot not found: no plot")
        return
    png = os.path.join(OUT, "soak.png")
    script = f"""
set terminal pngcairo size 1200,900 font ",10"
set output "{png}"
set datafile separator ","
set key autotitle columnhead
set multiplot layout 3,1 title "corecast soak: {MINUTES:g} min, {N_WEBRTC} WebRTC + {N_RTMP} RTMP viewers, churn {CHURN:g} %/min, camera killed every {CAMERA_EVERY:g} s, publisher every {PUBLISHER_EVERY:g} s"
set grid
set xlabel "minutes"
set arrow 1 from {(rows[0]["t_s"] + WARMUP) / 60:.3f}, graph 0 to {(rows[0]["t_s"] + WARMUP) / 60:.3f}, graph 1 nohead dt 2
set label 1 "end of warm-up" at {(rows[0]["t_s"] + WARMUP) / 60:.3f}, graph 0.1 offset 0.5,0
set ylabel "RSS (MiB)"
plot "{OUT}/samples.csv" using ($1/60):($2/1024) with lines lw 2 title "server RSS", \
     "{OUT}/samples.csv" using ($1/60):($10/1024) with lines lw 1 title "of which anonymous", \
     "{OUT}/samples.csv" using ($1/60):($11/1024) with lines lw 1 title "of which file-backed"
set ylabel "open fds"
unset label 1
plot "{OUT}/samples.csv" using ($1/60):3 with lines lw 2 title "server open fds", {fd_base} with lines dt 2 title "baseline (before any client)"
set ylabel "CPU % of one core"
plot "{OUT}/samples.csv" using ($1/60):4 with lines lw 2 title "server CPU (utime+stime)"
unset multiplot
"""
    r = subprocess.run(["gnuplot"], input=script, text=True, capture_output=True)
    if r.returncode:
        log(f"gnuplot failed: {r.stderr.strip()[:300]}")
    else:
        log(f"plot: {png}")


def ivs_text(ivs):
    return ", ".join(f"{a / 60:.1f}-{b / 60:.1f}" for a, b in ivs)


def markdown(s, checks, rows, frame_rows):
    try:
        commit = open(os.path.join(OUT, "commit")).read().strip()
    except OSError:
        commit = "unknown"
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    cmd = " ".join(f"{k}={os.environ[k]}" for k in
                   ("SOAK_MINUTES", "SOAK_WEBRTC", "SOAK_RTMP", "SOAK_CHURN", "SOAK_CAMERA_EVERY",
                    "SOAK_PUBLISHER_EVERY", "SOAK_SAMPLE", "SOAK_SHARDS", "SOAK_PROFILE",
                    "SOAK_LD_PRELOAD")
                   if os.environ.get(k))
    out = [f"## Soak and fault suite, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}", ""]
    out.append(f"- commit `{commit}`, {os.cpu_count()} CPUs ({cpu}), kernel {os.uname().release}, "
               f"corecast {os.environ.get('SOAK_PROFILE', 'release')} build, {SHARDS} shards")
    out.append(f"- command: `{(cmd + ' ') if cmd else ''}perf/soak.sh`")
    out.append(f"- {MINUTES:g} min; camera (GStreamer RTSP stand-in, 640x360 25 fps H.264 700 kbit/s + AAC) "
               f"on `cam`, ffmpeg RTMP publisher (640x360 25 fps x264 700 kbit/s GOP 50 + AAC 64 kbit/s) "
               f"on `live/pub`; {N_WEBRTC} WebRTC viewers (corecast-load whep) and {N_RTMP} RTMP players "
               f"(one `rtmpdump --live` each) split between them; {CHURN:g} % of each kind leave and "
               f"rejoin every minute; camera SIGKILLed every {CAMERA_EVERY:g} s, publisher every "
               f"{PUBLISHER_EVERY:g} s; samples every {SAMPLE:g} s, warm-up {WARMUP:.0f} s")
    out.append("")
    out.append("| check | result | numbers |")
    out.append("|---|---|---|")
    for c, o, d in checks:
        out.append(f"| {c} | {'pass' if o else '**FAIL**'} | {d} |")
    out.append("")
    out.append("| viewers | stream | stayers | lowest frames / sent | lowest % | not playing to the end |")
    out.append("|---|---|---:|---:|---:|---:|")
    for kind, path, n, k, missing, sent, got in frame_rows:
        if n == 0:
            continue
        lo = min(got) if got else 0
        pct = f"{lo / sent * 100:.1f}" if sent else "-"
        out.append(f"| {kind} | `{path}` | {n} | {lo} / {sent} | {pct} | {missing} |")
    out.append("")
    first = rows[0]
    post = [r for r in rows if r["t_s"] >= first["t_s"] + WARMUP]
    out.append(f"- RSS: {first['rss_kib'] / 1024:.1f} MiB at the first sample, "
               f"{post[0]['rss_kib'] / 1024 if post else 0:.1f} MiB after warm-up, "
               f"{rows[-1]['rss_kib'] / 1024:.1f} MiB at the last sample, peak {max(r['rss_kib'] for r in rows) / 1024:.1f} MiB")
    half, _, _ = slope_pct_per_hour(rows, (rows[-1]["t_s"] - first["t_s"]) / 2)
    if half is not None:
        out.append(f"- RSS slope over the second half of the run alone: {half:+.2f} %/h (for comparison; "
                   f"the check uses everything after the warm-up)")
    if post:
        for key, what in (("rss_anon_kib", "anonymous (heap, stacks, buffers)"),
                          ("rss_file_kib", "file-backed (the binary's and libraries' pages)")):
            slope, _, _ = slope_pct_per_hour(rows, key=key)
            out.append(f"- RSS {what}: {post[0][key] / 1024:.1f} MiB after warm-up, "
                       f"{rows[-1][key] / 1024:.1f} MiB at the last sample"
                       + (f", slope {slope:+.2f} %/h of its own mean" if slope is not None else ""))
    out.append(f"- fds: baseline {s['fd_baseline']}, peak {s['fd_peak']}, {s['fd_end']} after every client and source stopped")
    out.append(f"- server CPU: mean {s['cpu_mean_pct']:.0f} % of one core (peak {max(r['cpu_pct'] or 0 for r in rows):.0f} %)")
    out.append(f"- churn: {s['churn_requested']} WebRTC joins ({s['churn_playing']} played, {s['churn_failed']} failed); "
               f"RTMP churners restarted each minute; RTMP stayers reconnected {s['rtmp_stayer_reconnects']} times "
               f"(rtmpdump ends at UnpublishNotify and is restarted at once)")
    out.append(f"- camera killed {s['camera_restarts']} times; live in the server (min): {ivs_text(s['cam_live'])}")
    out.append(f"- publisher killed {s['publisher_restarts']} times; live in the server (min): {ivs_text(s['pub_live'])}")
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    main()
