#!/usr/bin/env python3
"""kiln benchmarks, peers measured in the same run. Driven by `bench/run`.

    bench/run                       # everything (about 15 minutes on 2 cores)
    bench/run bake latency          # a subset: bake latency incremental memory render
    BENCH_RUNS=5 bench/run bake     # more repetitions (median is reported)

Generated sites live in $BENCH_WORK (default /tmp/kiln-bench, on disk, cached
between runs); outputs of the tools under test go to $BENCH_OUT (default
/dev/shm/kiln-bench, tmpfs) so that every tool writes to the same, quiet
filesystem. Results are printed as Markdown and saved to bench/out/results.json.
"""
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
KILN = ROOT / "target/release/kiln"
FLOOR = ROOT / "target/release/examples/write_floor"
WORK = Path(os.environ.get("BENCH_WORK", "/tmp/kiln-bench"))
OUT = Path(os.environ.get("BENCH_OUT", "/dev/shm/kiln-bench"))
RUNS = int(os.environ.get("BENCH_RUNS", "3"))
LAST_CPU = 0.0
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


def timed(cmd, cwd=None, env=None):
    """Runs cmd under /usr/bin/time; returns (wall seconds, peak RSS KiB, stdout).
    The child's user+sys CPU seconds are left in LAST_CPU."""
    global LAST_CPU
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
    LAST_CPU = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    return wall, rss, p.stdout


def fresh(path):
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def kiln_bake(origin_url, n, extra_toml=""):
    d = fresh(OUT / "kiln")
    (d / "site.toml").write_text(f'[site]\nout = "out"\n[crawl]\nmax-pages = 10000000\n{extra_toml}')
    wall, rss, out = timed([KILN, "-q", "build", "--origin", origin_url], cwd=d)
    baked = sum(1 for _ in (d / "out").rglob("index.html"))
    assert baked == pages_of(n), f"kiln baked {baked} pages, expected {pages_of(n)}: {out}"
    return wall, rss


def wget_mirror(origin_url, n):
    d = fresh(OUT / "wget")
    wall, rss, _ = timed(["wget", "--mirror", "-np", "-nv", "-q", "-e", "robots=off", "-P", d, origin_url + "/"])
    got = sum(1 for _ in d.rglob("index.html"))
    assert got == pages_of(n), f"wget fetched {got} pages, expected {pages_of(n)}"
    return wall, rss


def write_floor(n, sync=True):
    d = fresh(OUT / "floor")
    wall, rss, _ = timed([FLOOR, d, pages_of(n), PAGE_BYTES] + ([] if sync else ["nosync"]))
    return wall, rss


def wrk_rate(origin_url, site, n):
    urls = Path(OUT / "urls.txt")
    lines = ["/"] + [f"/list/{k}/" for k in range((n + 99) // 100)] + [f"/p/{i}/" for i in range(n)]
    urls.write_text("\n".join(lines) + "\n")
    p = subprocess.run(["wrk", "-t2", "-c16", "-d5s", "-s", ROOT / "bench/distinct.lua", origin_url, "--", urls], capture_output=True, text=True, check=True)
    for line in p.stdout.splitlines():
        if line.startswith("Requests/sec:"):
            return float(line.split()[1])
    raise RuntimeError(p.stdout)


def bench_bake():
    rows = []
    sizes = [int(x) for x in os.environ.get("BENCH_SIZES", "1000,10000,50000").split(",")]
    for n in sizes:
        site = gen_site(n)
        origin = Origin(site)
        try:
            pages = pages_of(n)
            k, w, f, f0 = [], [], [], []
            kc, wc, fc, f0c = [], [], [], []
            # Alternating runs, so a slow spell of the disk hits every tool.
            for r in range(RUNS):
                log(f"bake n={n} run {r + 1}/{RUNS}")
                k.append(kiln_bake(origin.url, n)[0]); kc.append(LAST_CPU)
                w.append(wget_mirror(origin.url, n)[0]); wc.append(LAST_CPU)
                f.append(write_floor(n)[0]); fc.append(LAST_CPU)
                f0.append(write_floor(n, sync=False)[0]); f0c.append(LAST_CPU)
            rate = wrk_rate(origin.url, site, n)
        finally:
            origin.stop()
        med = statistics.median
        km, wm, fm, f0m = med(k), med(w), med(f), med(f0)
        row = {
            "pages": pages,
            "kiln_s": km, "wget_s": wm, "floor_s": fm, "floor_nosync_s": f0m,
            "kiln_pps": pages / km, "wget_pps": pages / wm, "floor_pps": pages / fm, "floor_nosync_pps": pages / f0m,
            "kiln_cpu_s": med(kc), "wget_cpu_s": med(wc), "floor_cpu_s": med(fc), "floor_nosync_cpu_s": med(f0c),
            "origin_rps": rate,
            "kiln_vs_wget": wm / km, "kiln_vs_floor": fm / km,
            "runs": {"kiln": k, "wget": w, "floor": f, "floor_nosync": f0,
                     "kiln_cpu": kc, "wget_cpu": wc, "floor_cpu": fc, "floor_nosync_cpu": f0c},
        }
        rows.append(row)
        log(json.dumps(row))
    fs = subprocess.run(["df", "-T", str(OUT)], capture_output=True, text=True).stdout.splitlines()[-1].split()[1]
    for row in rows:
        row["filesystem"] = fs
    # Kept apart per filesystem, so a disk run does not replace the tmpfs one.
    RESULTS["bake" if fs == "tmpfs" else f"bake_{fs}"] = rows


def start_daemon(cwd):
    p = subprocess.Popen([KILN, "-q", "daemon", "--listen", "127.0.0.1:0"], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = p.stdout.readline().strip()
    return p, line.rsplit("http://", 1)[1]


def percentile(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def bench_latency(n=10000, events=200, debounce="100ms"):
    src = gen_site(n)
    site = WORK / "latency-site"
    shutil.rmtree(site, ignore_errors=True)
    shutil.copytree(src, site)
    os.chmod(site, 0o755)
    origin = Origin(site)
    d = fresh(OUT / "latency")
    (d / "site.toml").write_text(f'[site]\nout = "out"\n[daemon]\ndebounce = "{debounce}"\n[origin]\nurl = "{origin.url}"\n')
    subprocess.run([KILN, "-q", "build"], cwd=d, check=True, stdout=subprocess.DEVNULL)
    daemon, addr = start_daemon(d)
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
                    tmp = d / ".kiln/queue/tmp" / f"ev-{k}"
                    tmp.write_text(f"/p/{i}/\n")
                    os.rename(tmp, d / ".kiln/queue/new" / f"ev-{k}")
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
            log(mode, json.dumps(result[mode]))
    finally:
        daemon.terminate()
        daemon.wait(20)
        origin.stop()
    RESULTS["latency"] = result


def bench_incremental():
    rows = []
    for n in (1000, 100000):
        site = gen_site(n)
        origin = Origin(site)
        try:
            d = fresh(OUT / f"incr-{n}")
            (d / "site.toml").write_text(f'[site]\nout = "out"\n[crawl]\nmax-pages = 10000000\n[origin]\nurl = "{origin.url}"\n')
            log(f"incremental: baking {n} pages for the index")
            bake_s, rss, out = timed([KILN, "-q", "build"], cwd=d)
            assert f"{pages_of(n)} written" in out, out
            times = []
            for _ in range(max(RUNS, 5)):
                wall, _, out = timed([KILN, "regen", "tag:grp:12"], cwd=d)
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
            rows.append({"pages": pages_of(n), "peak_rss_kib": kiln_bake(origin.url, n)[1]})
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
        shutil.rmtree(k / ".kiln", ignore_errors=True)
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


def cpu_timed(cmd, cwd=None):
    """Runs cmd; returns (wall seconds, user+sys CPU seconds of the child)."""
    import resource
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    subprocess.run([str(c) for c in cmd], cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - t
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)


def bench_rebake(n=10000):
    """A full bake, then re-bakes of the unchanged site, on the real disk
    ($BENCH_DISK, default under /tmp, ext4 here): every page is re-checked
    with the origin (If-None-Match / If-Modified-Since, nginx answers 304)."""
    site = gen_site(n)
    origin = Origin(site)
    disk = Path(os.environ.get("BENCH_DISK", "/tmp/kiln-bench-disk"))
    fs = subprocess.run(["df", "-T", str(disk.parent)], capture_output=True, text=True).stdout.splitlines()[-1].split()[1]
    result = {"pages": pages_of(n), "filesystem": fs, "full": [], "rebake": []}
    try:
        for r in range(RUNS):
            d = fresh(disk)
            (d / "site.toml").write_text('[site]\nout = "out"\n[crawl]\nmax-pages = 10000000\n')
            log(f"rebake run {r + 1}/{RUNS}")
            result["full"].append(cpu_timed([KILN, "-q", "build", "--origin", origin.url], cwd=d))
            result["rebake"].append(cpu_timed([KILN, "-q", "build", "--origin", origin.url], cwd=d))
            baked = sum(1 for _ in (d / "out").rglob("index.html"))
            assert baked == pages_of(n), f"kiln baked {baked} pages"
    finally:
        origin.stop()
    for k in ("full", "rebake"):
        result[f"{k}_s"] = statistics.median(w for w, _ in result[k])
        result[f"{k}_cpu_s"] = statistics.median(c for _, c in result[k])
    log(json.dumps({k: v for k, v in result.items() if not isinstance(v, list)}))
    RESULTS["rebake"] = result


def main():
    which = sys.argv[1:] or ["bake", "latency", "rebake", "incremental", "memory", "render"]
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
