#!/usr/bin/env bash
# Side-by-side ACAS Xu benchmark: pf-nnv vs Marabou 2.0.0 (PyPI maraboupy, its `Marabou` CLI)
# on the same instances, same timeout, same thread count, in the same run (interleaved).
#
# Usage: crates/pf-nnv/benches/compare_marabou.sh [TIMEOUT_S] [THREADS] [INSTANCES]
#   INSTANCES: comma-separated net:prop pairs (default: the fixed 20-instance sample below).
# Environment: PF_NNV_DATA (default ../shared/vectors/nnv/acasxu), VENV (default
#   /tmp/pf-nnv-marabou-venv). Prints one row per instance and a summary with the
#   geometric-mean speed-up over instances both tools decided.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
timeout_s="${1:-60}"
threads="${2:-2}"
sample="${3:-1_1:2,1_1:3,1_1:4,1_9:3,2_1:2,1_4:2,3_5:2,4_2:2,5_3:2,1_7:4,1_2:3,2_5:3,3_3:3,4_5:4,5_5:4,1_6:1,2_4:1,1_1:5,1_1:6,1_9:7,2_9:8,3_3:9,4_5:10}"
data="${PF_NNV_DATA:-$root/../shared/vectors/nnv/acasxu}"
venv="${VENV:-/tmp/pf-nnv-marabou-venv}"

if [ ! -x "$venv/bin/Marabou" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q maraboupy==2.0.0 onnx onnxruntime
fi
(cd "$root" && cargo build --release -q -p pf-nnv --bin pf-nnv-bench)
bench="$root/target/release/pf-nnv-bench"
expected="$data/expected_verdicts.csv"

printf '%-7s %-8s %-8s %9s %-8s %9s %8s\n' instance expected pf-nnv seconds marabou seconds speedup
IFS=',' read -ra items <<< "$sample"
logs="$(mktemp -d)"
for item in "${items[@]}"; do
  net="${item%%:*}"; prop="${item##*:}"
  onnx="ACASXU_run2a_${net}_batch_2000.onnx"; vnn="prop_${prop}.vnnlib"
  exp="$(grep "^$onnx,$vnn," "$expected" | cut -d, -f3)"
  # pf-nnv (load + check), wall clock.
  t0=$(date +%s.%N)
  "$bench" --data "$data" --timeout "$timeout_s" --threads "$threads" --only "$item" > "$logs/pf.txt" 2>&1 || true
  t1=$(date +%s.%N)
  pf="$(awk -v i="$item" '$1==i {print $2}' "$logs/pf.txt")"; pf="${pf:-error}"
  pf_t=$(echo "$t1 - $t0" | bc -l)
  # Marabou CLI on the same ONNX + VNN-LIB files.
  t0=$(date +%s.%N)
  timeout $((${timeout_s%.*} + 30)) "$venv/bin/Marabou" "$data/onnx/$onnx" "$data/vnnlib/$vnn" \
    --timeout "${timeout_s%.*}" --num-workers "$threads" --verbosity 0 > "$logs/mb.txt" 2>&1 || true
  t1=$(date +%s.%N)
  mb_t=$(echo "$t1 - $t0" | bc -l)
  if grep -qx 'unsat' "$logs/mb.txt"; then mb=unsat
  elif grep -qx 'sat' "$logs/mb.txt"; then mb=sat
  elif grep -qi 'timeout' "$logs/mb.txt"; then mb=timeout
  else mb=unknown; fi
  [ "$pf" = unknown ] && pf=timeout
  speed="-"
  if [ "$pf" != timeout ] && [ "$mb" != timeout ] && [ "$mb" != unknown ]; then
    speed=$(echo "$mb_t / $pf_t" | bc -l)
    speed=$(printf '%.2f' "$speed")
  fi
  printf '%-7s %-8s %-8s %9.3f %-8s %9.3f %8s\n' "$item" "$exp" "$pf" "$pf_t" "$mb" "$mb_t" "$speed"
done | tee "$logs/table.txt"
awk -v T="$timeout_s" '
  NR>0 {
    n++
    if ($3=="sat"||$3=="unsat") { pfs++; pft+=$4; if ($3!=$2) pfw++ }
    if ($5=="sat"||$5=="unsat") { mbs++; mbt+=$6; if ($5!=$2) mbw++ }
    if ($7!="-") { both++; lr+=log($7) }
    # Timeouts counted at the timeout (PAR-1) for an all-instance ratio.
    a=($3=="sat"||$3=="unsat")?$4:T; b=($5=="sat"||$5=="unsat")?$6:T; lr1+=log(b/a)
  }
  END {
    printf "instances %d; pf-nnv solved %d (wrong %d, %.1f s on solved); Marabou solved %d (wrong %d, %.1f s on solved)\n", n, pfs, pfw, pft, mbs, mbw, mbt
    if (both) printf "geometric-mean speed-up (Marabou time / pf-nnv time) over %d decided by both: %.2fx\n", both, exp(lr/both)
    printf "geometric-mean speed-up over all %d, timeouts counted at %s s: %.2fx\n", n, T, exp(lr1/n)
  }' "$logs/table.txt"
