#!/usr/bin/env bash
# Makes a headless Debian bookworm machine with no GPU able to run WebGPU through Dawn:
# Mesa's lavapipe (software Vulkan) from bookworm-backports (Mesa 25). Bookworm's own Mesa 22
# lacks shaderUniform*ArrayDynamicIndexing, and Dawn then finds no adapter.
# Idempotent: does nothing when lavapipe from backports is already installed.
set -euo pipefail

have_new_lavapipe() {
  local v
  v=$(dpkg-query -W -f='${Version}' mesa-vulkan-drivers 2>/dev/null || true)
  [ -n "$v" ] || return 1
  dpkg --compare-versions "$v" ge 24 && dpkg-query -W -f='${Status}' libvulkan1 2>/dev/null | grep -q 'install ok installed'
}

# An adapter that Dawn already finds (a real GPU, or lavapipe installed some other way) is enough.
here=$(cd "$(dirname "$0")/.." && pwd)
if [ -d "$here/node_modules/webgpu" ] && XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp} timeout 60 node -e "
  import('webgpu').then(async ({ create }) => {
    const gpu = create([]); const a = await gpu.requestAdapter();
    process.exit(a ? 0 : 1);
  }).catch(() => process.exit(1));" --input-type=module >/dev/null 2>&1; then
  echo "setup-webgpu: a WebGPU adapter is already available"
  exit 0
fi

if have_new_lavapipe; then
  echo "setup-webgpu: lavapipe $(dpkg-query -W -f='${Version}' mesa-vulkan-drivers) already installed"
  exit 0
fi

if [ "$(id -u)" != 0 ]; then SUDO=sudo; else SUDO=; fi
. /etc/os-release
if [ "${VERSION_CODENAME:-}" != bookworm ]; then
  echo "setup-webgpu: this script knows Debian bookworm; on ${PRETTY_NAME:-this system} install a Vulkan driver (Mesa >= 24 lavapipe or a GPU driver) by hand" >&2
  exit 1
fi
list=/etc/apt/sources.list.d/bookworm-backports.list
if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
  echo "deb http://deb.debian.org/debian bookworm-backports main" | $SUDO tee "$list" >/dev/null
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends -t bookworm-backports libvulkan1 mesa-vulkan-drivers
echo "setup-webgpu: installed lavapipe $(dpkg-query -W -f='${Version}' mesa-vulkan-drivers)"
