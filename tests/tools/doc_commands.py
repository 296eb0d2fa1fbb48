#!/usr/bin/env python3
"""tests/tools/doc_commands.py FILE... - print the `sluice ...` commands the
given Markdown files show, one per line: lines of fenced code blocks and of
indented (4-space) blocks that start with "sluice ", with backslash
continuations joined and trailing "# comments" removed. `sluice bench` and
`sluice demo` are left out: they run for minutes and other tests cover them.
Used by tests/tools/cli_ops.sh readme_examples."""
import re
import sys

for path in sys.argv[1:]:
    lines = open(path, encoding="utf-8").read().split("\n")
    inblock = False
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("```"):
            inblock = not inblock
        text = line.strip()
        if (inblock or line.startswith("    ")) and text.startswith("sluice "):
            while text.endswith("\\") and i + 1 < len(lines):
                i += 1
                text = text[:-1] + " " + lines[i].strip()
            text = re.sub(r"\s+#.*$", "", text)
            if not re.match(r"sluice (bench|demo)\b", text):
                print(text)
        i += 1
