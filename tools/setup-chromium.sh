#!/usr/bin/env bash
# The browser test (test/browser.test.ts) drives Debian's Chromium through playwright-core; no
# browser is downloaded. Installs the distribution's `chromium` package when /usr/bin/chromium
# is missing. Idempotent: does nothing when it is there (or CHROMIUM names another executable).
set -euo pipefail

want=${CHROMIUM:-/usr/bin/chromium}
if [ -x "$want" ]; then
  echo "setup-chromium: $want is installed"
  exit 0
fi
if [ "$want" != /usr/bin/chromium ]; then
  echo "setup-chromium: CHROMIUM=$want is not an executable; unset CHROMIUM to install Debian's chromium, or fix the path" >&2
  exit 1
fi
if ! command -v apt-get >/dev/null; then
  echo "setup-chromium: no apt-get here; install Chromium by hand and run the tests with CHROMIUM=/path/to/chromium" >&2
  exit 1
fi
if [ "$(id -u)" != 0 ]; then SUDO=sudo; else SUDO=; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends chromium
echo "setup-chromium: installed $(/usr/bin/chromium --version 2>/dev/null || echo chromium)"
