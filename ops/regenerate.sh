#!/bin/sh
# ops/regenerate.sh [SLUICE] - regenerate the files in ops/ from the demo's
# built-in config. SLUICE is the built program (default build/tools/sluice/sluice).
# The test tools_cli_ops_up_to_date fails until this has been run after a
# change to the demo config or to the generators.
set -eu
cd "$(dirname "$0")"
S=${1:-../build/tools/sluice/sluice}
case $S in /*) ;; *) [ -x "$S" ] || S=../$S ;; esac
"$S" demo --print-config >sluice.yaml.tmp && mv sluice.yaml.tmp sluice.yaml
"$S" rules -o rules.yml sluice.yaml
"$S" dashboard -o dashboard.json sluice.yaml
"$S" runbook -o runbook.md sluice.yaml
echo "ops/: regenerated sluice.yaml rules.yml dashboard.json runbook.md"
