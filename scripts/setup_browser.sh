#!/usr/bin/env bash
# Debian's Chromium and ChromeDriver for the browser test (tests/services/): /usr/bin/chromium and
# /usr/bin/chromedriver. Installed with apt-get when missing (as root, e.g. in CI); no browser is downloaded
# any other way. Without root the test is skipped locally (it fails under CI=true).
set -euo pipefail
if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then
    echo "==> browser: $(/usr/bin/chromium --version 2>/dev/null | head -1)"
    exit 0
fi
if [ "$(id -u)" != 0 ]; then
    echo "==> chromium/chromium-driver missing and not root: run 'sudo apt-get install chromium chromium-driver'" >&2
    [ "${CI:-}" = true ] && exit 1
    exit 0
fi
echo "==> installing Debian's chromium and chromium-driver"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null
echo "==> browser: $(/usr/bin/chromium --version 2>/dev/null | head -1)"
