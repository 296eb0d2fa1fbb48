#!/usr/bin/env python3
"""tests/docs/c_examples.py CC ROOT - the C examples a new user copies
from README.md, docs/config.md, docs/service.md and docs/sync.md compile against the
public headers as they stand (-std=c11 -Wall -Wextra -Werror).

Each ```c block of those documents is listed in BLOCKS below with how it
is compiled: "tu" (the block is a translation unit), "body" (the block is
the body of a function), "split:TEXT" (a translation unit up to the line
that starts with TEXT, the rest a function body) or "skip" (compiled by
another test, named in the table). A line that is only
`...` (code left out) compiles as nothing. What an example calls but does
not define (send_push's push_gateway_send, the application's handlers)
is declared in examples/<document>.h. A block not in the table, or a
table entry whose block is gone, fails the test, so a new example gets a
row here. Exit 0 when every block compiles, 1 otherwise."""
import os
import re
import subprocess
import sys
import tempfile

cc, root = sys.argv[1], sys.argv[2]
here = os.path.dirname(os.path.abspath(__file__))

# (document, index of its ```c block from 1) -> how it compiles
BLOCKS = {
    ("README.md", 1): "split:sluice_pool_config cfg;",
    ("docs/config.md", 1): "tu",
    ("docs/service.md", 1): "tu",
    ("docs/service.md", 2): "body",
}
# docs/sync.md's examples run in tests/sync/test_examples.c (sync_examples)
# with the stubs they call; its last block, the metrics wiring, compiles here.
for n in range(1, 11):
    BLOCKS[("docs/sync.md", n)] = "skip"
BLOCKS[("docs/sync.md", 11)] = "body"
FLAGS = ["-std=c11", "-Wall", "-Wextra", "-Werror", "-Wno-unused-parameter", "-Wno-unused-function",
         "-Wno-unused-variable", "-Wno-unused-but-set-variable", "-fsyntax-only"]

def blocks(path):
    out, cur = [], None
    for line in open(path, encoding="utf-8").read().split("\n"):
        if cur is None and line.startswith("```c"):
            cur = []
        elif cur is not None and line.startswith("```"):
            out.append(cur)
            cur = None
        elif cur is not None:
            cur.append(line)
    return out

status = 0
seen = set()
for doc in sorted({d for d, _ in BLOCKS}):
    found = blocks(os.path.join(root, doc))
    for i, lines in enumerate(found, 1):
        seen.add((doc, i))
        mode = BLOCKS.get((doc, i))
        if mode is None:
            print("c_examples: %s: ```c block %d is not in tests/docs/c_examples.py's table" % (doc, i))
            status = 1
            continue
        if mode == "skip":
            continue
        lines = [re.sub(r"^(\s*)\.\.\.\s*$", r"\1;", l) for l in lines]
        lines = [l.replace("{ ... }", "{ }") for l in lines]
        if mode == "body":
            lines = ["void doc_example(void) {"] + lines + ["}"]
        elif mode.startswith("split:"):
            at = [n for n, l in enumerate(lines) if l.startswith(mode[6:])]
            if not at:
                print("c_examples: %s block %d: no line starts with %r" % (doc, i, mode[6:]))
                status = 1
                continue
            lines = lines[:at[0]] + ["void doc_example(void) {"] + lines[at[0]:] + ["}"]
        prelude = os.path.join(here, "examples", os.path.basename(doc).replace(".md", ".h"))
        with tempfile.NamedTemporaryFile("w", suffix=".c", delete=False) as f:
            # #line: the compiler's messages point into the document.
            f.write('#line 1 "%s block %d"\n' % (doc, i) + "\n".join(lines) + "\n")
            name = f.name
        cmd = [cc] + FLAGS + ["-I", os.path.join(root, "include"), "-include", prelude, name]
        r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True)
        os.unlink(name)
        if r.returncode != 0:
            print("c_examples: %s ```c block %d does not compile:\n%s" % (doc, i, r.stdout))
            status = 1
        else:
            print("c_examples: %s block %d compiles" % (doc, i))
for key in sorted(set(BLOCKS) - seen):
    print("c_examples: %s has no ```c block %d any more (remove its row)" % key)
    status = 1
sys.exit(status)
