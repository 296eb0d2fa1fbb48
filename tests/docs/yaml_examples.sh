#!/bin/sh
# tests/docs/yaml_examples.sh SLUICE ROOT - every ```yaml block of README.md
# and docs/*.md (but performance.md and RATIONALE.md) loads as written:
#   - a config (its first line `service:` or `pools:`): `sluice lint FILE`
#     does not refuse it (exit 0 or 1, findings allowed; 2 = not loaded);
#   - a top-level section alone (`cluster:`, `downstream_budget:`): the
#     same, after a one-pool `pools:` list;
#   - a downstream-budget.yaml (`downstream:`): `sluice budget check FILE`
#     exits 0; it is also the budget_file the `cluster:` examples name;
#   - an indented block is a fragment of a pool entry and is skipped.
# Exit 0 when every block loads, 1 with the loader's message otherwise.
set -u
S=${1:?usage: yaml_examples.sh SLUICE ROOT}
ROOT=${2:?usage: yaml_examples.sh SLUICE ROOT}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
status=0
checked=0

# Split every yaml block into $TMP/blocks/N.yaml, with its origin in N.from.
mkdir "$TMP/blocks"
for doc in "$ROOT"/README.md "$ROOT"/docs/*.md; do
    case $doc in */performance.md | */RATIONALE.md) continue ;; esac
    awk -v dir="$TMP/blocks" -v doc="${doc#"$ROOT"/}" '
        /^```yaml/ { n++; inblock = 1; next }
        /^```/ && inblock { inblock = 0; next }
        inblock { print > (dir "/" id "." n ".yaml"); origin[n] = doc }
        END { for (k in origin) print origin[k] " block " k > (dir "/" id "." k ".from") }
    ' id="$(basename "$doc" .md)" "$doc"
done

# The budget files first: the cluster examples load one.
for f in "$TMP"/blocks/*.yaml; do
    [ -e "$f" ] || continue
    first=$(sed -n '/^[^#]/{p;q}' "$f")
    case $first in
    downstream:*)
        checked=$((checked + 1))
        if ! "$S" budget check "$f" >"$TMP/out" 2>&1; then
            echo "yaml_examples: $(cat "${f%.yaml}.from") is refused by sluice budget check:" >&2
            cat "$TMP/out" >&2
            status=1
        fi
        cp "$f" "$TMP/downstream-budget.yaml"
        ;;
    esac
done
[ -e "$TMP/downstream-budget.yaml" ] || {
    echo "yaml_examples: no downstream-budget.yaml example found (docs/cluster.md had one)" >&2
    status=1
}

for f in "$TMP"/blocks/*.yaml; do
    [ -e "$f" ] || continue
    first=$(sed -n '/^[^#]/{p;q}' "$f")
    case $first in
    downstream:*) continue ;;
    service:* | pools:*) cp "$f" "$TMP/sluice.yaml" ;;
    "  "* | "	"*) continue ;;
    *)
        printf 'pools:\n  - name: example\n    workers: 1\n    queue_capacity: 1\n' >"$TMP/sluice.yaml"
        cat "$f" >>"$TMP/sluice.yaml"
        ;;
    esac
    checked=$((checked + 1))
    (cd "$TMP" && "$S" lint sluice.yaml >"$TMP/out" 2>&1)
    rc=$?
    if [ "$rc" -gt 1 ]; then
        echo "yaml_examples: $(cat "${f%.yaml}.from") does not load (sluice lint exit $rc):" >&2
        cat "$TMP/out" >&2
        status=1
    fi
done
[ "$checked" -ge 5 ] || {
    echo "yaml_examples: found only $checked yaml examples" >&2
    status=1
}
[ "$status" -eq 0 ] && echo "yaml_examples: $checked yaml examples load"
exit "$status"
