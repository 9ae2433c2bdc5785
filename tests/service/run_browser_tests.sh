#!/bin/sh
# Real-browser WebRTC tests, inside a network namespace holding only loopback (as root), so no test
# traffic can leave 127.0.0.0/8: Chromium (Playwright) and Firefox ESR (WebDriver BiDi; skipped when
# firefox-esr is not installed). Extra arguments go to pytest, e.g. -k slow -s.
set -eu
cd "$(dirname "$0")/../.."
if [ ! -x /usr/bin/chromium ]; then
    echo "chromium missing: apt-get update && apt-get install -y chromium chromium-driver" >&2
    exit 2
fi
exec unshare -n sh -c 'ip link set lo up && exec "$@"' sh \
    .venv/bin/python -m pytest -m browser tests/service/test_browser.py tests/service/test_firefox.py \
    tests/service/test_whip_browser.py "$@"
