#!/usr/bin/env bash
# Installs the Debian packages the test suite drives for real: prometheus/promtool (metrics tests and
# alert rules), redis-server (fleet mode), nghttp2-client (h2load/nghttp for HTTP/2 abuse tests) and
# chromium (dashboard tests). Needs root; does nothing for packages already present.
set -euo pipefail
need=()
command -v prometheus >/dev/null || need+=(prometheus)
command -v promtool >/dev/null || need+=(prometheus)
command -v redis-server >/dev/null || need+=(redis-server)
command -v h2load >/dev/null || need+=(nghttp2-client)
command -v chromium >/dev/null || need+=(chromium)
if [ ${#need[@]} -eq 0 ]; then
  echo "system packages: all present"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "system packages missing (${need[*]}); run this script as root" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
# The Debian prometheus package may start a service on :9090; the tests start their own.
if command -v service >/dev/null; then service prometheus stop >/dev/null 2>&1 || true; fi
echo "system packages installed: ${need[*]}"
