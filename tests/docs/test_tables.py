#!/usr/bin/env python3
"""tests/docs/test_tables.py ROOT - the test tables of the documents list
the tests there are, both ways:

  docs/core-tests.md   a row for every test program of tests/core/CMakeLists.txt
                       (`core_stress_*` covers the stress programs), and each
                       test it names exists somewhere in tests/;
  docs/sync.md         a row of its "## Tests" table for every test program of
                       tests/sync/CMakeLists.txt, and no row for one that is gone;
  docs/AREA-tests.md   for AREA in obs, admin, service, config and cluster: a
                       section "## `PROGRAM` (`SOURCE`)" for every test program
                       of tests/AREA/CMakeLists.txt, and none for one that is
                       gone; in the section of a cmocka program, a row
                       "| `test_case` | what it proves |" for every test case
                       its sources run (cmocka_unit_test*(NAME) in the test
                       list) and no row for a case it no longer runs.

A new test program or test case gets its row (what it proves, in one line,
read from the test) where its area's doc keeps them. Exit 0 when all hold,
1 with one line per difference, naming the test and the document."""
import os
import re
import sys

root = sys.argv[1] if len(sys.argv) > 1 else sys.exit("usage: test_tables.py ROOT")
AREAS = ["obs", "admin", "service", "config", "cluster"]
problems = []


def fail(text):
    problems.append("test_tables: " + text)


def read(path):
    with open(os.path.join(root, path), encoding="utf-8") as f:
        return f.read()


def programs(cmake_path):
    """{test name: [source files, relative to the CMakeLists.txt's folder]}
    of the tests a CMakeLists.txt adds; foreach lists expanded (the core's
    stress programs), a test whose COMMAND is an add_executable target
    taking that target's sources."""
    text = re.sub(r"#[^\n]*", "", read(cmake_path))
    found, executables = {}, {}
    for m in re.finditer(r"\badd_executable\(\s*([A-Za-z0-9_]+)([^)]*)\)", text):
        executables[m.group(1)] = re.findall(r"[A-Za-z0-9_./]+\.c\b", m.group(2))
    for m in re.finditer(r"\bforeach\(\s*(\w+)\s+([^)]*)\)(.*?)\bendforeach\(\)", text, re.S):
        var, values, body = m.group(1), m.group(2).split(), m.group(3)
        for call in re.finditer(r"\bsluice_add_test\(([^)]*)\)", body):
            for value in values:
                args = call.group(1).replace("${%s}" % var, value).split()
                found[args[args.index("NAME") + 1]] = sources_of(args)
        text = text.replace(m.group(0), "")
    for m in re.finditer(r"\bsluice_add_test\(([^)]*)\)", text):
        args = m.group(1).split()
        found[args[args.index("NAME") + 1]] = sources_of(args)
    for m in re.finditer(r"\badd_test\(([^)]*)\)", text):
        args = m.group(1).split()
        name = args[args.index("NAME") + 1]
        command = args[args.index("COMMAND") + 1] if "COMMAND" in args else ""
        found[name] = executables.get(command, [])
    return found


def sources_of(args):
    if "SOURCES" not in args:
        return []
    out = []
    for a in args[args.index("SOURCES") + 1:]:
        if not a.endswith(".c"):
            break
        out.append(a)
    return out


def cases(source_path):
    """The cmocka test cases a source runs: the names in its test list."""
    text = re.sub(r"/\*.*?\*/|//[^\n]*", "", read(source_path), flags=re.S)
    return re.findall(r"\bcmocka_unit_test\w*\(\s*([A-Za-z_]\w*)", text)


every_test = set()
for dirpath, _, files in os.walk(os.path.join(root, "tests")):
    if "CMakeLists.txt" in files:
        every_test |= set(programs(os.path.relpath(os.path.join(dirpath, "CMakeLists.txt"), root)))

# docs/core-tests.md: one row per core program.
core_doc = read("docs/core-tests.md")
for t in sorted(programs("tests/core/CMakeLists.txt")):
    if t.startswith("core_stress_") and "`core_stress_*`" in core_doc:
        continue
    if not re.search(r"^\| `%s`" % re.escape(t), core_doc, re.M):
        fail("%s (tests/core) has no row in docs/core-tests.md" % t)
for t in sorted(set(re.findall(r"`((?:core|sync|base|sys|obs)_[a-z0-9_]*)`", core_doc))):
    if t not in every_test:
        fail("docs/core-tests.md names %s, which no CMakeLists.txt defines" % t)

# docs/sync.md's "## Tests" table.
sync_doc = read("docs/sync.md")
at = re.search(r"^## Tests", sync_doc, re.M)
sync_table = sync_doc[at.start():] if at else ""
if not at:
    fail("docs/sync.md has no \"## Tests\" section")
for t in sorted(programs("tests/sync/CMakeLists.txt")):
    if not re.search(r"^\| `%s`" % re.escape(t), sync_table, re.M):
        fail("%s (tests/sync) has no row in docs/sync.md's Tests table" % t)
for t in re.findall(r"^\| `([a-z0-9_]*)`", sync_table, re.M):
    if t not in every_test:
        fail("docs/sync.md's Tests table names %s, which no CMakeLists.txt defines" % t)

# docs/AREA-tests.md: a section per program, a row per test case.
for area in AREAS:
    doc_path = "docs/%s-tests.md" % area
    if not os.path.exists(os.path.join(root, doc_path)):
        fail("%s is missing: it lists the tests of tests/%s" % (doc_path, area))
        continue
    doc = read(doc_path)
    sections = {}  # program -> (heading, set of rows)
    current = None
    for line in doc.split("\n"):
        m = re.match(r"^## `([a-z0-9_]+)`(.*)$", line)
        if m:
            current = m.group(1)
            if current in sections:
                fail("%s has two sections for %s" % (doc_path, current))
            sections[current] = (m.group(2), [])
            continue
        if line.startswith("## ") or line.startswith("# "):
            current = None
            continue
        m = re.match(r"^\| `([A-Za-z_][A-Za-z0-9_]*)` \|", line)
        if m:
            if current is None:
                fail("%s: the row for %s is in no program's section" % (doc_path, m.group(1)))
            else:
                sections[current][1].append(m.group(1))
    defined = programs("tests/%s/CMakeLists.txt" % area)
    for prog in sorted(defined):
        if prog not in sections:
            fail("%s (tests/%s) has no section \"## `%s` (...)\" in %s" % (prog, area, prog, doc_path))
    for prog in sorted(sections):
        if prog not in defined:
            fail("%s has a section for %s, which tests/%s/CMakeLists.txt does not define" % (doc_path, prog, area))
    for prog in sorted(set(defined) & set(sections)):
        heading, rows = sections[prog]
        srcs = ["tests/%s/%s" % (area, s) for s in defined[prog]]
        run = []
        for s in srcs:
            run += cases(s)
        for path in re.findall(r"`(tests/[^`]*\.c)`", heading):
            if path not in srcs:
                fail("%s: the section of %s names %s, which is not its source (%s)"
                     % (doc_path, prog, path, ", ".join(srcs) or "none"))
        for dup in sorted({r for r in rows if rows.count(r) > 1}):
            fail("%s: %s has two rows in the section of %s" % (doc_path, dup, prog))
        for case in run:
            if case not in rows:
                fail("%s (%s, %s) has no row in %s's section of %s"
                     % (case, prog, " ".join(srcs), prog, doc_path))
        for row in rows:
            if row not in run:
                fail("%s: the section of %s has a row for %s, which %s does not run"
                     % (doc_path, prog, row, " ".join(srcs) or "the program"))

for p in problems:
    print(p, file=sys.stderr)
if problems:
    sys.exit(1)
print("test_tables: docs/core-tests.md, docs/sync.md and docs/{%s}-tests.md list every test" % ",".join(AREAS))
