#!/usr/bin/env bash
# Run DryVR 0.2 (Python 2 code) under Python 3.11 on the DryVR problems, for a side-by-side
# comparison with pf-reach-bench. DryVR's code is NOT part of this repository: pass a checkout
# of github.com/qibolun/DryVR_0.2 (it is copied to a scratch directory and patched there).
#
# Usage: bench/dryvr_side_by_side.sh DRYVR_CHECKOUT [PER_PROBLEM_TIMEOUT_S] > dryvr.tsv
# Needs: python3.11 with venv, pip access to PyPI, libglpk-dev (Debian) for the `glpk` module.
set -euo pipefail
src=${1:?DryVR checkout}
limit=${2:-120}
work=$(mktemp -d /tmp/dryvr.XXXXXX)
if [ -f "$src/HEAD" ] && [ -d "$src/objects" ]; then
  git --git-dir="$src" archive HEAD | tar -x -C "$work"   # a bare mirror
else
  cp -r "$src"/. "$work"
fi
cd "$work"
python3 -m venv venv
venv/bin/pip install -q numpy scipy sympy z3-solver python-igraph matplotlib networkx glpk >&2
# Port: 2to3, tabs -> spaces (Python 3 rejects mixed indentation), no igraph/cairo graph plots.
venv/bin/python -m lib2to3 -w -n src examples main.py >/dev/null 2>&1 || true
find src examples main.py -name '*.py' | while read -r f; do expand -t 8 "$f" > "$f.tmp" && mv "$f.tmp" "$f"; done
sed -i 's/^\(\s*\)graph = plot(g, \(GRAPHOUTPUT\|RRTGRAPHPOUTPUT\), margin=40)/\1graph = None/; s/^\(\s*\)graph.save()/\1pass/' src/core/dryvrcore.py
printf 'problem\tverdict\tseconds\n'
for f in input/daginput/*.json input/nondaginput/*.json; do
  start=$(date +%s.%N)
  out=$(timeout "$limit" venv/bin/python main.py "$f" 2>&1 || true)
  end=$(date +%s.%N)
  if grep -q "System is Safe" <<<"$out"; then v=safe
  elif grep -q "not safe" <<<"$out"; then v=unsafe
  elif grep -q "System is Unknown\|unknown" <<<"$out"; then v=unknown
  else v="error: $(grep -E 'Error|error' <<<"$out" | tail -1 | cut -c1-80)"; fi
  printf '%s\t%s\t%.3f\n' "$(basename "$f")" "$v" "$(echo "$end - $start" | bc)"
done
