#!/usr/bin/env python3
"""Prints the Markdown tables of BENCHMARKS.md from bench/out/results.json."""
import json
from pathlib import Path

r = json.loads((Path(__file__).resolve().parent / "out/results.json").read_text())


def ok(cond):
    return "met" if cond else "**missed**"


if "bake" in r:
    print("| pages | kiln | wget --mirror | raw write floor | origin limit (wrk) | kiln ÷ wget | kiln ÷ floor |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for b in r["bake"]:
        print(f"| {b['pages']:,} | {b['kiln_pps']:,.0f} p/s ({b['kiln_s']:.2f} s) | {b['wget_pps']:,.0f} p/s ({b['wget_s']:.2f} s) | {b['floor_pps']:,.0f} files/s ({b['floor_s']:.3f} s) | {b['origin_rps']:,.0f} req/s | {b['kiln_vs_wget']:.2f}× ({ok(b['kiln_vs_wget'] >= 2)}) | {b['kiln_vs_floor']:.0%} ({ok(b['kiln_vs_floor'] >= 0.8)}) |")
    print()
if "latency" in r:
    l = r["latency"]
    print(f"| intake | p50 | p99 | max | target p99 ≤ {25 + l['debounce_ms']} ms |")
    print("|---|---:|---:|---:|---|")
    for mode in ("http", "spool"):
        m = l[mode]
        print(f"| {mode} | {m['p50_ms']:.1f} ms | {m['p99_ms']:.1f} ms | {m['max_ms']:.1f} ms | {ok(m['p99_ms'] <= 25 + l['debounce_ms'])} |")
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
