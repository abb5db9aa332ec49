#!/bin/sh
# Write alerts.yml and prometheus.yml with the runbook links pointing where
# docs/operations.md is served, for deployment:
#
#   RUNBOOK_BASE=https://git.example.com/ml/drift/blob/main/docs/operations.md \
#     deploy/prometheus/render.sh OUT_DIR
#
# RUNBOOK_BASE is the absolute URL of docs/operations.md (http or https, no '#');
# every runbook_url becomes RUNBOOK_BASE#<lower-cased alert name>. The files in the
# repository keep the placeholder base, which resolves nowhere (.invalid).
set -eu

PLACEHOLDER='https://runbooks.example.invalid/drift/operations.md'
here=$(cd "$(dirname "$0")" && pwd)

if [ $# -ne 1 ]; then
    echo "usage: RUNBOOK_BASE=https://... $0 OUT_DIR" >&2
    exit 2
fi
out=$1
base=${RUNBOOK_BASE:-}
case $base in
    http://?*|https://?*) ;;
    *) echo "RUNBOOK_BASE must be an absolute http(s) URL of docs/operations.md; got '$base'" >&2; exit 2 ;;
esac
case $base in
    *'#'*|*'|'*|*'\'*|*'"'*|*' '*) echo "RUNBOOK_BASE must not contain '#', '|', '\\', '\"' or spaces; got '$base'" >&2; exit 2 ;;
esac
base=${base%/}

mkdir -p "$out"
# '|' cannot occur in the base (checked above); '&' would mean "the match" to sed.
escaped=$(printf '%s' "$base" | sed 's/&/\\&/g')
sed "s|$PLACEHOLDER#|$escaped#|g" "$here/alerts.yml" > "$out/alerts.yml"
cp "$here/prometheus.yml" "$out/prometheus.yml"
if grep 'runbook_url:' "$out/alerts.yml" | grep -vF "\"$base#" >&2; then
    echo "render.sh: a runbook_url in alerts.yml does not start with $PLACEHOLDER#" >&2
    exit 1
fi
echo "wrote $out/alerts.yml and $out/prometheus.yml (runbooks at $base)"
