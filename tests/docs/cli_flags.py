#!/usr/bin/env python3
"""tests/docs/cli_flags.py SLUICE ROOT - `sluice --help`, each command's
--help, the parsers and the documents agree on the flags.

For every command `sluice --help` lists:
  1. every long flag its parser accepts (a getopt_long table or an
     strcmp on "--flag" in its source files) is shown by `sluice CMD
     --help`, and every --flag that help shows is accepted;
  2. every --flag `sluice --help` mentions in the command's summary is
     accepted by it;
  3. every --flag README.md and docs/*.md (but performance.md and
     RATIONALE.md) show after `sluice CMD` in a code span or code block
     (also `make demo DEMO_ARGS='...'`) is accepted by CMD;
  4. docs/config.md's synopsis of `sluice demo` lists every flag of demo.
`sluice bench` hands its flags to the driver, sluice-bench (bench/): its
flags are the driver's and --baseline; it is checked only when the
driver is there to print its help. Exit 0 when all hold, 1 with one line
per difference."""
import glob
import os
import re
import subprocess
import sys

sluice, root = sys.argv[1], sys.argv[2]
status = 0

def fail(msg):
    global status
    print("cli_flags: " + msg)
    status = 1

def run(args):
    r = subprocess.run([sluice] + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       universal_newlines=True)
    return r.returncode, r.stdout, r.stderr

def read(path):
    with open(os.path.join(root, path), encoding="utf-8") as f:
        return f.read()

def parsed_flags(paths):
    flags = set()
    for p in paths:
        text = read(p)
        flags |= set(re.findall(r'\{"([a-z][a-z0-9-]*)",\s*(?:no|required|optional)_argument', text))
        flags |= set(re.findall(r'strn?cmp\([a-z_\[\]]+,\s*"--([a-z][a-z0-9-]*)', text))
    return flags

rc, top, _ = run(["--help"])
if rc != 0:
    fail("sluice --help exited %d" % rc)
commands = {}
current = None
for line in top.split("\n"):
    m = re.match(r"  ([a-z]+)\s+(.*)", line)
    if m:
        current = m.group(1)
        commands[current] = m.group(2)
    elif current and re.match(r"\s{13}\S", line):
        commands[current] += " " + line.strip()
    else:
        current = None
if len(commands) < 8:
    fail("sluice --help lists only %d commands: %s" % (len(commands), sorted(commands)))

sources = {c: ["tools/sluice/cmd_%s.c" % c] for c in commands}
for c in ("rules", "dashboard", "runbook"):
    sources[c].append("tools/sluice/ops_cli.c")
sources.get("bench", []).append("bench/driver.c")

accepted = {}
for cmd in sorted(commands):
    flags = parsed_flags(sources[cmd])
    accepted[cmd] = flags
    rc, out, err = run([cmd, "--help"])
    if cmd == "bench" and "usage: sluice-bench" not in out:
        print("cli_flags: bench: no sluice-bench in this build; its flags are not checked")
        accepted[cmd] = None
        continue
    if rc != 0:
        fail("sluice %s --help exited %d: %s" % (cmd, rc, err.strip()))
        continue
    shown = set(re.findall(r"(?<![A-Za-z0-9-])--([a-z][a-z0-9-]*)", out))
    for f in sorted(flags - shown):
        fail("sluice %s accepts --%s, which `sluice %s --help` does not show" % (cmd, f, cmd))
    for f in sorted(shown - flags):
        fail("`sluice %s --help` shows --%s, which its parser does not accept" % (cmd, f))
    for f in sorted(set(re.findall(r"--([a-z][a-z0-9-]*)", commands[cmd])) - flags):
        fail("`sluice --help` says %s takes --%s, which its parser does not accept" % (cmd, f))

# 3. The documents.
docs = ["README.md"] + sorted(
    "docs/" + os.path.basename(p) for p in glob.glob(os.path.join(root, "docs", "*.md"))
    if os.path.basename(p) not in ("performance.md", "RATIONALE.md"))

def code_texts(text):
    """Code spans, and code blocks (fenced or indented) as whole texts
    with backslash continuations and synopsis lines joined."""
    out = re.findall(r"`([^`\n]+)`", text)
    block = []
    fenced = False
    for line in text.split("\n") + [""]:
        if line.startswith("```"):
            fenced = not fenced
            if not fenced and block:
                out.append("\n".join(block))
                block = []
            continue
        if fenced or line.startswith("    "):
            block.append(line)
        elif block:
            out.append("\n".join(block))
            block = []
    return out

checked = 0
for doc in docs:
    for text in code_texts(read(doc)):
        text = re.sub(r"\\\n\s*", " ", text)
        text = re.sub(r"make demo DEMO_ARGS=", "sluice demo ", text)
        # A command's flags run to the end of its line, or, in a synopsis
        # (`sluice demo [--rate N]` then indented [--more] lines), to the
        # end of the block.
        for m in re.finditer(r"\bsluice ([a-z]+)\b([^\n]*(?:\n\s+\[[^\n]*)*)", text):
            cmd, rest = m.group(1), m.group(2)
            if cmd not in accepted or accepted[cmd] is None:
                continue
            rest = re.split(r"\s#\s|\||&&|;|\bsluice\b", rest)[0]
            for f in re.findall(r"(?<![A-Za-z0-9-])--([a-z][a-z0-9-]*)", rest):
                checked += 1
                if f not in accepted[cmd]:
                    fail("%s shows `sluice %s ... --%s`, which sluice %s does not accept" % (doc, cmd, f, cmd))

# 4. The synopsis of sluice demo in docs/config.md.
syn = re.search(r"\n    sluice demo (\[.*?)\n\n", read("docs/config.md"), re.S)
if not syn:
    fail("docs/config.md has no `    sluice demo [...]` synopsis")
elif accepted.get("demo"):
    listed = set(re.findall(r"--([a-z][a-z0-9-]*)", syn.group(1)))
    for f in sorted(accepted["demo"] - listed - {"help"}):
        fail("docs/config.md's synopsis of sluice demo does not list --%s" % f)

if status == 0:
    print("cli_flags: %d commands agree with their --help; %d flags in the documents are accepted" %
          (len(commands), checked))
sys.exit(status)
