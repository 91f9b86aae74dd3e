#!/bin/sh
# Regenerates the AgentDojo traces the replay uses (tests/fixtures/agentdojo/*.json.gz).
# Needs Python 3.10+ and PyPI; CI does not run this (the traces are committed).
#   crates/pf-guard/agentdojo/export.sh [OUT_DIR]
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-"$here/../tests/fixtures/agentdojo"}
venv=${PF_AGENTDOJO_VENV:-/tmp/pf-agentdojo-venv}
# agentdojo 0.1.35 ships benchmark version v1.2.2 (the package and benchmark versions differ).
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/pip" install -q "agentdojo==0.1.35"
"$venv/bin/python" "$here/export.py" "$out" --benchmark-version v1.2.2
