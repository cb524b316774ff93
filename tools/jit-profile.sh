#!/usr/bin/env bash
# Where a software adapter's compiled shaders spend their time: samples a running command with
# `perf`, copies the hottest block of JIT code (lavapipe/llvmpipe compiles shaders to x86 at run
# time, so perf has no symbols for it) out of the process with `gdb`, disassembles it with
# `objdump`, and prints the samples per instruction kind. An instruction's samples often land on
# the one after a slow load; read the annotated listing (OUT.ann) around the hot spots.
#
# usage: bash tools/jit-profile.sh [--wait S] [--record S] [--out PREFIX] -- COMMAND [ARGS...]
#   --wait S     seconds to let COMMAND compile and warm up before sampling (default 10)
#   --record S   seconds to sample (default 4)
#   --out PREFIX where the files go: PREFIX.perf, .hot, .s, .ann (default: a new temp folder)
# COMMAND must keep its shaders busy for wait + record seconds; it is stopped afterwards.
# Needs perf (linux-perf), gdb and objdump (binutils), and kernel.perf_event_paranoid ≤ 2.
set -euo pipefail
wait_s=10 record_s=4 out=""
while [[ $# -gt 0 && "$1" != "--" ]]; do
  case "$1" in
    --wait) wait_s=$2; shift 2 ;;
    --record) record_s=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "jit-profile: unknown flag $1 (see --help)" >&2; exit 2 ;;
  esac
done
[[ "${1:-}" == "--" ]] || { echo "jit-profile: give the command after --  (see --help)" >&2; exit 2; }
shift
[[ $# -gt 0 ]] || { echo "jit-profile: no command after --" >&2; exit 2; }
for tool in perf gdb objdump python3; do
  command -v "$tool" >/dev/null || { echo "jit-profile: $tool is not installed (apt-get install linux-perf gdb binutils)" >&2; exit 2; }
done
[[ -n "$out" ]] || out="$(mktemp -d)/jit"

"$@" > "$out.cmd.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
sleep "$wait_s"
kill -0 $pid 2>/dev/null || { echo "jit-profile: the command ended within --wait $wait_s s (its output: $out.cmd.log)" >&2; exit 1; }
perf record -F 4000 -p $pid -o "$out.perf" -- sleep "$record_s" > /dev/null 2>&1
cp "/proc/$pid/maps" "$out.maps"
perf script -i "$out.perf" -F ip 2>/dev/null | sort | uniq -c | awk '{print $2, $1}' > "$out.hot"

# The anonymous executable mapping with the most samples: the JIT code of the busiest shader.
read -r start end in_map total < <(python3 - "$out" <<'PY'
import sys
out = sys.argv[1]
hot = {int(a, 16): int(c) for a, c in (l.split() for l in open(out + '.hot'))}
maps = []
for line in open(out + '.maps'):
    f = line.split()
    if 'x' in f[1] and len(f) < 6:
        s, e = (int(x, 16) for x in f[0].split('-'))
        maps.append((sum(c for a, c in hot.items() if s <= a < e), s, e))
n, s, e = max(maps) if maps else (0, 0, 0)
print(hex(s), hex(e), n, sum(hot.values()))
PY
)
[[ "$in_map" -gt 0 ]] || { echo "jit-profile: no samples in JIT code ($total in all)" >&2; exit 1; }
gdb -p $pid -batch -ex "dump binary memory $out.bin $start $end" > /dev/null 2>&1
objdump -D -b binary -m i386:x86-64 --adjust-vma="$start" "$out.bin" > "$out.s"
python3 - "$out" "$in_map" "$total" <<'PY'
import re, sys
out, in_map, total = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
hot = {int(a, 16): int(c) for a, c in (l.split() for l in open(out + '.hot'))}
kinds, lines = {}, []
for line in open(out + '.s'):
    m = re.match(r'\s*([0-9a-f]+):\s+((?:[0-9a-f]{2} )+)\s*(\S+)?', line)
    if not m:
        continue
    n = hot.get(int(m.group(1), 16), 0)
    lines.append(f'{n:6d} {line.rstrip()}')
    k = kinds.setdefault(m.group(3) or '?', [0, 0])
    k[0] += n
    k[1] += 1
open(out + '.ann', 'w').write('\n'.join(lines) + '\n')
print(f'{total} samples, {in_map} ({100 * in_map / total:.0f}%) in the hottest JIT block; by instruction kind:')
print('| instruction | samples | share | count in the block |')
print('|---|---|---|---|')
for name, (n, count) in sorted(kinds.items(), key=lambda kv: -kv[1][0])[:20]:
    print(f'| {name} | {n} | {100 * n / in_map:.1f}% | {count} |')
print(f'annotated listing: {out}.ann (samples, address, bytes, instruction)')
PY
