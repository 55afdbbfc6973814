#!/usr/bin/env python3
"""kiln benchmarks, peers measured in the same run. Driven by `bench/run`.

    bench/run                       # everything (about 15 minutes on 2 cores)
    bench/run bake latency          # a subset: bake rebake concurrency latency incremental memory render misses django
    KILN_OLD=/path/to/kiln bench/run journal   # the journal's cost against an older build
    BENCH_RUNS=5 bench/run bake     # more repetitions (median is reported)
    bench/run blog                  # a second site shape (bench/genblog.py), kiln vs wget on disk
    BENCH_DISK=/mnt/x BENCH_DISK_LABEL=_fresh bench/run bake blog   # another disk, its own result keys

Generated sites live in $BENCH_WORK (default /tmp/kiln-bench, on disk, cached
between runs). Outputs of the tools under test go to $BENCH_OUT (default
/dev/shm/kiln-bench, tmpfs) and, for the disk rows, to $BENCH_DISK (default
/var/tmp/kiln-bench-disk: the machine's real disk). Every run of every tool
writes into a directory of its own and nothing is deleted until a size is
done: deleting tens of thousands of directories between runs makes the next
runs on ext4 slower and slower (the inode allocator skips recently freed
inodes), whichever tool comes next. Results are printed as Markdown and saved
to bench/out/results.json.
"""
import collections
import http.client
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# KILN_BIN measures another build (e.g. the commit before a change) with the
# same harness, in the same run.
KILN = Path(os.environ.get("KILN_BIN", ROOT / "target/release/kiln"))
FLOOR = ROOT / "target/release/examples/write_floor"
WORK = Path(os.environ.get("BENCH_WORK", "/tmp/kiln-bench"))
OUT = Path(os.environ.get("BENCH_OUT", "/dev/shm/kiln-bench"))
DISK = Path(os.environ.get("BENCH_DISK", "/var/tmp/kiln-bench-disk"))
RUNS = int(os.environ.get("BENCH_RUNS", "3"))
# Appended to the result keys of disk rows, to keep a second disk's figures
# (e.g. a freshly made journaled ext4) beside the main disk's.
DISK_LABEL = os.environ.get("BENCH_DISK_LABEL", "")
PAGE_BYTES = 8100
RESULTS = {}


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=30):
    end = time.time() + timeout
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listening on {port}")


def pages_of(n):
    return n + (n + 99) // 100 + 1  # pages + list pages + home


def gen_site(n):
    d = WORK / f"site-{n}"
    if (d / ".complete").exists():
        return d
    shutil.rmtree(d, ignore_errors=True)
    log(f"generating a {n}-page site in {d}")
    subprocess.run([sys.executable, ROOT / "bench/gensite.py", d, str(n)], check=True)
    (d / ".complete").write_text("ok")
    os.chmod(d, 0o755)
    return d


class Origin:
    """nginx serving a generated site, with Surrogate-Key tags (grp:<n//10>)."""

    def __init__(self, root):
        self.dir = Path(tempfile.mkdtemp(prefix="kiln-origin-"))
        (self.dir / "tmp").mkdir()
        os.chmod(self.dir / "tmp", 0o777)
        self.port = free_port()
        conf = (ROOT / "bench/origin.conf.tmpl").read_text()
        conf = conf.replace("@DIR@", str(self.dir)).replace("@PORT@", str(self.port)).replace("@ROOT@", str(root))
        (self.dir / "nginx.conf").write_text(conf)
        self.proc = subprocess.Popen(["nginx", "-p", self.dir, "-c", self.dir / "nginx.conf"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port)
        self.url = f"http://127.0.0.1:{self.port}"

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)


Timed = collections.namedtuple("Timed", "wall rss out cpu")


def timed(cmd, cwd=None, env=None):
    """Runs cmd under /usr/bin/time: wall seconds, peak RSS KiB, stdout, and
    the user+sys CPU seconds of the command and its children."""
    import resource
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    with tempfile.NamedTemporaryFile("r") as t:
        start = time.perf_counter()
        p = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", t.name, *map(str, cmd)], cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        wall = time.perf_counter() - start
        if p.returncode not in (0, 8):  # wget exits 8 on any 404 (none expected)
            raise RuntimeError(f"{cmd} failed ({p.returncode}): {p.stderr[-2000:]}")
        rss = int(t.read().strip().splitlines()[-1])
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    return Timed(wall, rss, p.stdout, cpu)


def fresh(path):
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def kiln_bake(origin_url, n, extra_toml="", out=None):
    d = fresh(out or OUT / "kiln")
    (d / "site.toml").write_text(f'[site]\nout = "out"\n[crawl]\nmax-pages = 10000000\n{extra_toml}')
    t = timed([KILN, "-q", "build", "--origin", origin_url], cwd=d)
    baked = sum(1 for _ in (d / "out").rglob("index.html"))
    assert baked == pages_of(n), f"kiln baked {baked} pages, expected {pages_of(n)}: {t.out}"
    return t


def wget_mirror(origin_url, n, out=None):
    d = fresh(out or OUT / "wget")
    t = timed(["wget", "--mirror", "-np", "-nv", "-q", "-e", "robots=off", "-P", d, origin_url + "/"])
    got = sum(1 for _ in d.rglob("index.html"))
    assert got == pages_of(n), f"wget fetched {got} pages, expected {pages_of(n)}"
    return t


def write_floor(n, sync=True, out=None):
    d = fresh(out or OUT / "floor")
    return timed([FLOOR, d, pages_of(n), PAGE_BYTES] + ([] if sync else ["nosync"]))


def wrk_rate(origin_url, site, n):
    urls = Path(OUT / "urls.txt")
    lines = ["/"] + [f"/list/{k}/" for k in range((n + 99) // 100)] + [f"/p/{i}/" for i in range(n)]
    urls.write_text("\n".join(lines) + "\n")
    p = subprocess.run(["wrk", "-t2", "-c16", "-d5s", "-s", ROOT / "bench/distinct.lua", origin_url, "--", urls], capture_output=True, text=True, check=True)
    for line in p.stdout.splitlines():
        if line.startswith("Requests/sec:"):
            return float(line.split()[1])
    raise RuntimeError(p.stdout)


def fs_type(path):
    path.mkdir(parents=True, exist_ok=True)
    return subprocess.run(["df", "-T", str(path)], capture_output=True, text=True).stdout.splitlines()[-1].split()[1]


def bench_bake():
    """Full bakes, tmpfs ($BENCH_OUT, BENCH_SIZES) and disk ($BENCH_DISK,
    BENCH_DISK_SIZES): kiln, wget and the write floor with and without a
    sync per file, alternating run by run, each run in a new directory."""
    targets = [
        (OUT, [int(x) for x in os.environ.get("BENCH_SIZES", "1000,10000,50000").split(",") if x]),
        (DISK, [int(x) for x in os.environ.get("BENCH_DISK_SIZES", "10000").split(",") if x]),
    ]
    for base, sizes in targets:
        fs = fs_type(base)
        rows = []
        for n in sizes:
            rows.append(bake_row(base, fs, n))
        RESULTS["bake" if fs == "tmpfs" else f"bake_{fs}{DISK_LABEL}"] = rows


def bake_row(base, fs, n):
    site = gen_site(n)
    origin = Origin(site)
    runs = {k: [] for k in ("kiln", "wget", "floor", "floor_nosync")}
    cpu = {k: [] for k in runs}
    work = base / f"bake-{n}"
    shutil.rmtree(work, ignore_errors=True)
    try:
        for r in range(RUNS):
            log(f"bake n={n} on {fs} run {r + 1}/{RUNS}")
            steps = {
                "kiln": lambda: kiln_bake(origin.url, n, out=work / f"kiln-{r}"),
                "wget": lambda: wget_mirror(origin.url, n, out=work / f"wget-{r}"),
                "floor": lambda: write_floor(n, out=work / f"floor-{r}"),
                "floor_nosync": lambda: write_floor(n, sync=False, out=work / f"nosync-{r}"),
            }
            for k, step in steps.items():
                # Untimed: what the previous tool left dirty (wget and the
                # no-sync floor never sync) is written out now, so no tool's
                # run pays for another's writes (kiln's syncfs flushes the
                # whole filesystem, and did).
                os.sync()
                t = step()
                runs[k].append(t.wall)
                cpu[k].append(t.cpu)
        rate = wrk_rate(origin.url, site, n)
    finally:
        origin.stop()
        shutil.rmtree(work, ignore_errors=True)
    pages = pages_of(n)
    med = statistics.median
    row = {"pages": pages, "filesystem": fs, "origin_rps": rate, "runs": runs, "cpu_runs": cpu}
    for k in runs:
        row[f"{k}_s"] = med(runs[k])
        row[f"{k}_pps"] = pages / med(runs[k])
        row[f"{k}_cpu_s"] = med(cpu[k])
        row[f"{k}_cpu_us_per_page"] = med(cpu[k]) / pages * 1e6
    row["kiln_vs_wget"] = row["wget_s"] / row["kiln_s"]
    row["kiln_vs_floor"] = row["floor_s"] / row["kiln_s"]
    log(json.dumps({k: v for k, v in row.items() if not isinstance(v, dict)}))
    return row


def bench_blog(n=5000):
    """Full bakes of a second site shape (bench/genblog.py: deeper
    directories, ~20 KB pages, random links) on $BENCH_DISK, kiln and wget
    alternating, each run in a new directory."""
    site = WORK / f"blog-{n}"
    if not (site / ".complete").exists():
        shutil.rmtree(site, ignore_errors=True)
        subprocess.run([sys.executable, ROOT / "bench/genblog.py", site, str(n)], check=True)
        (site / ".complete").write_text("ok")
    pages = sum(1 for _ in site.rglob("index.html"))
    fs = fs_type(DISK)
    origin = Origin(site)
    work = DISK / f"blog-{n}"
    shutil.rmtree(work, ignore_errors=True)
    runs = {"kiln": [], "wget": []}
    cpu = {"kiln": [], "wget": []}
    try:
        for r in range(RUNS):
            for k in runs:
                log(f"blog n={n} on {fs} run {r + 1}/{RUNS}: {k}")
                os.sync()
                d = fresh(work / f"{k}-{r}")
                if k == "kiln":
                    (d / "site.toml").write_text('[site]\nout = "out"\n[crawl]\nmax-pages = 10000000\n')
                    t = timed([KILN, "-q", "build", "--origin", origin.url], cwd=d)
                    got = sum(1 for _ in (d / "out").rglob("index.html"))
                else:
                    t = timed(["wget", "--mirror", "-np", "-nv", "-q", "-e", "robots=off", "-P", d, origin.url + "/"])
                    got = sum(1 for _ in d.rglob("index.html"))
                assert got == pages, f"{k} baked {got} pages of {pages}"
                runs[k].append(t.wall)
                cpu[k].append(t.cpu)
    finally:
        origin.stop()
        shutil.rmtree(work, ignore_errors=True)
    med = statistics.median
    row = {"pages": pages, "filesystem": fs, "runs": runs, "cpu_runs": cpu}
    for k in runs:
        row[f"{k}_s"] = med(runs[k])
        row[f"{k}_cpu_s"] = med(cpu[k])
    row["kiln_vs_wget"] = row["wget_s"] / row["kiln_s"]
    log(json.dumps({k: v for k, v in row.items() if not isinstance(v, dict)}))
    RESULTS[f"blog_{fs}{DISK_LABEL}"] = row


def start_daemon(cwd, kiln=None):
    p = subprocess.Popen([kiln or KILN, "-q", "daemon", "--listen", "127.0.0.1:0"], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = p.stdout.readline().strip()
    return p, line.rsplit("http://", 1)[1]


def percentile(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def bench_latency(n=10000, events=200, debounce="100ms"):
    RESULTS["latency"] = latency_run(n, events, debounce)


def bench_journal(n=10000, events=200):
    """The journal's cost: the same latency, burst and storm measurements
    with this build and with KILN_OLD (the build before the journal), on
    tmpfs and on the real disk, alternating."""
    old = os.environ.get("KILN_OLD")
    if not old:
        raise SystemExit("bench journal needs KILN_OLD=/path/to/the/previous/kiln")
    rows = []
    for base, fs in ((OUT, "tmpfs"), (DISK, fs_type(DISK))):
        for name, kiln in (("journal", KILN), ("before", Path(old))):
            r = latency_run(n, events, "100ms", base=base, kiln=kiln)
            r.update({"build": name, "fs": fs})
            log("journal", json.dumps(r))
            rows.append(r)
    RESULTS["journal"] = rows


def latency_run(n, events, debounce, base=None, kiln=None):
    kiln = kiln or KILN
    base = base or OUT
    src = gen_site(n)
    site = WORK / "latency-site"
    shutil.rmtree(site, ignore_errors=True)
    shutil.copytree(src, site)
    os.chmod(site, 0o755)
    origin = Origin(site)
    base.mkdir(parents=True, exist_ok=True)
    d = fresh(base / "latency")
    (d / "site.toml").write_text(f'[site]\nout = "out"\n[daemon]\ndebounce = "{debounce}"\n[origin]\nurl = "{origin.url}"\n')
    subprocess.run([kiln, "-q", "build"], cwd=d, check=True, stdout=subprocess.DEVNULL)
    daemon, addr = start_daemon(d, kiln)
    host, port = addr.split(":")
    conn = http.client.HTTPConnection(host, int(port))
    rng = random.Random(42)
    result = {"debounce_ms": int(debounce.rstrip("ms")), "events": events, "pages": pages_of(n)}
    try:
        for mode in ("http", "spool"):
            lat = []
            for k in range(events):
                i = rng.randrange(n)
                page = site / "p" / str(i) / "index.html"
                with open(page, "a") as f:
                    f.write(f"<!-- {mode} {k} -->\n")
                baked = d / "out" / "p" / str(i) / "index.html"
                ino = os.stat(baked).st_ino
                t0 = time.perf_counter()
                if mode == "http":
                    conn.request("POST", "/v1/regen", json.dumps({"targets": [f"/p/{i}/"]}), {"Content-Type": "application/json"})
                    r = conn.getresponse()
                    r.read()
                    assert r.status == 202, r.status
                else:
                    tmp = d / ".kiln/out/queue/tmp" / f"ev-{k}"
                    tmp.write_text(f"/p/{i}/\n")
                    os.rename(tmp, d / ".kiln/out/queue/new" / f"ev-{k}")
                while True:
                    try:
                        if os.stat(baked).st_ino != ino:
                            break
                    except FileNotFoundError:
                        pass
                    if time.perf_counter() - t0 > 10:
                        raise RuntimeError(f"/p/{i}/ not fresh after 10 s ({mode})")
                    time.sleep(0.0002)
                lat.append((time.perf_counter() - t0) * 1000)
            result[mode] = {"p50_ms": percentile(lat, 50), "p99_ms": percentile(lat, 99), "max_ms": max(lat)}
            try:
                result[mode]["burst_fetches"] = burst_fetches(conn, d, mode, f"/p/{rng.randrange(n)}/")
            except Exception as e:  # reported, and the other sections still run
                log(f"burst measurement failed ({mode}): {e}")
                result[mode]["burst_error"] = str(e)
            log(mode, json.dumps(result[mode]))
        result["storm"] = change_storm(conn, site, n)
        log("storm", json.dumps(result["storm"]))
    finally:
        daemon.terminate()
        daemon.wait(20)
        origin.stop()
    return result


def metric(conn, name):
    conn.request("GET", "/metrics")
    r = conn.getresponse()
    body = r.read().decode()
    for line in body.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise RuntimeError(f"no {name} in /metrics")


def burst_fetches(conn, d, mode, target, events=1000):
    """Sends 1,000 events for one page as fast as the intake takes them and
    returns how many times the daemon fetched it (target: at most 2)."""
    before = metric(conn, "kiln_fetches_total")
    if mode == "http":
        # All 1,000 requests written at once on one connection (pipelined),
        # so they arrive as a burst, not spread over Python's round trips.
        body = json.dumps({"targets": [target]})
        req = (f"POST /v1/regen HTTP/1.1\r\nHost: {conn.host}\r\nContent-Type: application/json\r\n"
               f"Content-Length: {len(body)}\r\n\r\n{body}").encode()
        with socket.create_connection((conn.host, conn.port)) as sock:
            sock.sendall(req * events)
            got = b""
            while got.count(b"HTTP/1.1 202") < events:
                chunk = sock.recv(1 << 16)
                if not chunk:
                    raise RuntimeError(f"the daemon closed the connection after {got.count(b'HTTP/1.1 202')} answers")
                got += chunk
    else:
        # Written to tmp/ first, then renamed into new/ one after another.
        for k in range(events):
            (d / ".kiln/out/queue/tmp" / f"burst-{k}").write_text(target + "\n")
        for k in range(events):
            os.rename(d / ".kiln/out/queue/tmp" / f"burst-{k}", d / ".kiln/out/queue/new" / f"burst-{k}")
    deadline = time.perf_counter() + 30
    while True:
        idle = metric(conn, "kiln_pending_urls") == 0 and metric(conn, "kiln_in_flight_urls") == 0
        spooled = any((d / ".kiln/out/queue/new").iterdir()) if mode == "spool" else False
        if idle and not spooled:
            break
        if time.perf_counter() > deadline:
            raise RuntimeError(f"the burst for {target} did not settle in 30 s ({mode})")
        time.sleep(0.01)
    return metric(conn, "kiln_fetches_total") - before


def change_storm(conn, site, n):
    """Every page of the site changes at once and one `all` event names
    them: how fast one daemon makes them all fresh (its limit in a change
    storm; the figure docs/distributed.md quotes)."""
    pages = ["index.html"] + [f"list/{k}/index.html" for k in range((n + 99) // 100)] + [f"p/{i}/index.html" for i in range(n)]
    for rel in pages:
        with open(site / rel, "a") as f:
            f.write("<!-- storm -->\n")
    t0 = time.perf_counter()
    conn.request("POST", "/v1/regen", json.dumps({"targets": ["all"]}), {"Content-Type": "application/json"})
    r = conn.getresponse()
    job = json.loads(r.read())["status"]
    assert r.status == 202, r.status
    while True:
        conn.request("GET", job)
        r = conn.getresponse()
        info = json.loads(r.read())
        if info["state"] == "done":
            break
        if time.perf_counter() - t0 > 120:
            raise RuntimeError(f"the storm was not done after 120 s: {info}")
        time.sleep(0.01)
    secs = time.perf_counter() - t0
    return {"pages": len(pages), "seconds": secs, "pages_per_s": len(pages) / secs, "done": info["done"]}


def bench_incremental():
    rows = []
    for n in (1000, 100000):
        site = gen_site(n)
        origin = Origin(site)
        try:
            d = fresh(OUT / f"incr-{n}")
            (d / "site.toml").write_text(f'[site]\nout = "out"\n[crawl]\nmax-pages = 10000000\n[origin]\nurl = "{origin.url}"\n')
            log(f"incremental: baking {n} pages for the index")
            bake_s, rss, out, _ = timed([KILN, "build"], cwd=d)
            assert f"{pages_of(n)} written" in out, out
            times = []
            for _ in range(max(RUNS, 5)):
                wall, _, out, _ = timed([KILN, "regen", "tag:grp:12"], cwd=d)
                assert "10 pages" in out, (out, subprocess.run([KILN, "status"], cwd=d, capture_output=True, text=True).stdout)
                times.append(wall)
            rows.append({"indexed_pages": pages_of(n), "regen_s": statistics.median(times), "runs": times, "bake_s": bake_s, "bake_rss_kib": rss})
            log(json.dumps(rows[-1]))
        finally:
            origin.stop()
    RESULTS["incremental"] = rows


def bench_memory():
    rows = []
    for n in (10000, 100000):
        site = gen_site(n)
        origin = Origin(site)
        try:
            rows.append({"pages": pages_of(n), "peak_rss_kib": kiln_bake(origin.url, n).rss})
            log(json.dumps(rows[-1]))
        finally:
            origin.stop()
    RESULTS["memory"] = rows


def gen_render_sites(n):
    """The same n Markdown posts for kiln render mode and for Hugo."""
    base = WORK / f"render-{n}"
    if (base / ".complete").exists():
        return base / "kiln", base / "hugo"
    shutil.rmtree(base, ignore_errors=True)
    k, h = base / "kiln", base / "hugo"
    for root in (k, h):
        (root / "content/posts").mkdir(parents=True)
    para = "Glazes mature in the last hundred degrees; *patience* beats a fast ramp. " * 6
    for i in range(n):
        text = f"---\ntitle: \"Post {i}\"\ndate: 2025-01-{i % 28 + 1:02d}\nslug: post-{i}\n---\n\n## Notes {i}\n\n{para}\n\n- one\n- two\n\n{para}\n"
        (k / f"content/posts/post-{i}.md").write_text(text)
        (h / f"content/posts/post-{i}.md").write_text(text)
    (k / "templates/partials").mkdir(parents=True)
    (k / "templates/partials/header.html").write_text("<header><a href=\"/\">Bench</a></header>\n")
    (k / "templates/base.html").write_text("<!doctype html><html><head><title>{% block title %}{% endblock %}</title></head><body>{% include \"partials/header.html\" %}{% block content %}{% endblock %}</body></html>\n")
    (k / "templates/post.html").write_text("{% extends \"base.html\" %}{% block title %}{{ page.title }}{% endblock %}{% block content %}<article><h1>{{ page.title }}</h1><time>{{ page.date }}</time>{{ page.content | safe }}</article>{% endblock %}\n")
    (k / "templates/index.html").write_text("{% extends \"base.html\" %}{% block title %}Home{% endblock %}{% block content %}<ul>{% for p in collections.posts %}<li><a href=\"{{ p.url }}\">{{ p.title }}</a></li>{% endfor %}</ul>{% endblock %}\n")
    (k / "site.toml.tmpl").write_text('[site]\nout = "@OUT@"\n\n[[render]]\ntemplate = "post.html"\ndata = "content/posts/*.md"\nurl = "/posts/{slug}/"\ncollection = "posts"\n\n[[render]]\ntemplate = "index.html"\nurl = "/"\nitems = ["posts"]\n')
    (h / "layouts/_default").mkdir(parents=True)
    (h / "layouts/partials").mkdir(parents=True)
    (h / "layouts/partials/header.html").write_text("<header><a href=\"/\">Bench</a></header>\n")
    (h / "layouts/_default/baseof.html").write_text("<!doctype html><html><head><title>{{ block \"title\" . }}{{ end }}</title></head><body>{{ partial \"header.html\" . }}{{ block \"main\" . }}{{ end }}</body></html>\n")
    (h / "layouts/_default/single.html").write_text("{{ define \"title\" }}{{ .Title }}{{ end }}{{ define \"main\" }}<article><h1>{{ .Title }}</h1><time>{{ .Date.Format \"2006-01-02\" }}</time>{{ .Content }}</article>{{ end }}\n")
    (h / "layouts/_default/list.html").write_text("{{ define \"main\" }}{{ end }}\n")
    (h / "layouts/index.html").write_text("{{ define \"title\" }}Home{{ end }}{{ define \"main\" }}<ul>{{ range (where .Site.RegularPages \"Section\" \"posts\") }}<li><a href=\"{{ .RelPermalink }}\">{{ .Title }}</a></li>{{ end }}</ul>{{ end }}\n")
    (h / "hugo.toml").write_text('baseURL = "http://example.org/"\ntitle = "Bench"\ndisableKinds = ["taxonomy", "term", "RSS", "sitemap", "robotsTXT", "404"]\n[permalinks]\nposts = "/posts/:slug/"\n')
    (base / ".complete").write_text("ok")
    return k, h


def bench_render(n=10000):
    k, h = gen_render_sites(n)
    kt, ht = [], []
    hugo = shutil.which("hugo")
    for r in range(RUNS):
        log(f"render run {r + 1}/{RUNS}")
        shutil.rmtree(OUT / ".kiln" / "render-kiln", ignore_errors=True)  # its state, beside the output
        out = fresh(OUT / "render-kiln")
        (k / "site.toml").write_text((k / "site.toml.tmpl").read_text().replace("@OUT@", str(out)))
        kt.append(timed([KILN, "-q", "build"], cwd=k)[0])
        got = sum(1 for _ in out.rglob("index.html"))
        assert got == n + 1, got
        if hugo:
            hout = fresh(OUT / "render-hugo")
            ht.append(timed([hugo, "--quiet", "--source", h, "--destination", hout, "--cacheDir", OUT / "hugo-cache"])[0])
            got = sum(1 for _ in hout.rglob("index.html"))
            assert got >= n, f"hugo wrote {got}"
    res = {"pages": n + 1, "kiln_s": statistics.median(kt), "runs_kiln": kt}
    if ht:
        res.update({"hugo_s": statistics.median(ht), "runs_hugo": ht, "hugo_version": subprocess.run([hugo, "version"], capture_output=True, text=True).stdout.strip()})
    RESULTS["render"] = res
    log(json.dumps(res))


CODE_BLOCKS = """```rust
fn firing(schedule: &[(u32, u32)]) -> u32 {
    let mut total = 0;
    for (rate, hold) in schedule {
        if *rate > 150 { total += hold * 2; } else { total += hold; }
    }
    total
}
```

```python
def cone(temp):
    return [c for c in range(temp) if c % 10 == 0]
```
"""


def gen_code_sites(n):
    """gen_render_sites' n posts, each with a Rust and a Python block (12
    lines of code), for kiln and for Hugo (which highlights fenced code with
    Chroma by default; kiln with tree-sitter)."""
    base = WORK / f"render-code-{n}"
    if (base / ".complete").exists():
        return base / "kiln", base / "hugo"
    plain_k, plain_h = gen_render_sites(n)
    shutil.rmtree(base, ignore_errors=True)
    shutil.copytree(plain_k, base / "kiln")
    shutil.copytree(plain_h, base / "hugo")
    for root in (base / "kiln", base / "hugo"):
        for post in (root / "content/posts").iterdir():
            text = post.read_text()
            post.write_text(text.replace("\n- one\n", "\n" + CODE_BLOCKS + "\n- one\n", 1))
    (base / ".complete").write_text("ok")
    return base / "kiln", base / "hugo"


def wait_for_text(path, marker, limit=30):
    """Seconds until `path` contains `marker` (polled every millisecond)."""
    start = time.perf_counter()
    while time.perf_counter() - start < limit:
        try:
            if marker in path.read_text():
                return time.perf_counter() - start
        except OSError:
            pass
        time.sleep(0.001)
    raise RuntimeError(f"{path} never showed {marker}")


def bench_render_code(n=10000, edits=10):
    """Full builds of n posts with highlighted code, kiln and Hugo, on the
    real disk ($BENCH_DISK), alternating; then the one-post rebuild: a
    running `kiln daemon` (render mode, watching) and `hugo server
    --renderToDisk`, one post edited at a time, timed from the write to
    the moment its output file shows the edit."""
    k, h = gen_code_sites(n)
    hugo = shutil.which("hugo")
    fs = fs_type(DISK)
    res = {"pages": n + 1, "filesystem": fs, "kiln": [], "hugo": []}
    kout, hout = DISK / "code-kiln", DISK / "code-hugo"
    for r in range(RUNS):
        log(f"render-code run {r + 1}/{RUNS}")
        shutil.rmtree(DISK / ".kiln" / "code-kiln", ignore_errors=True)
        fresh(kout)
        (k / "site.toml").write_text((k / "site.toml.tmpl").read_text().replace("@OUT@", str(kout)))
        t = timed([KILN, "-q", "build"], cwd=k)
        res["kiln"].append((t.wall, t.rss, t.cpu))
        page = (kout / "posts/post-7/index.html").read_text()
        assert "hl-keyword" in page, page[:500]
        if hugo:
            fresh(hout)
            t = timed([hugo, "--quiet", "--source", h, "--destination", hout, "--cacheDir", DISK / "hugo-cache"])
            res["hugo"].append((t.wall, t.rss, t.cpu))
    for tool in ("kiln", "hugo"):
        if res[tool]:
            res[f"{tool}_s"] = statistics.median(w for w, _, _ in res[tool])
            res[f"{tool}_rss_mib"] = statistics.median(m for _, m, _ in res[tool]) / 1024
            res[f"{tool}_cpu_s"] = statistics.median(c for _, _, c in res[tool])
    # One post edited under a running watcher.
    lat = {"kiln": [], "hugo": []}
    port = free_port()
    daemon = subprocess.Popen([KILN, "-q", "daemon", "--listen", f"127.0.0.1:{port}"], cwd=k, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    procs = [daemon]
    try:
        wait_port(port)
        time.sleep(3)  # the watcher's first load of every data file (not timed)
        hport = free_port()
        if hugo:
            hlog = DISK / "hugo-server.log"
            with open(hlog, "w") as f:
                procs.append(subprocess.Popen([hugo, "server", "--source", h, "--renderToDisk", "--destination", hout, "--port", str(hport), "--disableLiveReload", "--cacheDir", DISK / "hugo-cache"], stdout=f, stderr=subprocess.STDOUT))
            # Its first build is done when it says it serves (not timed).
            wait_for_text(hlog, "Web Server is available", limit=180)
            time.sleep(1)
        for e in range(edits):
            for tool, root, out in (("kiln", k, kout), ("hugo", h, hout)):
                if tool == "hugo" and not hugo:
                    continue
                post = root / "content/posts/post-42.md"
                marker = f"edit-{tool}-{e}-{time.time_ns()}"
                text = post.read_text()
                post.write_text(text + f"\n{marker}\n")
                lat[tool].append(wait_for_text(out / "posts/post-42/index.html", marker))
                time.sleep(0.3)
    finally:
        for p in procs:
            p.terminate()
            p.wait()
    for tool, values in lat.items():
        if values:
            res[f"{tool}_one_post_ms"] = statistics.median(values) * 1000
            res[f"{tool}_one_post_runs_ms"] = [round(v * 1000, 1) for v in values]
    if hugo:
        res["hugo_version"] = subprocess.run([hugo, "version"], capture_output=True, text=True).stdout.strip()
    RESULTS["render_code"] = res
    log(json.dumps(res))


def bench_publish(n=10000):
    """A first publish of n+1 pages to an S3 server on this machine
    (s3s-fs over a directory on $BENCH_DISK), at `[[publish]] concurrency`
    1, 4 and 16: objects per second, whole `kiln publish` process. The
    pages are the §8 render site, baked first without credentials."""
    k, _ = gen_render_sites(n)
    s3s = shutil.which("s3s-fs")
    if not s3s:
        raise RuntimeError("s3s-fs is not on PATH: cargo install s3s-fs --features binary")
    res = {"pages": n + 1, "filesystem": fs_type(DISK), "runs": {}}
    out = DISK / "publish-out"
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench-secret"}
    for conc in (1, 2, 4, 8, 16):
        rates = []
        for r in range(RUNS):
            store = fresh(DISK / "publish-store")
            (store / "kiln").mkdir()
            port = free_port()
            server = subprocess.Popen([s3s, "--host", "127.0.0.1", "--port", str(port), "--access-key", "bench", "--secret-key", "bench-secret", store], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                wait_port(port)
                shutil.rmtree(DISK / ".kiln" / "publish-out", ignore_errors=True)
                fresh(out)
                (k / "site.toml").write_text((k / "site.toml.tmpl").read_text().replace("@OUT@", str(out)) + f'\n[[publish]]\nkind = "s3"\nbucket = "kiln"\nprefix = "site"\nendpoint = "http://127.0.0.1:{port}"\nconcurrency = {conc}\n')
                subprocess.run([KILN, "-q", "build"], cwd=k, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # exits 1: no credentials yet
                t = timed([KILN, "publish"], cwd=k, env=env)
                uploaded = int(t.out.split(" uploaded")[0].rsplit(" ", 1)[-1])
                assert uploaded == n + 1, t.out
                rates.append(uploaded / t.wall)
                log(f"publish concurrency {conc} run {r + 1}: {uploaded} objects in {t.wall:.2f}s")
            finally:
                server.terminate()
                server.wait()
        res["runs"][conc] = rates
        res[f"objects_per_s_c{conc}"] = statistics.median(rates)
    (k / "site.toml").write_text((k / "site.toml.tmpl").read_text())
    RESULTS["publish"] = res
    log(json.dumps(res))


def read_or_empty(path):
    try:
        return path.read_text()
    except OSError:
        return ""


class Resp:
    """A minimal Redis client (RESP over a socket): enough for XADD in a
    pipeline and XINFO, without a Python package."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.buf = b""

    def send(self, *args):
        out = f"*{len(args)}\r\n".encode()
        for a in args:
            a = str(a).encode()
            out += f"${len(a)}\r\n".encode() + a + b"\r\n"
        self.sock.sendall(out)

    def _line(self):
        while b"\r\n" not in self.buf:
            self.buf += self.sock.recv(65536)
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def read(self):
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind in (b"+", b"-"):
            if kind == b"-":
                raise RuntimeError(rest.decode())
            return rest.decode()
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            while len(self.buf) < n + 2:
                self.buf += self.sock.recv(65536)
            data, self.buf = self.buf[:n], self.buf[n + 2:]
            return data.decode()
        if kind in (b"*", b"%"):
            n = int(rest)
            items = [self.read() for _ in range(n * (2 if kind == b"%" else 1))]
            return items
        raise RuntimeError(f"unexpected reply {line!r}")

    def call(self, *args):
        self.send(*args)
        return self.read()


def bench_pool(n=2000):
    """Pool mode on this machine: 1, 2 and 3 bake workers (kiln daemons in
    one consumer group, a shared index in redis-server, a bucket in s3s-fs)
    take n changed pages, one stream entry each, sent at once: seconds
    until every object in the bucket has the new content, and pages/s.
    The origin is the bench's nginx over gensite pages; every page's file
    gets a new marker first, so each bake uploads. Everything runs on the
    same 2 cores: the workers share the CPU with nginx, Redis and the S3
    server, so the figure is the pool's coordination cost, not scale-out."""
    redis = shutil.which("redis-server")
    s3s = shutil.which("s3s-fs")
    if not redis or not s3s:
        raise RuntimeError("bench pool needs redis-server and s3s-fs on PATH")
    site = gen_site(n)
    work = fresh(WORK / "pool")
    copy = work / "site"
    shutil.copytree(site, copy)
    os.chmod(copy, 0o755)
    origin = Origin(copy)
    rport, sport = free_port(), free_port()
    procs = []
    res = {"pages": n, "filesystem": fs_type(DISK), "runs": {}}
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench-secret", "KILN_LOG": "warn"}
    try:
        procs.append(subprocess.Popen([redis, "--port", str(rport), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        store = fresh(DISK / "pool-store")
        (store / "kiln").mkdir()
        procs.append(subprocess.Popen([s3s, "--host", "127.0.0.1", "--port", str(sport), "--access-key", "bench", "--secret-key", "bench-secret", store], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        wait_port(rport)
        wait_port(sport)
        r = Resp(rport)
        version = 0
        for workers in (1, 2, 3):
            rates = []
            for run in range(RUNS):
                pool = f"b{workers}r{run}"
                dirs = []
                for w in range(workers):
                    d = fresh(work / f"{pool}-w{w}")
                    (d / "site.toml").write_text(
                        f'[site]\nout = "out"\n[origin]\nurl = "{origin.url}"\n[crawl]\nmax-pages = 10000000\n'
                        f'[intake]\nredis = "redis://127.0.0.1:{rport}"\nstream = "{pool}:events"\nconsumer = "w{w}"\n'
                        f'[pool]\nname = "{pool}"\n[daemon]\nlisten = "off"\n'
                        f'[[publish]]\nkind = "s3"\nbucket = "kiln"\nprefix = "{pool}/"\nendpoint = "http://127.0.0.1:{sport}"\n')
                    dirs.append(d)
                subprocess.run([KILN, "-q", "build"], cwd=dirs[0], env=env, check=True, stdout=subprocess.DEVNULL)
                daemons = []
                for d in dirs:
                    p = subprocess.Popen([KILN, "daemon"], cwd=d, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
                    p.stdout.readline()  # "kiln daemon running"
                    daemons.append(p)
                version += 1
                marker = f"<!-- pool bench version {version} -->"
                for i in range(n):
                    f = copy / "p" / str(i) / "index.html"
                    text = f.read_text().split("<!-- pool bench")[0]
                    f.write_text(text + marker)
                start = time.perf_counter()
                for i in range(n):
                    r.send("XADD", f"{pool}:events", "*", "targets", f"/p/{i}/\n")
                for i in range(n):
                    r.read()
                bucket = store / "kiln" / pool / "p"
                baked_at = None
                while True:
                    # Baked somewhere (sampled: every 50th page), before it is published.
                    if baked_at is None and all(any(marker in read_or_empty(d / "out/p" / str(i) / "index.html") for d in dirs) for i in range(0, n, 50)):
                        baked_at = time.perf_counter() - start
                    done = sum(1 for i in range(n) if marker in (bucket / str(i) / "index.html").read_text())
                    if done == n:
                        break
                    if time.perf_counter() - start > 300:
                        raise RuntimeError(f"{done} of {n} pages published after 300 s")
                    time.sleep(0.02)
                wall = time.perf_counter() - start
                rates.append(n / wall)
                res.setdefault("baked_s", {}).setdefault(workers, []).append(baked_at)
                log(f"pool: {workers} worker(s), run {run + 1}: {n} pages in the bucket after {wall:.2f}s ({n / wall:.0f}/s); baked after {baked_at:.2f}s")
                for p in daemons:
                    p.terminate()
                    p.wait(30)
            res["runs"][workers] = rates
            res[f"pages_per_s_w{workers}"] = statistics.median(rates)
    finally:
        for p in procs:
            p.terminate()
            p.wait(10)
        origin.stop()
    RESULTS["pool"] = res
    log(json.dumps(res))


def bench_passes(n=int(os.environ.get("BENCH_PASS_PAGES", "1000000"))):
    """Memory of the full passes (guarantee 13): a full bake and an
    unchanged re-bake of an n-page site on the real disk ($BENCH_DISK),
    peak RSS of each and the index's size. `KILN_BIN` compares builds."""
    site = gen_site(n)
    origin = Origin(site)
    d = fresh(DISK / f"passes-{n}")
    (d / "site.toml").write_text('[site]\nout = "out"\n[crawl]\nmax-pages = 10000000\n')
    result = {"pages": pages_of(n), "filesystem": fs_type(DISK), "kiln": str(KILN)}
    try:
        for k in ("full", "rebake"):
            log(f"passes: {k} of {n}")
            t = timed([KILN, "-q", "build", "--origin", origin.url], cwd=d)
            result[f"{k}_s"] = t.wall
            result[f"{k}_peak_rss_mib"] = round(t.rss / 1024, 1)
        result["index_mib"] = round(sum(f.stat().st_size for f in (d / ".kiln").rglob("*") if f.is_file()) / 2**20, 1)
    finally:
        origin.stop()
        shutil.rmtree(d, ignore_errors=True)
    log(json.dumps(result))
    RESULTS.setdefault("passes", []).append(result)


def bench_rebake(n=10000):
    """A full bake, then a re-bake of the unchanged site, on the real disk
    ($BENCH_DISK): every page is re-checked with the origin (If-None-Match /
    If-Modified-Since; nginx answers 304). Beside it: `wget --mirror -N` on
    its own mirror (what it re-checks), and the origin's own 304 rate (wrk
    sending every page's ETag), the limit for any re-checker."""
    site = gen_site(n)
    origin = Origin(site)
    work = DISK / f"rebake-{n}"
    shutil.rmtree(work, ignore_errors=True)
    fs = fs_type(DISK)
    result = {"pages": pages_of(n), "filesystem": fs, "full": [], "rebake": [], "wget_n": []}
    try:
        for r in range(RUNS):
            d = fresh(work / f"kiln-{r}")
            (d / "site.toml").write_text('[site]\nout = "out"\n[crawl]\nmax-pages = 10000000\n')
            log(f"rebake run {r + 1}/{RUNS}")
            for k in ("full", "rebake"):
                t = timed([KILN, "-q", "build", "--origin", origin.url], cwd=d)
                result[k].append((t.wall, t.cpu))
            baked = sum(1 for _ in (d / "out").rglob("index.html"))
            assert baked == pages_of(n), f"kiln baked {baked} pages"
        w = fresh(work / "wget")
        subprocess.run(["wget", "--mirror", "-np", "-nv", "-q", "-e", "robots=off", "-P", w, origin.url + "/"])
        for r in range(RUNS):
            t = time.perf_counter()
            p = subprocess.run(["wget", "--mirror", "-N", "-np", "-S", "-e", "robots=off", "-P", w, origin.url + "/"], capture_output=True, text=True)
            wall = time.perf_counter() - t
            asked = sum(1 for line in p.stderr.splitlines() if line.strip().startswith("HTTP/1.1 "))
            result["wget_n"].append((wall, asked))
        result["origin_304_rps"] = wrk_304_rate(origin.url, site, n)
    finally:
        origin.stop()
        shutil.rmtree(work, ignore_errors=True)
    for k in ("full", "rebake"):
        result[f"{k}_s"] = statistics.median(w for w, _ in result[k])
        result[f"{k}_cpu_s"] = statistics.median(c for _, c in result[k])
    result["wget_n_s"] = statistics.median(w for w, _ in result["wget_n"])
    result["wget_n_requests"] = statistics.median(a for _, a in result["wget_n"])
    result["origin_304_limit_s"] = pages_of(n) / result["origin_304_rps"]
    log(json.dumps({k: v for k, v in result.items() if not isinstance(v, list)}))
    RESULTS["rebake"] = result


def wrk_304_rate(origin_url, site, n):
    """The origin's rate for conditional requests that all answer 304: wrk
    sends each page's ETag (nginx's: hex mtime - hex size)."""
    lines = []
    for path in ["/"] + [f"/list/{k}/" for k in range((n + 99) // 100)] + [f"/p/{i}/" for i in range(n)]:
        st = (site / path.lstrip("/") / "index.html").stat()
        lines.append(f'{path} "{int(st.st_mtime):x}-{st.st_size:x}"')
    # The ETags must be nginx's, or wrk would measure 200s: check a few.
    port = int(origin_url.rsplit(":", 1)[1])
    for line in (lines[0], lines[1], lines[-1]):
        path, etag = line.split(" ", 1)
        c = http.client.HTTPConnection("127.0.0.1", port)
        c.request("GET", path, headers={"If-None-Match": etag})
        status = c.getresponse().status
        c.close()
        assert status == 304, f"{path} with {etag} answered {status}, not 304"
    urls = OUT / "etags.txt"
    OUT.mkdir(parents=True, exist_ok=True)
    urls.write_text("\n".join(lines) + "\n")
    p = subprocess.run(["wrk", "-t2", "-c16", "-d5s", "-s", ROOT / "bench/distinct.lua", origin_url, "--", urls], capture_output=True, text=True, check=True)
    rate = None
    for line in p.stdout.splitlines():
        if line.startswith("Requests/sec:"):
            rate = float(line.split()[1])
        if "Non-2xx or 3xx" in line:
            raise RuntimeError(f"wrk got answers other than 304: {p.stdout}")
    if rate is None:
        raise RuntimeError(p.stdout)
    return rate


def bench_concurrency(n=10000):
    """The default `origin.concurrency` against its neighbours: full bakes of
    the 10k site on tmpfs and on disk with 4 to 64 requests at once."""
    site = gen_site(n)
    origin = Origin(site)
    rows = []
    try:
        for base in (OUT, DISK):
            fs = fs_type(base)
            work = base / "concurrency"
            shutil.rmtree(work, ignore_errors=True)
            for c in (4, 8, 16, 32, 64):
                walls, cpus = [], []
                for r in range(RUNS):
                    log(f"concurrency {c} on {fs} run {r + 1}/{RUNS}")
                    t = kiln_bake(origin.url, n, f"[origin]\nconcurrency = {c}\n", out=work / f"c{c}-{r}")
                    walls.append(t.wall)
                    cpus.append(t.cpu)
                rows.append({"filesystem": fs, "concurrency": c, "kiln_s": statistics.median(walls), "kiln_cpu_s": statistics.median(cpus), "runs": walls})
                log(json.dumps(rows[-1]))
            shutil.rmtree(work, ignore_errors=True)
    finally:
        origin.stop()
    RESULTS["concurrency"] = rows


FRONT_CONF = """worker_processes 2;
daemon off;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
worker_rlimit_nofile 16384;
events {{ worker_connections 8192; }}
http {{
  types {{ text/html html; }}
  default_type application/octet-stream;
  access_log off;
  client_body_temp_path {d}/tmp; proxy_temp_path {d}/tmp; fastcgi_temp_path {d}/tmp; uwsgi_temp_path {d}/tmp; scgi_temp_path {d}/tmp;
  {body}
}}
"""

CACHE_LOCK_SERVER = """proxy_cache_path {d}/cache levels=1:2 keys_zone=pages:10m;
  server {{
    listen 127.0.0.1:{port};
    location / {{
      proxy_pass http://127.0.0.1:{origin};
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_cache pages;
      proxy_cache_valid 200 10m;
      proxy_cache_lock on;
      proxy_cache_lock_timeout 10s;
    }}
  }}"""


def start_front(body, port):
    d = Path(tempfile.mkdtemp(prefix="kiln-front-"))
    os.chmod(d, 0o755)  # nginx's workers (nobody) keep the cache here
    (d / "tmp").mkdir()
    os.chmod(d / "tmp", 0o777)
    (d / "nginx.conf").write_text(FRONT_CONF.format(d=d, body=body.replace("{d}", str(d))))
    p = subprocess.Popen(["nginx", "-p", d, "-c", d / "nginx.conf"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wait_port(port)
    return p, d


def burst(port, path, n):
    """n anonymous GETs of path, all sent at once: each one's latency and status."""
    import asyncio

    async def one(start):
        await start.wait()
        t0 = time.perf_counter()
        r, w = await asyncio.open_connection("127.0.0.1", port)
        w.write(f"GET {path} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n".encode())
        data = await r.read()
        w.close()
        return time.perf_counter() - t0, int(data.split(b" ", 2)[1])

    async def all_of_them():
        start = asyncio.Event()
        tasks = [asyncio.create_task(one(start)) for _ in range(n)]
        await asyncio.sleep(0.05)  # every task is waiting on the start line
        start.set()
        return await asyncio.gather(*tasks)

    return asyncio.run(all_of_them())


def bench_misses(visitors=500, rounds=5, render_ms=50):
    """A crowd on a page nobody has baked yet: origin requests and latency
    behind the kiln block without fill (before), with fill (after), and
    behind nginx's proxy_cache_lock alone. The origin is a threaded Python
    app that takes render_ms per page."""
    origin_port = free_port()
    origin = subprocess.Popen([sys.executable, ROOT / "bench/slow_origin.py", str(origin_port), str(render_ms)])
    wait_port(origin_port)
    base = DISK
    base.mkdir(parents=True, exist_ok=True)
    site = Path(tempfile.mkdtemp(prefix="kiln-misses-", dir=base))
    os.chmod(site, 0o755)
    (site / "site.toml").write_text(f'[site]\nout = "public"\n[origin]\nurl = "http://127.0.0.1:{origin_port}"\n')
    (site / "public").mkdir()
    os.chmod(site / "public", 0o755)
    daemon, daemon_addr = start_daemon(site)
    rows = []
    try:
        for vi, variant in enumerate(("kiln block, no fill", "kiln block, fill", "proxy_cache_lock alone")):
            port = free_port()
            if variant == "proxy_cache_lock alone":
                body = CACHE_LOCK_SERVER.format(port=port, origin=origin_port, d="{d}")
            else:
                fill = daemon_addr if variant.endswith(", fill") else "off"
                body = subprocess.run([KILN, "nginx", "--listen", f"127.0.0.1:{port}", "--fill", fill], cwd=site, check=True, stdout=subprocess.PIPE, text=True).stdout
            front, d = start_front(body, port)
            try:
                for r in range(rounds):
                    path = f"/posts/v{vi}-{r}/"  # a page nobody has asked for yet
                    seen = burst(port, path, visitors)
                    conn = http.client.HTTPConnection("127.0.0.1", origin_port)
                    conn.request("GET", f"/__count?{path}")
                    hits = int(conn.getresponse().read())
                    lat = [t * 1000 for t, _ in seen]
                    ok = sum(1 for _, st in seen if st == 200)
                    row = {"variant": variant, "round": r, "visitors": visitors, "ok": ok, "origin_requests": hits,
                           "p50_ms": round(percentile(lat, 50), 1), "p99_ms": round(percentile(lat, 99), 1), "max_ms": round(max(lat), 1)}
                    log("misses", json.dumps(row))
                    rows.append(row)
            finally:
                front.terminate()
                front.wait(10)
                shutil.rmtree(d, ignore_errors=True)
    finally:
        daemon.terminate()
        daemon.wait(30)
        origin.terminate()
        shutil.rmtree(site, ignore_errors=True)
    summary = []
    for variant in dict.fromkeys(r["variant"] for r in rows):
        rs = [r for r in rows if r["variant"] == variant]
        summary.append({"variant": variant, "rounds": len(rs), "visitors": visitors, "render_ms": render_ms,
                        "origin_requests_median": statistics.median(r["origin_requests"] for r in rs),
                        "ok_min": min(r["ok"] for r in rs),
                        "p50_ms_median": statistics.median(r["p50_ms"] for r in rs),
                        "p99_ms_median": statistics.median(r["p99_ms"] for r in rs),
                        "max_ms_median": statistics.median(r["max_ms"] for r in rs)})
    for s_ in summary:
        print(f"| {s_['variant']} | {s_['origin_requests_median']} | {s_['ok_min']}/{visitors} | {s_['p50_ms_median']} | {s_['p99_ms_median']} | {s_['max_ms_median']} |")
    RESULTS["misses"] = {"rounds": rows, "summary": summary, "fs": fs_type(base)}


EDITOR = """
import json, time, urllib.request
from blog.models import Post
port, edits = {port}, {edits}
latencies = []
for i in range(edits):
    title = f"Edit {{i}} {{time.time_ns()}}"
    post = Post.objects.get(pk=1)
    post.title = title
    start = time.perf_counter()
    post.save()
    pending = {{"/posts/1/", "/", "/feed.xml"}}
    while pending:
        for path in sorted(pending):
            with urllib.request.urlopen(f"http://127.0.0.1:{{port}}{{path}}") as r:
                if title in r.read().decode():
                    pending.discard(path)
        if time.perf_counter() - start > 5:
            raise SystemExit(f"edit {{i}}: {{sorted(pending)}} not fresh within 5 s")
    latencies.append((time.perf_counter() - start) * 1000)
    time.sleep(0.05)
print("LATENCIES " + json.dumps(latencies))
"""


def bench_django(edits=int(os.environ.get("BENCH_EDITS", "60"))):
    rows = []
    for window in (None, 0.05):
        rows.append(django_run(edits, window))
    RESULTS["django"] = rows


def django_run(edits, batch_window):
    """ORM save → the post, the list and the feed served new by nginx: the
    example Django blog (kiln-django at its defaults, runserver), the kiln
    daemon, nginx with the block kiln generates. Measured from the save()
    call in a separate Django process to the moment all three URLs answer
    the new title through nginx."""
    base = DISK
    base.mkdir(parents=True, exist_ok=True)
    site = Path(tempfile.mkdtemp(prefix="kiln-django-", dir=base))
    os.chmod(site, 0o755)
    shutil.copytree(ROOT / "examples/django-blog", site, dirs_exist_ok=True)
    for junk in ("public", ".kiln", "db.sqlite3"):
        shutil.rmtree(site / junk, ignore_errors=True)
    if batch_window is not None:
        # The setting before this change (kiln-django held changes 50 ms).
        with open(site / "blogsite/settings.py", "a") as f:
            f.write(f"\nKILN['batch_window'] = {batch_window}\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "integrations/django"), "BLOG_DB": str(site / "db.sqlite3"), "PYTHONDONTWRITEBYTECODE": "1"}
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=site, env=env, check=True)
    subprocess.run([sys.executable, "manage.py", "seed_demo"], cwd=site, env=env, check=True, stdout=subprocess.DEVNULL)
    django_port = free_port()
    origin = f"http://127.0.0.1:{django_port}"
    daemon = subprocess.Popen([KILN, "-q", "--origin", origin, "daemon", "--listen", "127.0.0.1:0"], cwd=site, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    daemon_addr = daemon.stdout.readline().strip().rsplit("http://", 1)[1]
    env.update({"KILN_URL": f"http://{daemon_addr}", "KILN_SPOOL": str(site / ".kiln/public/queue")})
    django = subprocess.Popen([sys.executable, "manage.py", "runserver", f"127.0.0.1:{django_port}", "--noreload"], cwd=site, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    front = None
    try:
        wait_port(django_port)
        subprocess.run([KILN, "-q", "--origin", origin, "build"], cwd=site, check=True)
        os.chmod(site / "public", 0o755)
        port = free_port()
        block = subprocess.run([KILN, "--origin", origin, "nginx", "--listen", f"127.0.0.1:{port}", "--fill", daemon_addr], cwd=site, check=True, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True).stdout
        front, d = start_front(block, port)
        out = subprocess.run([sys.executable, "manage.py", "shell", "-c", EDITOR.format(port=port, edits=edits)], cwd=site, env=env, check=True, stdout=subprocess.PIPE, text=True).stdout
        lat = json.loads(out.split("LATENCIES ", 1)[1])
        row = {"batch_window": batch_window or 0, "edits": len(lat), "p50_ms": round(percentile(lat, 50), 1), "p90_ms": round(percentile(lat, 90), 1),
               "p99_ms": round(percentile(lat, 99), 1), "max_ms": round(max(lat), 1), "fs": fs_type(base)}
        log("django", json.dumps(row))
        print(f"| {row['batch_window']} | {row['edits']} | {row['p50_ms']} | {row['p90_ms']} | {row['p99_ms']} | {row['max_ms']} |")
        return row
    finally:
        if front:
            front.terminate()
            front.wait(10)
        django.terminate()
        daemon.terminate()
        daemon.wait(30)
        shutil.rmtree(site, ignore_errors=True)


def main():
    which = sys.argv[1:] or ["bake", "rebake", "concurrency", "latency", "incremental", "memory", "render", "misses", "django"]
    WORK.mkdir(parents=True, exist_ok=True)
    OUT.mkdir(parents=True, exist_ok=True)
    for name in which:
        globals()[f"bench_{name}"]()
        RESULTS["machine"] = {"nproc": os.cpu_count(), "kernel": os.uname().release}
        save()
    print(json.dumps(RESULTS, indent=2))


def save():
    """Merges this run's sections into bench/out/results.json (after each section)."""
    dest = ROOT / "bench/out"
    dest.mkdir(exist_ok=True)
    prev = {}
    if (dest / "results.json").exists():
        prev = json.loads((dest / "results.json").read_text())
    prev.update(RESULTS)
    (dest / "results.json").write_text(json.dumps(prev, indent=2))


if __name__ == "__main__":
    main()
