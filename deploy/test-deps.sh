#!/usr/bin/env bash
# Installs the system packages the test suite starts for real: PostgreSQL (ticket store
# tests), Prometheus (promtool checks the alert rules) and Chromium (renders the backtest
# report headless). Java 17+ and Maven (the Kafka
# broker) are prerequisites named in the README. Does nothing when all are present.
set -euo pipefail

missing=()
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
[ ${#missing[@]} -eq 0 ] && exit 0

run() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
echo "installing ${missing[*]} with apt-get" >&2
run apt-get update -qq
DEBIAN_FRONTEND=noninteractive run apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# The Debian package starts its own cluster and Prometheus server; the tests start their own.
run systemctl disable --now postgresql prometheus >/dev/null 2>&1 || true
