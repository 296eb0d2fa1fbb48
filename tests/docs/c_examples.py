#!/usr/bin/env python3
"""tests/docs/c_examples.py CC ROOT - the C examples a new user copies
from README.md, docs/config.md, docs/service.md and docs/sync.md compile against the
public headers as they stand (-std=c11 -Wall -Wextra -Werror).

Each ```c block of those documents is listed in BLOCKS below with how it
is compiled: "tu" (the block is a translation unit), "body" (the block is
the body of a function), "split:TEXT" (a translation unit up to the line
that starts with TEXT, the rest a function body) or "copy:FILE" (not
compiled here: FILE, a test program, compiles and runs it, and this test
checks that the copy there has not drifted from the document: every
statement of the block must appear in FILE as the document writes it,
whitespace aside; consecutive statements may be split between a test and
the helpers it calls, and lines of the test's own may come between them,
but a statement or comment changed on one side only fails, naming the
block and its first line not found in FILE). A line that is only
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
    BLOCKS[("docs/sync.md", n)] = "copy:tests/sync/test_examples.c"
BLOCKS[("docs/sync.md", 11)] = "body"
FLAGS = ["-std=c11", "-Wall", "-Wextra", "-Werror", "-Wno-unused-parameter", "-Wno-unused-function",
         "-Wno-unused-variable", "-Wno-unused-but-set-variable", "-fsyntax-only"]

def blocks(path):
    """The ```c blocks of path: (line of the block's first line, its lines)."""
    out, cur = [], None
    for number, line in enumerate(open(path, encoding="utf-8").read().split("\n"), 1):
        if cur is None and line.startswith("```c"):
            cur, first = [], number + 1
        elif cur is not None and line.startswith("```"):
            out.append((first, cur))
            cur = None
        elif cur is not None:
            cur.append(line)
    return out


def copy_drift(lines, first, copy_path):
    """None when every statement of the block is in copy_path (whitespace
    aside), else (document line, its text) where the copy stops matching.
    The block is cut greedily into the longest runs found in the copy that
    end at a statement's end (`;`, `{`, `}` or `*/`)."""
    text, line_of = [], []
    for n, line in enumerate(lines):
        for c in line:
            if not c.isspace():
                text.append(c)
                line_of.append(n)
    text = "".join(text)
    copy = re.sub(r"\s+", "", open(copy_path, encoding="utf-8").read())
    start = 0
    while start < len(text):
        end = start
        while end < len(text) and text[start:end + 1] in copy:
            end += 1
        while end > start and end < len(text) and not (text[end - 1] in ";{}" or text[end - 2:end] == "*/"):
            end -= 1
        if end == start:
            return first + line_of[start], lines[line_of[start]].strip()
        start = end
    return None

status = 0
seen = set()
for doc in sorted({d for d, _ in BLOCKS}):
    found = blocks(os.path.join(root, doc))
    for i, (first, lines) in enumerate(found, 1):
        seen.add((doc, i))
        mode = BLOCKS.get((doc, i))
        if mode is None:
            print("c_examples: %s: ```c block %d is not in tests/docs/c_examples.py's table" % (doc, i))
            status = 1
            continue
        if mode.startswith("copy:"):
            drift = copy_drift(lines, first, os.path.join(root, mode[5:]))
            if drift:
                print("c_examples: %s ```c block %d (line %d, `%s`) is not in %s as the document writes it:"
                      " from line %d, `%s`, the copy differs; change both together"
                      % (doc, i, first, lines[0].strip(), mode[5:], drift[0], drift[1]))
                status = 1
            else:
                print("c_examples: %s block %d is in %s statement for statement" % (doc, i, mode[5:]))
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
