#!/usr/bin/env bash
# Makes this checkout ready to run, and does nothing when it already is. `npm start`, `npm test`
# and `npm run bench` call it first, so a fresh Debian machine needs no other step:
#   1. npm packages, when node_modules is missing or older than package-lock.json;
#   2. the build (dist/), when missing or older than any source file;
#   3. a WebGPU adapter: where none is found, or only Mesa's llvmpipe older than 25 (3x slower),
#      Mesa 25 from Debian's bookworm-backports (as root on Debian; elsewhere it says what to install);
#   4. the Fashion-MNIST dataset (Debian's dataset-fashion-mnist) where missing, as root on Debian;
#   5. with --tests (as `npm test` calls it): Debian's chromium where missing, as root on Debian:
#      the browser tests (test/web/) drive it headless through playwright-core (no browser
#      download); without it they are skipped. `npm start` needs no browser and installs none.
# Set NEURALIGN_SKIP_SYSTEM=1 to skip steps 3 to 5 (no apt-get).
set -euo pipefail
cd "$(dirname "$0")/.."

say() { echo "setup: $*" >&2; }
die() { echo "setup: $*" >&2; exit 1; }

# --- 0. Node.js --------------------------------------------------------------------------------
command -v node >/dev/null || die "Node.js 20 or newer is required (https://nodejs.org, or Debian: apt-get install nodejs npm)"
node_major=$(node -p 'process.versions.node.split(".")[0]')
[ "$node_major" -ge 20 ] || die "Node.js 20 or newer is required; this is $(node --version)"

# --- 1. npm packages ---------------------------------------------------------------------------
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ] ||
   [ package.json -nt node_modules/.package-lock.json ]; then
  say "installing npm packages (npm ci)"
  npm ci --no-audit --no-fund --loglevel=error >&2 || die "npm ci failed"
  touch node_modules/.package-lock.json
fi

# --- 2. build ----------------------------------------------------------------------------------
if [ ! -f dist/cli.js ] || [ ! -f dist/web/lab.html ] || [ -n "$(find src scripts/build.mjs package.json -newer dist/cli.js -type f 2>/dev/null | head -1)" ]; then
  say "building dist/"
  node scripts/build.mjs || die "build failed"
fi

[ "${NEURALIGN_SKIP_SYSTEM:-}" = 1 ] && exit 0

# --- 3. a WebGPU adapter -----------------------------------------------------------------------
is_root() { [ "$(id -u)" = 0 ]; }
codename=$(. /etc/os-release 2>/dev/null && echo "${VERSION_CODENAME:-}") || codename=
is_debian() { [ -f /etc/debian_version ] && command -v apt-get >/dev/null; }
apt_updated=
apt_update() {
  [ -n "$apt_updated" ] && return 0
  DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 || die "apt-get update failed"
  apt_updated=1
}

# Prints "none", or the adapter's description (e.g. "llvmpipe: Mesa 25.0.7 ..." or a GPU's name).
probe_adapter() {
  local out status
  set +e
  out=$(node dist/cli.js info --json --no-tune 2>/dev/null)
  status=$?
  set -e
  if [ $status -eq 2 ]; then echo none; return; fi
  [ $status -eq 0 ] || die "neuralign info failed (exit $status); run 'NEURALIGN_DEBUG=1 node dist/cli.js info'"
  printf '%s' "$out" | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const i=JSON.parse(s);console.log(`${i.description} [${i.isCPU?"cpu":"gpu"}]`)})'
}

mesa_packages="mesa-vulkan-drivers libvulkan1 libegl-mesa0 libgl1-mesa-dri libgles2 libegl1"

# Debian bookworm ships Mesa 22, which Dawn accepts only through OpenGL ES at a third of Mesa 25's
# speed; bookworm-backports has Mesa 25. Its sources entry copies the machine's own bookworm
# stanza (same mirror and keyring) with only the suite changed.
enable_backports() {
  local list=/etc/apt/sources.list.d/neuralign-bookworm-backports.sources
  grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/ && return 0
  if [ -f /etc/apt/sources.list.d/debian.sources ]; then
    awk 'BEGIN { RS = ""; ORS = "\n\n" }
         /(^|\n)Suites:[^\n]*bookworm([ \n]|$)/ && !done {
           sub(/(^|\n)Suites:[^\n]*/, "\nSuites: bookworm-backports"); sub(/^\n/, ""); print; done = 1 }' \
      /etc/apt/sources.list.d/debian.sources > "$list"
  fi
  if [ ! -s "$list" ]; then
    local uri
    uri=$(grep -hEo '^deb +(\[[^]]*\] +)?[^ ]+ +bookworm ' /etc/apt/sources.list 2>/dev/null | head -1 | awk '{print $(NF-1)}')
    echo "deb ${uri:-http://deb.debian.org/debian} bookworm-backports main" > "${list%.sources}.list"
    rm -f "$list"
  fi
  apt_updated=
}

install_mesa() {
  if ! is_debian || ! is_root; then
    die "no usable WebGPU adapter. Install Mesa 25 or newer (Vulkan 'lavapipe' and EGL/GLES: on Debian bookworm as root, enable bookworm-backports and run 'apt-get install -t bookworm-backports $mesa_packages'), or a GPU driver with Vulkan, then run this again"
  fi
  local target=()
  if [ "$codename" = bookworm ]; then
    enable_backports
    target=(-t bookworm-backports)
  fi
  say "installing Mesa (${target[*]:-default suite}): $mesa_packages"
  apt_update
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${target[@]}" $mesa_packages >&2 || die "apt-get install of Mesa failed"
}

adapter=$(probe_adapter)
mesa_major=$(printf '%s' "$adapter" | sed -n 's/.*Mesa \([0-9]\+\)\..*/\1/p')
if [ "$adapter" = none ]; then
  say "no WebGPU adapter found"
  install_mesa
  adapter=$(probe_adapter)
  [ "$adapter" != none ] || die "still no WebGPU adapter after installing Mesa; run 'NEURALIGN_DEBUG=1 node dist/cli.js info' to see Dawn's reasons"
elif [ -n "$mesa_major" ] && [ "$mesa_major" -lt 25 ]; then
  if is_debian && is_root; then
    say "only Mesa $mesa_major's llvmpipe found; upgrading to Mesa 25 (about 3x faster)"
    install_mesa
    adapter=$(probe_adapter)
  else
    say "note: Mesa $mesa_major found; Mesa 25 or newer runs about 3x faster (see README)"
  fi
fi
say "WebGPU adapter: $adapter"

# --- 4. Fashion-MNIST --------------------------------------------------------------------------
if [ ! -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]; then
  if is_debian && is_root; then
    say "installing Debian's dataset-fashion-mnist"
    apt_update
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist >&2 ||
      say "warning: could not install dataset-fashion-mnist; pass --data-dir to commands that train"
  else
    say "note: Fashion-MNIST not found at /usr/share/datasets/fashion-mnist (Debian: apt-get install dataset-fashion-mnist)"
  fi
fi

# --- 5. chromium for the browser tests -----------------------------------------------------------
if [ "${1:-}" = --tests ] && [ -z "${NEURALIGN_CHROMIUM:-}" ] && [ ! -x /usr/bin/chromium ]; then
  if is_debian && is_root; then
    say "installing Debian's chromium (the browser tests drive it headless)"
    apt_update
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >&2 ||
      say "warning: could not install chromium; the browser tests will be skipped"
  else
    say "note: no /usr/bin/chromium; the browser tests are skipped (Debian: apt-get install chromium, or set NEURALIGN_CHROMIUM)"
  fi
fi
