#!/bin/bash
# Install the Debian packages the browser tests drive (tests/integration/test_oauth_browser.py): Chromium and
# its matching chromedriver, from the distribution, so no driver is downloaded at test time. Idempotent: only
# missing packages are installed (apt keeps its own cache), nothing at all when both are present.
set -euo pipefail
PKGS=(chromium chromium-driver)
missing=(); for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null | grep -q '^ii' || missing+=("$p"); done
if [ ${#missing[@]} -eq 0 ]; then echo "browser packages: present (${PKGS[*]})"; exit 0; fi
if [ "$(id -u)" != 0 ]; then
  # not fatal: the browser tests skip with this same reason, the rest of `make test` still runs
  echo "browser packages: missing (${missing[*]}); run as root to install them, the browser tests skip" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get -o DPkg::Lock::Timeout=600 update -qq
apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "browser packages: installed ${missing[*]}"
