#!/usr/bin/env python3
"""Generates a synthetic static site for the benchmarks.

N pages of ~8 KB at /p/<i>/ (each links to 10 siblings and cross-linked pages
plus two shared assets), list pages of 100 links at /list/<k>/, and a root page
linking every list page. Deterministic for a given N.

    gensite.py OUT_DIR N
"""
import os
import sys

FILLER = (
    "Kiln benchmark page. Static files, regenerated the moment content changes. "
    "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor. "
)


def page(i, n):
    links = []
    for d in (1, 2, 3, 5, 8):
        links.append((i + d) % n)
        links.append((i * 7919 + d * 104729) % n)  # cross links far away
    items = "".join(f'<li><a href="/p/{j}/">Page {j}</a></li>' for j in links)
    head = (
        "<!doctype html><html><head><meta charset=utf-8>"
        f"<title>Page {i}</title>"
        '<link rel="stylesheet" href="/static/app.css"><script src="/static/app.js"></script>'
        "</head><body>"
        f'<h1>Page {i}</h1><p><a href="/list/{i // 100}/">list {i // 100}</a> <a href="/">home</a></p>'
        f"<ul>{items}</ul>"
    )
    body = head
    k = 0
    while len(body) < 8000:
        body += f"<p>{FILLER}{i}-{k}</p>"
        k += 1
    return body + "</body></html>\n"


def main():
    out, n = sys.argv[1], int(sys.argv[2])
    os.makedirs(os.path.join(out, "static"), exist_ok=True)
    with open(os.path.join(out, "static/app.css"), "w") as f:
        f.write("body{font-family:sans-serif}\n" * 50)
    with open(os.path.join(out, "static/app.js"), "w") as f:
        f.write("console.log('kiln');\n" * 50)
    lists = (n + 99) // 100
    with open(os.path.join(out, "index.html"), "w") as f:
        f.write("<!doctype html><html><body><h1>Home</h1><ul>")
        for k in range(lists):
            f.write(f'<li><a href="/list/{k}/">List {k}</a></li>')
        f.write("</ul></body></html>\n")
    for k in range(lists):
        d = os.path.join(out, "list", str(k))
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "index.html"), "w") as f:
            f.write(f"<!doctype html><html><body><h1>List {k}</h1><ul>")
            for i in range(k * 100, min(n, (k + 1) * 100)):
                f.write(f'<li><a href="/p/{i}/">Page {i}</a></li>')
            f.write("</ul></body></html>\n")
    for i in range(n):
        d = os.path.join(out, "p", str(i))
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "index.html"), "w") as f:
            f.write(page(i, n))


if __name__ == "__main__":
    main()
