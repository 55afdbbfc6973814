#!/usr/bin/env python3
"""A second site shape for the full-bake benchmark, unlike gensite.py: a
blog of N posts of ~20 KB at /blog/<year>/<month>/post-number-<i>/ (three
directory levels), each linking to 25 random posts, 4 of 60 tag pages and
a navigation bar of 20 tags; month and year archives and a home page.
Deterministic for a given N.

    genblog.py OUT_DIR N
"""
import os, sys, random
out, n = sys.argv[1], int(sys.argv[2])
rnd = random.Random(7)
def url(i): return f"/blog/{2015 + i % 10}/{1 + i % 12:02d}/post-number-{i}/"
tags = [f"tag{t}" for t in range(60)]
words = "static pages regenerated moment content changes nginx serves baked html anonymous visitors".split()
def w(path, html):
    d = out + path; os.makedirs(d, exist_ok=True)
    open(d + "index.html", "w").write(html)
nav = "".join(f'<a href="/tags/{t}/">{t}</a> ' for t in tags[:20])
for i in range(n):
    mine = rnd.sample(tags, 4)
    links = [url(rnd.randrange(n)) for _ in range(25)]
    body = "".join(f"<p>{' '.join(rnd.choice(words) for _ in range(60))}</p>" for _ in range(25))
    html = (f"<!doctype html><html><head><title>Post {i}</title><link rel=stylesheet href='/s.css'></head><body><nav>{nav}</nav>"
            f"<article><h1>Post {i}</h1>{body}</article><ul>" + "".join(f'<li><a href="{l}">{l}</a></li>' for l in links) +
            "</ul>" + "".join(f'<a href="/tags/{t}/">#{t}</a>' for t in mine) + "</body></html>")
    w(url(i), html)
by_tag = {t: [] for t in tags}
rnd2 = random.Random(7)
for i in range(n):
    for t in rnd2.sample(tags, 4): by_tag[t].append(i)
for t in tags:
    w(f"/tags/{t}/", "<html><body>" + "".join(f'<a href="{url(i)}">p</a>' for i in by_tag[t][:300]) + "</body></html>")
for y in range(2015, 2025):
    for m in range(1, 13):
        w(f"/blog/{y}/{m:02d}/", "<html><body>" + "".join(f'<a href="{url(i)}">p</a>' for i in range(n) if 2015 + i % 10 == y and 1 + i % 12 == m) + "</body></html>")
    w(f"/blog/{y}/", "<html><body>" + "".join(f'<a href="/blog/{y}/{m:02d}/">m</a>' for m in range(1, 13)) + "</body></html>")
w("/", "<html><body>" + "".join(f'<a href="/blog/{y}/">y</a>' for y in range(2015, 2025)) + nav + "</body></html>")
open(out + "/s.css", "w").write("body{}")
