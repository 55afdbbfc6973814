"""Prints the README's ```sh blocks marked `<!-- ci -->` (installing kiln,
the two commands), in order, as one bash script for .ci/run. The other
blocks are run by tests/it/readme.rs."""
import pathlib
import sys

readme = pathlib.Path(__file__).resolve().parent.parent / "README.md"
lines = readme.read_text().splitlines()
previous = ""
i = 0
out = []
while i < len(lines):
    line = lines[i]
    if line.lstrip().startswith("```sh"):
        start = i + 1
        i += 1
        block = []
        while not lines[i].lstrip().startswith("```"):
            block.append(lines[i])
            i += 1
        if previous.strip() == "<!-- ci -->":
            out.append(f"echo '### README.md line {start}'")
            out.extend(block)
    if line.strip():
        previous = line
    i += 1
if not out:
    sys.exit("README.md has no block marked <!-- ci -->")
print("\n".join(out))
