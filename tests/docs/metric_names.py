#!/usr/bin/env python3
"""tests/docs/metric_names.py ROOT - the metric names the documents show
are the ones the code exports, both ways.

1. Every name in a code span or code block of README.md and docs/*.md
   that looks like a metric (pool_..., sluice_..., demo_...) is a family
   the code writes (a string literal in src/ or tools/; a _bucket, _count
   or _sum sample of one; `pool_autotune_*` a prefix of one), or else an
   identifier of the code (a function, type or field the text names).
2. Every family the code writes (the string literals that name metrics
   in the files that export them) is named by some document; the
   shorthand `sluice_retry_in_flight` / `_waiting` counts for
   sluice_retry_waiting.

Exit 0 when both hold, 1 with one line per difference."""
import glob
import os
import re
import sys

root = sys.argv[1] if len(sys.argv) > 1 else "."
os.chdir(root)

# docs/performance.md and docs/RATIONALE.md are records of measurements
# and decisions (names of their time included), not a reference.
docs = ["README.md"] + sorted(
    p for p in glob.glob("docs/*.md") if os.path.basename(p) not in ("performance.md", "RATIONALE.md"))

def read(path):
    with open(path, encoding="utf-8", errors="replace") as f:
        return f.read()

code = {"CMakeLists.txt": read("CMakeLists.txt")}
for top in ("src", "tools", "include", "examples", "tests", "bench", "cmake"):
    for p in glob.glob(top + "/**/*", recursive=True):
        if p.endswith((".c", ".h", ".def", ".html", ".py", ".sh", "CMakeLists.txt", ".cmake")) and os.path.isfile(p):
            code[p] = read(p)
# Identifiers of the C code (strings and comments taken out, so a metric's
# name in a string is not an identifier), and the CMake targets.
c_code = "\n".join(t for p, t in code.items() if p.endswith((".c", ".h", ".def")))
c_code = re.sub(r'"(\\.|[^"\\\n])*"|/\*.*?\*/|//[^\n]*', " ", c_code, flags=re.S)
identifiers = set(re.findall(r"\b[A-Za-z_][A-Za-z0-9_]*\b", c_code))
cmake = "\n".join(t for p, t in code.items() if p.endswith(("CMakeLists.txt", ".cmake")))
identifiers |= set(re.findall(r"add_(?:library|executable)\(\s*([A-Za-z0-9_]+)", cmake))
exported_text = "\n".join(t for p, t in code.items() if p.startswith(("src/", "tools/")))
literals = set(re.findall(r'"((?:pool|sluice|demo)_[a-z0-9_:]*)', exported_text))

NAME = re.compile(r"(?<![A-Za-z0-9_./-])((?:pool|sluice|demo)_[a-z0-9_:]*[a-z0-9_])")
status = 0
documented = set()

def spans(text):
    """Code spans and the lines of fenced blocks, in order."""
    out = []
    fenced = False
    for line in text.split("\n"):
        if line.startswith("```"):
            fenced = not fenced
            continue
        if fenced:
            out.append(line)
        else:
            out.extend(re.findall(r"`([^`]+)`", line))
    return out

for doc in docs:
    previous = None
    for span in spans(read(doc)):
        short = re.fullmatch(r"(_[a-z0-9_]+)", span.strip())
        if short and previous:
            # `a_b_c` / `_d`: the shorthand for a sibling of a_b_c.
            cut = [m.start() for m in re.finditer("_", previous)]
            documented.update(previous[:c] + short.group(1) for c in cut)
            continue
        for name in NAME.findall(span):
            name = name.rstrip(":")
            documented.add(name)
            previous = name
            base = re.sub(r"_(bucket|count|sum)$", "", name)
            if name in literals or base in literals:
                continue
            if name.endswith("_") and any(l.startswith(name) for l in literals | identifiers):
                continue
            if name in identifiers or base in identifiers:
                continue
            print("metric_names: %s names `%s`, which the code neither exports nor defines" % (doc, name))
            status = 1

# The families the code writes: literals in the files that export metrics
# that are neither identifiers, config keys nor prefixes.
exporters = [p for p in code if re.match(r"(src/(obs|service|cluster|sync)/|tools/sluice/demo)", p)]
families = set()
for p in exporters:
    for lit in re.findall(r'"((?:pool|sluice|demo)_[a-z0-9_]*[a-z0-9])"', code[p]):
        if lit in identifiers or re.search(r"_(bucket|count|sum)$", lit):
            continue
        families.add(lit)
keys = set(re.findall(r'\.name = "([a-z0-9_]+)"', read("src/config/schema.c")))
keys |= set(re.findall(r'\.name = "([a-z0-9_]+)"', "\n".join(code.get(p, "") for p in code if p.startswith("tools/"))))
for fam in sorted(families - keys):
    if fam not in documented:
        print("metric_names: the code exports %s, which no document names" % fam)
        status = 1

if status == 0:
    print("metric_names: %d documents; %d exported families, every one documented" % (len(docs), len(families - keys)))
sys.exit(status)
