#!/usr/bin/env bash
# The demo: the whole job end to end on an embedded default, everything under $DEMO_DIR.
# raw synthetic cohort -> lsm-pipeline shards -> lsm-train (tiny MAE, a few minutes)
# -> lsm-eval (the report: RUN/eval/report.md, a few minutes).
set -euo pipefail
DEMO_DIR=${DEMO_DIR:-runs/demo}
BIN=.venv/bin
mkdir -p "$DEMO_DIR"

echo "== 1/5 data contract (schemas)"
$BIN/python -m schemas --output "$DEMO_DIR/contract"

echo "== 2/5 synthetic cohort (lsm-synth: 24 subjects x 4 days, with injected faults)"
rm -rf "$DEMO_DIR/synth"
$BIN/lsm-synth --subjects 24 --days 4 --seed 0 --dirty --plot --format csv.gz \
  --output "$DEMO_DIR/synth"

echo "== 3/5 pipeline (lsm-pipeline: validate, align, window, split, normalise, shard)"
rm -rf "$DEMO_DIR/pipeline"
# The demo key is not secret; real runs keep theirs in a file outside the outputs.
$BIN/lsm-pipeline --input "$DEMO_DIR/synth/raw/*" \
  --session_labels "$DEMO_DIR/synth/labels/sessions.csv" \
  --output "$DEMO_DIR/pipeline" --subject_hash_key=lsm-demo-key-not-secret \
  --split 0.6,0.2,0.2 --split_salt demo-15 --statistics
echo "data statistics report (open in a browser): $DEMO_DIR/pipeline/statistics/report.html"
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

echo "== 4/5 pretraining (lsm-train: tiny MAE, a few minutes on CPU)"
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

echo "== 5/5 evaluation report (lsm-eval: a demo-sized budget, about 2-3 minutes on CPU)"
# The demo's cut of lsm-eval's defaults: four of the fourteen generative tasks (the ones
# results.json names first) on 32 held-out windows with 2 MICE iterations; one seed,
# 5 and 20 shots, and 10-step fine-tune / supervised runs of batch 16 (at a higher
# learning rate than the default, so ten steps move the classifiers off one predicted
# class). The report says so in its budget line; `lsm-eval --workdir=... --data=...`
# alone runs everything.
$BIN/lsm-eval --workdir="$DEMO_DIR/train" --data="$DEMO_DIR/pipeline" \
  --tasks=random_imputation_80,interpolation_30m,extrapolation_60m,sensor_imputation_6,discriminative \
  --generative_windows=32 --mice_max_iter=2 --seeds=0 --shots=5,20 \
  --finetune_steps=10 --few_shot_finetune_steps=10 --finetune_batch=16 --finetune_lr=2e-3 \
  --plot_windows=2
$BIN/python - "$DEMO_DIR" <<'PY'
import json, sys
eval_dir = f"{sys.argv[1]}/train/eval"
r = json.load(open(f"{eval_dir}/results.json"))
print("budget:", r["budget_note"])
print("generative MAE, normalised (model vs best baseline; positive = model better):")
for task, g in r["improvement"]["generative"].items():
  gain = "n/a" if g["relative_improvement"] is None else f"{100 * g['relative_improvement']:+.1f}%"
  print(f"  {task:22s} model {g['model_value']:.3f}  {g['best_baseline']} {g['best_value']:.3f}"
        f"  ({gain})")
losses = sum((g["relative_improvement"] or 0) <= 0 for g in r["improvement"]["generative"].values())
if losses:
  print(f"at the demo's budget the model loses {losses} of {len(r['improvement']['generative'])} "
        "tasks; the benchmark's numbers: benchmarks/README.md, \"Generative quality\"")
print("discriminative accuracy (linear probe / fine-tune / supervised from scratch):")
for task, methods in r["discriminative"].items():
  print(f"  {task:28s}" + "  ".join(f"{m} {e['accuracy']:.3f}" for m, e in methods.items()))
print(f"report: {eval_dir}/report.md (figures: {', '.join(r['figures'].values())})")
PY
echo "demo outputs are in $DEMO_DIR; the report is $DEMO_DIR/train/eval/report.md"
