#!/usr/bin/env bash
# Installs Debian's Chromium and ChromeDriver for the browser test (tests/browser), when missing.
# Idempotent: does nothing when both are already there. Needs root or passwordless sudo, and apt-get.
set -uo pipefail

CHROMIUM=/usr/bin/chromium
CHROMEDRIVER=/usr/bin/chromedriver

if [ -x "$CHROMIUM" ] && [ -x "$CHROMEDRIVER" ]; then
  echo "install_browser: chromium and chromedriver already installed ($CHROMIUM, $CHROMEDRIVER)"
  exit 0
fi

fail() {
  echo "install_browser: ERROR: $*" >&2
  echo "install_browser: install Debian's packages 'chromium' and 'chromium-driver' by hand," >&2
  echo "install_browser: so that $CHROMIUM and $CHROMEDRIVER exist, then rerun the browser test." >&2
  exit 1
}

command -v apt-get > /dev/null || fail "apt-get not found (this script knows only Debian/Ubuntu)."
if [ "$(id -u)" -eq 0 ]; then
  SUDO=()
elif command -v sudo > /dev/null && sudo -n true 2> /dev/null; then
  SUDO=(sudo -n)
else
  fail "installing packages needs root or passwordless sudo."
fi

export DEBIAN_FRONTEND=noninteractive
LOG=$(mktemp -t install_browser.XXXXXX.log)
echo "install_browser: apt-get update"
"${SUDO[@]}" apt-get update -q > "$LOG" 2>&1 \
  || { tail -5 "$LOG" >&2; fail "apt-get update failed (log: $LOG)."; }
echo "install_browser: apt-get install chromium chromium-driver"
"${SUDO[@]}" apt-get install -y -q --no-install-recommends chromium chromium-driver \
  >> "$LOG" 2>&1 \
  || { tail -5 "$LOG" >&2; fail "apt-get install failed (log: $LOG)."; }

[ -x "$CHROMIUM" ] && [ -x "$CHROMEDRIVER" ] \
  || fail "the packages installed, but $CHROMIUM or $CHROMEDRIVER is missing."
echo "install_browser: installed $("$CHROMIUM" --version 2> /dev/null | head -1)"
