"""PNG plots of load results CSVs with gnuplot (perf/plot.sh documents the files).

usage: python3 perf/plot.py PLOTS_DIR NAME CSV...   prints the PNGs written, one path a line

One set of charts, PLOTS_DIR/NAME-*.png, of the rows of all the CSVs (of one kind); NAME
empty: the CSV's name (one CSV).
"""

import csv
import glob
import os
import re
import statistics
import subprocess
import sys
import tempfile


def num(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def series(rows, key, value, x="n"):
    """{key(row): [(x, median, min, max)]} over the rows' repetitions at each x; a key is
    (title, colour group, dash group): lines of one colour group share a colour, of one
    dash group a dash pattern."""
    lines = {}
    for r in rows:
        v = num(r.get(value))
        n = num(r.get(x)) if num(r.get(x)) else num(r.get("n"))
        if v is None or n is None:
            continue
        lines.setdefault(key(r), {}).setdefault(n, []).append(v)
    return {
        title: [(n, statistics.median(vs), min(vs), max(vs)) for n, vs in sorted(by_n.items())]
        for title, by_n in lines.items()
    }


def gnuplot(script):
    r = subprocess.run(["gnuplot"], input=script, text=True, capture_output=True)
    if r.returncode:
        sys.exit(f"plot: gnuplot failed: {r.stderr.strip()[:500]}")


def quote(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def lines_plot(png, title, ylabel, xlabel, lines, tmp):
    """One chart: a line with min-max error bars per entry of `lines`."""
    if not lines:
        return False
    colours = sorted({k[1] for k in lines})
    dashes = sorted({k[2] for k in lines}, key=lambda d: (d != DASH_FIRST, d))
    plots = []
    ns = set()
    for key, points in sorted(lines.items(), key=lambda kv: (colours.index(kv[0][1]), dashes.index(kv[0][2]))):
        name, colour, dash = key
        path = os.path.join(tmp, f"line{len(os.listdir(tmp))}.dat")
        with open(path, "w") as f:
            for n, med, lo, hi in points:
                f.write(f"{n:g} {med:.6g} {lo:.6g} {hi:.6g}\n")
                ns.add(n)
        plots.append(
            f"{quote(path)} using 1:2:3:4 with yerrorlines lw 2 pt {7 + dashes.index(dash)} ps 1 "
            f"lc rgb {quote(PALETTE[colours.index(colour) % len(PALETTE)])} "
            f"dt {1 + dashes.index(dash) % 5} title {quote(name)}"
        )
    ns = sorted(ns)
    logx = ns[0] > 0 and ns[-1] / ns[0] >= 8
    # The measured N as tics when they stand apart, gnuplot's own otherwise.
    apart = all((b / a >= 1.15) if logx else (b - a >= 0.04 * ns[-1]) for a, b in zip(ns, ns[1:]))
    xtics = ", ".join(f"{n:g}" for n in ns) if len(ns) <= 12 and apart else None
    gnuplot(f"""
set terminal pngcairo size 1000,560 font ",10" noenhanced
set output {quote(png)}
set title {quote(title)}
set grid
set key outside right top
set xlabel {quote(xlabel)}
set ylabel {quote(ylabel)}
set yrange [0:*]
{"set logscale x" if logx else "set xrange [0:*]"}
{f"set xtics ({xtics})" if xtics else ""}
set offsets graph 0.03, graph 0.03, graph 0.05, 0
plot {", ".join(plots)}
""")
    return True


# Colours that stay apart on white, and the dash group drawn solid.
PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2"]
DASH_FIRST = "corecast"


BUCKET = re.compile(r'^corecast_frame_latency_seconds_bucket\{(.*)\}\s+(\S+)')


def buckets(path, protocol):
    """[(le, cumulative count)] of corecast_frame_latency_seconds{protocol} in a scrape."""
    out = []
    for line in open(path):
        m = BUCKET.match(line)
        if not m:
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1)))
        if labels.get("protocol") == protocol:
            out.append((labels["le"], float(m.group(2))))
    return out


def le_label(les, i):
    """The interval of bucket i in milliseconds: "0.5-1 ms", "> 1000 ms"."""
    ms = lambda le: f"{float(le) * 1e3:g}"
    if les[i] == "+Inf":
        return f"> {ms(les[i - 1])} ms" if i > 0 else "all"
    return f"{ms(les[i - 1]) if i > 0 else '0'}-{ms(les[i])} ms"


def latency_plot(png, title, runs, tmp):
    """Bars: % of the window's observations per bucket, one bar per run."""
    if not runs:
        return False
    les = [le for le, _ in runs[0][1]]
    path = os.path.join(tmp, "latency.dat")
    with open(path, "w") as f:
        f.write("bucket " + " ".join(quote(name) for name, _ in runs) + "\n")
        for i, le in enumerate(les):
            cells = []
            for _, counts in runs:
                total = counts[-1][1] if counts else 0
                below = counts[i - 1][1] if i > 0 else 0
                here = counts[i][1] - below if i < len(counts) else 0
                cells.append(f"{here / total * 100:.4g}" if total > 0 else "0")
            f.write(f"{quote(le_label(les, i))} " + " ".join(cells) + "\n")
    cols = ", ".join(
        f"{quote(path)} using {k + 2}:xtic(1) title columnhead({k + 2})" for k in range(len(runs))
    )
    gnuplot(f"""
set terminal pngcairo size 1200,560 font ",10" noenhanced
set output {quote(png)}
set title {quote(title)}
set grid ytics
set key outside right top
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set boxwidth 0.9
set xtics rotate by -35
set xlabel "server-added latency (bucket of corecast_frame_latency_seconds)"
set ylabel "% of the window's observations"
set yrange [0:*]
plot {cols}
""")
    return True


def scrapes(csv_path):
    """[(run name, start scrape or None, end scrape)] saved beside the CSV."""
    base = csv_path[: -len(".csv")]
    out = []
    for end in glob.glob(glob.escape(base) + "-*.end.prom"):
        name = end[len(base) + 1 : -len(".end.prom")]
        start = end[: -len(".end.prom")] + ".start.prom"
        out.append((name, start if os.path.exists(start) else None, end))

    def order(run):
        m = re.search(r"n(\d+)$", run[0])
        prefix = run[0].rsplit("-n", 1)[0]
        return (not prefix.startswith("scan"), prefix, int(m.group(1)) if m else 0)

    return sorted(out, key=order)


def window_counts(start, end, protocol):
    b = buckets(end, protocol)
    if start:
        s = dict(buckets(start, protocol))
        b = [(le, c - s.get(le, 0)) for le, c in b]
    return b


def run_title(name):
    # "scan-n400" -> "400 viewers (scan)"
    m = re.match(r"(.*)-n(\d+)$", name)
    return f"N = {m.group(2)} ({m.group(1)})" if m else name


def csv_kind(path, rows):
    if not rows:
        sys.exit(f"plot: {path} has no rows")
    kind = "rtmp" if "player" in rows[0] else "whep" if "shards" in rows[0] else None
    if kind is None:
        sys.exit(f"plot: {path}: neither an RTMP (player) nor a WHEP (shards) CSV")
    return kind


def main():
    plots, base, paths = sys.argv[1], sys.argv[2], sys.argv[3:]
    if not base:
        if len(paths) != 1:
            sys.exit("plot: several CSVs need a name for their plots")
        base = os.path.basename(paths[0]).removesuffix(".csv")
    tables = [(p, list(csv.DictReader(open(p)))) for p in paths]
    kinds = {csv_kind(p, rows) for p, rows in tables}
    if len(kinds) != 1:
        sys.exit("plot: the CSVs are of different kinds (RTMP and WHEP)")
    kind = kinds.pop()
    rows = [r for _, rs in tables for r in rs]
    written = []
    with tempfile.TemporaryDirectory() as tmp:
        if kind == "rtmp":
            key = lambda r: (f"{r['server']}, {r['player']} players", r["player"], r["server"])
            what, protocol = "player", "rtmp"
            cpu = series(rows, key, "cpu_pct_per_player")
            rss = series(rows, key, "rss_kib_per_player")
            xlabel = "players (N)"
        else:
            def group(r):
                shards = r.get("shards", "1")
                return f"{shards} shard{'s' if shards != '1' else ''}, {r.get('variant', '')}".rstrip(", ")

            key = lambda r: (f"{r['server']}, {group(r)}", group(r), r["server"])
            what, protocol = "viewer", "webrtc"
            rows_m = [r for r in rows if r.get("series") != "profile"]
            # x: the viewers measured (playing at window start), N when the CSV lacks them.
            cpu = series(rows_m, key, "cpu_pct_per_viewer", "viewers")
            for role in ("owner", "relay"):
                label = "owner shard" if role == "owner" else "relaying shard"
                cpu.update(series(
                    [r for r in rows_m if num(r.get(f"{role}_cpu_pct_per_viewer")) is not None],
                    lambda r, label=label: (f"{group(r)}: {label}", group(r), label),
                    f"{role}_cpu_pct_per_viewer",
                    "viewers",
                ))
            rss = series(rows_m, key, "rss_kib_per_viewer", "viewers")
            xlabel = "viewers (playing at window start)"
        note = "median of the runs, bars min-max"
        png = os.path.join(plots, f"{base}-cpu.png")
        if lines_plot(png, f"{base}: server CPU per {what} ({note})", f"% of one core per {what}", xlabel, cpu, tmp):
            written.append(png)
        png = os.path.join(plots, f"{base}-rss.png")
        if lines_plot(png, f"{base}: server RSS per {what} ({note})", f"KiB per {what}", xlabel, rss, tmp):
            written.append(png)
        runs = []
        for path, rs in tables:
            # With several CSVs, say which each run came from.
            label = ""
            if len(tables) > 1:
                shards = rs[0].get("shards")
                label = (f"{shards} shard{'s' if shards != '1' else ''}, " if shards
                         else os.path.basename(path).removesuffix(".csv") + ", ")
            runs += [(label + run_title(name), window_counts(start, end, protocol))
                     for name, start, end in scrapes(path)]
        runs = [(n, c) for n, c in runs if c and c[-1][1] > 0]
        if len(runs) > 6 and any("(scan" in n for n, _ in runs):
            runs = [(n, c) for n, c in runs if "(scan" in n]  # the scan's N, not the repetitions
        png = os.path.join(plots, f"{base}-latency.png")
        if latency_plot(png, f"{base}: server-added latency ({protocol}), over the measurement window", runs, tmp):
            written.append(png)
    for p in written:
        print(p)


if __name__ == "__main__":
    main()
