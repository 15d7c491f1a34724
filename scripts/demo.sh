#!/usr/bin/env bash
# The demo: the whole job end to end on an embedded default, everything under $DEMO_DIR.
# raw synthetic cohort -> lsm-pipeline shards -> lsm-train (tiny MAE, a few minutes).
set -euo pipefail
DEMO_DIR=${DEMO_DIR:-runs/demo}
BIN=.venv/bin
mkdir -p "$DEMO_DIR"

echo "== 1/4 data contract (schemas)"
$BIN/python -m schemas --output "$DEMO_DIR/contract"

echo "== 2/4 synthetic cohort (lsm-synth: 24 subjects x 4 days, with injected faults)"
rm -rf "$DEMO_DIR/synth"
$BIN/lsm-synth --subjects 24 --days 4 --seed 0 --dirty --plot --format csv.gz \
  --output "$DEMO_DIR/synth"

echo "== 3/4 pipeline (lsm-pipeline: validate, align, window, split, normalise, shard)"
rm -rf "$DEMO_DIR/pipeline"
# The demo key is not secret; real runs keep theirs in a file outside the outputs.
$BIN/lsm-pipeline --input "$DEMO_DIR/synth/raw/*" \
  --session_labels "$DEMO_DIR/synth/labels/sessions.csv" \
  --output "$DEMO_DIR/pipeline" --subject_hash_key=lsm-demo-key-not-secret \
  --split 0.6,0.2,0.2 --split_salt demo-15
$BIN/python - "$DEMO_DIR" <<'PY'
import json, sys
m = json.load(open(f"{sys.argv[1]}/pipeline/manifest.json"))
t = json.load(open(f"{sys.argv[1]}/synth/truth.json"))
c = m["counts"]
print("windows per split:", {s: sum(e["records"] for e in v) for s, v in m["datasets"]["pretrain"].items()})
got = {"rows": c["rows"]["dead_lettered"], "readings": c["readings"]["dead_lettered"]}
print("dead-lettered by the pipeline:", got)
print("matches the faults lsm-synth injected (truth.json):", got == t["expected_dead_letter"])
PY

echo "== 4/4 pretraining (lsm-train: tiny MAE, a few minutes on CPU)"
rm -rf "$DEMO_DIR/train"
$BIN/lsm-train --config=trainer/configs/mae.py:tiny --workdir="$DEMO_DIR/train" \
  --config.data_dir="$DEMO_DIR/pipeline" --config.batch_size=32 \
  --config.num_train_steps=120 --config.learning_rate=1e-3 --config.log_every_steps=10 \
  --config.eval_every_steps=60 --config.checkpoint_every_steps=60 --config.eval_batches=2
$BIN/python - "$DEMO_DIR" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(f"{sys.argv[1]}/train/metrics_train.jsonl")]
first, last = rows[0], rows[-1]
print(f"train loss: step {first['step']} {first['loss']:.3f} -> step {last['step']} {last['loss']:.3f}")
PY

echo "demo outputs are in $DEMO_DIR"
