#!/usr/bin/env bash
# The demo: everything the project can do so far, end to end, under $DEMO_DIR.
set -euo pipefail
DEMO_DIR=${DEMO_DIR:-runs/demo}
PY=.venv/bin/python
mkdir -p "$DEMO_DIR"
echo "== data contract (schemas)"
$PY -m schemas --output "$DEMO_DIR/contract"
echo "demo outputs are in $DEMO_DIR"
