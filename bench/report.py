#!/usr/bin/env python3
"""Prints the Markdown tables of BENCHMARKS.md from bench/out/results.json."""
import json
from pathlib import Path

r = json.loads((Path(__file__).resolve().parent / "out/results.json").read_text())


def ok(cond):
    return "met" if cond else "**missed**"


def bake_table(rows, target):
    print("| pages | filesystem | kiln | wget --mirror | write floor, fdatasync per file | write floor, no sync | origin limit (wrk) | kiln ÷ wget |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|")
    for b in rows:
        print(
            f"| {b['pages']:,} | {b['filesystem']} "
            f"| {b['kiln_pps']:,.0f} p/s ({b['kiln_s']:.2f} s) "
            f"| {b['wget_pps']:,.0f} p/s ({b['wget_s']:.2f} s) "
            f"| {b['floor_pps']:,.0f} files/s ({b['floor_s']:.2f} s) "
            f"| {b['floor_nosync_pps']:,.0f} files/s ({b['floor_nosync_s']:.2f} s) "
            f"| {b['origin_rps']:,.0f} req/s "
            f"| {b['kiln_vs_wget']:.2f}× ({ok(b['kiln_vs_wget'] >= target)}) |"
        )
    print()
    print("| pages | filesystem | CPU (user+sys) per page: kiln | wget | floor (sync) | floor (no sync) | kiln ≤ wget |")
    print("|---:|---|---:|---:|---:|---:|---|")
    for b in rows:
        print(
            f"| {b['pages']:,} | {b['filesystem']} "
            f"| {b['kiln_cpu_us_per_page']:.0f} µs ({b['kiln_cpu_s']:.2f} s) "
            f"| {b['wget_cpu_us_per_page']:.0f} µs ({b['wget_cpu_s']:.2f} s) "
            f"| {b['floor_cpu_us_per_page']:.0f} µs | {b['floor_nosync_cpu_us_per_page']:.0f} µs "
            f"| {ok(b['kiln_cpu_s'] <= b['wget_cpu_s'])} |"
        )
    print()


for key, target in (("bake", 3), ("bake_ext4", 2)):
    if key in r:
        bake_table(r[key], target)
if "rebake" in r:
    x = r["rebake"]
    print("| run (median) | wall | CPU (user+sys) | requests | target |")
    print("|---|---:|---:|---:|---|")
    print(f"| kiln build, empty output ({x['filesystem']}) | {x['full_s']:.2f} s | {x['full_cpu_s']:.2f} s | {x['pages']:,} | — |")
    print(f"| kiln build again, site unchanged | {x['rebake_s']:.2f} s | {x['rebake_cpu_s']:.2f} s | {x['pages']:,} (all 304) | ≤ 0.5 s: {ok(x['rebake_s'] <= 0.5)} |")
    print(f"| wget --mirror -N again, site unchanged | {x['wget_n_s']:.3f} s | — | {x['wget_n_requests']:.0f} | not a peer (re-checks {x['wget_n_requests']:.0f} of {x['pages']:,}) |")
    print(f"| origin's 304 rate (wrk, every page's ETag) | {x['origin_304_limit_s']:.2f} s | — | {x['origin_304_rps']:,.0f} req/s | the limit |")
    print()
if "concurrency" in r:
    print("| `origin.concurrency` | tmpfs: wall | CPU | ext4: wall | CPU |")
    print("|---:|---:|---:|---:|---:|")
    by = {(x["filesystem"], x["concurrency"]): x for x in r["concurrency"]}
    for c in sorted({x["concurrency"] for x in r["concurrency"]}):
        t, e = by.get(("tmpfs", c)), by.get(("ext4", c))
        cell = lambda x: f"{x['kiln_s']:.2f} s | {x['kiln_cpu_s']:.2f} s" if x else "— | —"
        print(f"| {c}{' (default)' if c == 16 else ''} | {cell(t)} | {cell(e)} |")
    print()
if "latency" in r:
    l = r["latency"]
    print("| intake | p50 | p99 | max | target p99 ≤ 10 ms | 1,000 events for one page: fetches (≤ 2) |")
    print("|---|---:|---:|---:|---|---:|")
    for mode in ("http", "spool"):
        m = l[mode]
        burst = f"{m['burst_fetches']:.0f} ({ok(m['burst_fetches'] <= 2)})" if "burst_fetches" in m else "—"
        print(f"| {mode} | {m['p50_ms']:.1f} ms | {m['p99_ms']:.1f} ms | {m['max_ms']:.1f} ms | {ok(m['p99_ms'] <= 10)} | {burst} |")
    if "storm" in l:
        st = l["storm"]
        print(f"\nChange storm: all {st['pages']:,} pages changed, one `all` event: fresh in {st['seconds']:.2f} s ({st['pages_per_s']:,.0f} pages/s, {st['done']:,} done).")
    print()
if "incremental" in r:
    inc = r["incremental"]
    print("| pages in the index | `kiln regen tag:grp:12` (10 pages), median wall time |")
    print("|---:|---:|")
    for row in inc:
        print(f"| {row['indexed_pages']:,} | {row['regen_s'] * 1000:.1f} ms |")
    if len(inc) == 2:
        ratio = inc[1]["regen_s"] / inc[0]["regen_s"]
        print(f"\n100k ÷ 1k = {ratio:.2f} ({ok(0.75 <= ratio <= 1.25)}: flat within ±25%)")
    print()
if "memory" in r:
    print("| pages baked | peak RSS |")
    print("|---:|---:|")
    for row in r["memory"]:
        print(f"| {row['pages']:,} | {row['peak_rss_kib'] / 1024:.1f} MiB |")
    last = r["memory"][-1]
    print(f"\n100k-page bake ≤ 150 MB: {ok(last['peak_rss_kib'] * 1024 <= 150e6)}")
    print()
if "render" in r:
    x = r["render"]
    print("| tool | 10,000 Markdown posts + index, median wall time |")
    print("|---|---:|")
    print(f"| kiln build (render mode) | {x['kiln_s']:.2f} s |")
    if "hugo_s" in x:
        print(f"| {x['hugo_version'].split(' ')[0]} {x['hugo_version'].split(' ')[1]} | {x['hugo_s']:.2f} s |")
