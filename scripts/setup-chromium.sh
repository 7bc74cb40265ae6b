#!/usr/bin/env bash
# Debian's Chromium, for the browser tests of `grainlike report` (tests/integration/
# test_report_browser.py), installed when it is missing and we are root.  Idempotent: when
# chromium is on the PATH it only says so.  Under CI=true a failed install fails the run, as the
# tests then fail instead of skipping; elsewhere the tests skip and say why.
set -euo pipefail

say() { echo "setup-chromium: $*" >&2; }
give_up() {
    say "$*"
    if [ "${CI:-}" = true ]; then
        exit 1
    fi
    say "the browser tests will skip"
    exit 0
}

if command -v chromium >/dev/null 2>&1; then
    exit 0
fi
[ "$(id -u)" = 0 ] || give_up "chromium is missing, and installing it needs root"
command -v apt-get >/dev/null 2>&1 || give_up "chromium is missing, and there is no apt-get here"
say "installing Debian's chromium (with its fonts)"
log=$(mktemp)
if ! { DEBIAN_FRONTEND=noninteractive apt-get update -q && \
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; } >"$log" 2>&1; then
    tail -n 20 "$log" >&2
    rm -f "$log"
    give_up "apt-get install chromium failed"
fi
rm -f "$log"
command -v chromium >/dev/null 2>&1 || give_up "chromium is still not on the PATH after installing it"
say "$(chromium --version 2>/dev/null | tail -n 1)"
