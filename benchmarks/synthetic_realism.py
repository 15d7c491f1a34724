"""Is the synthetic cohort realistic enough to learn from? Writes
benchmarks/results/synthetic_realism.json.

Checks (issue #3): per-feature mean/std against LSM's population values; HR-steps
correlation; night-versus-day HR and HRV; the distribution of 300-minute window
missing ratios (and how many windows survive the pipeline's > 0.5 drop rule); and
a simple classifier on per-window summary statistics for the 8 activity classes
(learnable, but not trivially), with subjects split between train and test.
Run: .venv/bin/python benchmarks/synthetic_realism.py [--subjects 200 --days 7]
"""

import argparse
import json
import pathlib
import warnings

import numpy as np
from scipy import stats
from sklearn.ensemble import RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupShuffleSplit
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from pipeline.synthetic import physiology
from schemas.constants import ACTIVITY_CLASSES, MAX_MISSING_RATIO, WINDOW_MINUTES
from schemas.features import FEATURE_INDEX, FEATURES

HR, STEPS = FEATURE_INDEX["HR"], FEATURE_INDEX["steps"]
RMSSD = FEATURE_INDEX["rmssd_percentile_0595"]


def feature_moments(values: np.ndarray) -> dict:
  """Observed mean/std per feature next to LSM's, and the mean's distance in LSM stds."""
  out = {}
  for i, f in enumerate(FEATURES):
    column = values[:, i][~np.isnan(values[:, i])]
    out[f.name] = {
        "mean": round(float(column.mean()), 4), "std": round(float(column.std()), 4),
        "lsm_mean": f.population_mean, "lsm_std": f.population_std,
        "mean_diff_in_lsm_std": round(float((column.mean() - f.population_mean)
                                            / f.population_std), 3),
        "std_ratio": round(float(column.std() / f.population_std), 3),
        "present": round(float(column.size / len(values)), 3)}
  return out


def windows(subject: physiology.Subject) -> tuple[np.ndarray, np.ndarray]:
  """Non-overlapping 300-minute windows: values [n, 300, 26] and their sleep share."""
  n = subject.num_minutes // WINDOW_MINUTES
  cut = n * WINDOW_MINUTES
  return (subject.values[:cut].reshape(n, WINDOW_MINUTES, -1),
          (subject.state[:cut] == physiology.SLEEP).reshape(n, WINDOW_MINUTES).mean(axis=1))


def missingness(subjects) -> dict:
  ratios, sleep_share = zip(*[(np.isnan(w).mean(axis=(1, 2)), s)
                              for w, s in map(windows, subjects)])
  ratios, sleep_share = np.concatenate(ratios), np.concatenate(sleep_share)
  waking = sleep_share < 0.1
  kept = ratios <= MAX_MISSING_RATIO
  return {
      "windows": int(ratios.size),
      "complete_share": round(float((ratios == 0).mean()), 4),
      "kept_share": round(float(kept.mean()), 3),
      "kept_share_waking": round(float(kept[waking].mean()), 3),
      "kept_share_sleeping": round(float(kept[sleep_share > 0.9].mean()), 3),
      "missing_ratio_percentiles": {str(q): round(float(np.percentile(ratios, q)), 3)
                                    for q in (5, 25, 50, 75, 95)},
      "histogram": {f"{lo:.1f}-{lo + 0.1:.1f}": int(((ratios >= lo) & (ratios < lo + 0.1)
                                                     | ((lo >= 0.9) & (ratios == 1))).sum())
                    for lo in np.arange(0, 1, 0.1)},
  }


def session_windows(subjects):
  """A 300-minute window centred on every exercise session, its class and subject."""
  xs, ys, groups = [], [], []
  for s in subjects:
    for start, end, name, exercise in s.events:
      if not exercise:
        continue
      lo = int(np.clip((start + end) // 2 - WINDOW_MINUTES // 2, 0,
                       s.num_minutes - WINDOW_MINUTES))
      xs.append(s.values[lo:lo + WINDOW_MINUTES])
      ys.append(ACTIVITY_CLASSES.index(name))
      groups.append(s.index)
  return np.stack(xs), np.array(ys), np.array(groups)


def summary_statistics(windows_: np.ndarray) -> np.ndarray:
  """Per feature: mean, std, 10th/90th percentiles, max and missing share (NaN-aware)."""
  with warnings.catch_warnings():
    warnings.simplefilter("ignore", RuntimeWarning)
    parts = [np.nanmean(windows_, axis=1), np.nanstd(windows_, axis=1),
             np.nanpercentile(windows_, 10, axis=1), np.nanpercentile(windows_, 90, axis=1),
             np.nanmax(windows_, axis=1), np.isnan(windows_).mean(axis=1)]
  return np.concatenate(parts, axis=1)


def activity_classification(subjects, seed: int) -> dict:
  x_windows, y, groups = session_windows(subjects)
  x = summary_statistics(x_windows)
  train, test = next(GroupShuffleSplit(1, test_size=0.3, random_state=seed).split(x, y, groups))
  counts = np.bincount(y[train], minlength=len(ACTIVITY_CLASSES))
  result = {"windows": int(y.size), "train": int(train.size), "test": int(test.size),
            "class_counts": dict(zip(ACTIVITY_CLASSES, np.bincount(y).tolist())),
            "chance_accuracy": round(float((y[test] == counts.argmax()).mean()), 3),
            "kept_by_drop_rule": round(float((np.isnan(x_windows).mean(axis=(1, 2))
                                              <= MAX_MISSING_RATIO).mean()), 3)}
  models = {
      "logistic_regression": make_pipeline(SimpleImputer(), StandardScaler(),
                                           LogisticRegression(max_iter=2000)),
      "random_forest": RandomForestClassifier(n_estimators=300, min_samples_leaf=2,
                                              random_state=seed, n_jobs=1),
  }
  for name, model in models.items():
    model.fit(x[train], y[train])
    predicted = model.predict(x[test])
    per_class = {c: round(float((predicted[y[test] == i] == i).mean()), 3)
                 for i, c in enumerate(ACTIVITY_CLASSES) if (y[test] == i).any()}
    result[name] = {"accuracy": round(float((predicted == y[test]).mean()), 3),
                    "recall_per_class": per_class}
  return result


def coupling(subjects) -> dict:
  values = np.concatenate([s.values for s in subjects])
  both = ~np.isnan(values[:, HR]) & ~np.isnan(values[:, STEPS])
  hour = np.concatenate([np.arange(s.num_minutes) % 1440 // 60 for s in subjects])
  night, day = hour < 5, (hour >= 10) & (hour < 18)

  def mean(mask, column):
    return round(float(np.nanmean(values[mask, column])), 2)

  return {
      "hr_steps_pearson": round(float(np.corrcoef(values[both, HR], values[both, STEPS])[0, 1]), 3),
      "hr_steps_spearman": round(float(stats.spearmanr(values[both, HR],
                                                       values[both, STEPS])[0]), 3),
      "night_00_05": {"HR": mean(night, HR), "rmssd": mean(night, RMSSD),
                      "hrv_present": round(float((~np.isnan(values[night, RMSSD])).mean()), 3)},
      "day_10_18": {"HR": mean(day, HR), "rmssd": mean(day, RMSSD),
                    "hrv_present": round(float((~np.isnan(values[day, RMSSD])).mean()), 3)},
  }


def markdown(result: dict) -> str:
  """The tables of benchmarks/README.md's realism section, from the results."""
  lines = ["| feature | mean | LSM mean | std | LSM std | present |",
           "|---|---|---|---|---|---|"]
  for name, m in result["features"].items():
    lines.append(f"| {name} | {m['mean']:.4g} | {m['lsm_mean']:.4g} | {m['std']:.4g} | "
                 f"{m['lsm_std']:.4g} | {m['present']:.2f} |")
  c, w = result["coupling"], result["window_missingness"]
  a = result["activity_classification"]
  p = w["missing_ratio_percentiles"]
  lines += [
      "", "| measure | value |", "|---|---|",
      f"| corr(HR, steps), Pearson / Spearman | {c['hr_steps_pearson']:.2f} / "
      f"{c['hr_steps_spearman']:.2f} |",
      f"| HR night (00-05 local) / day (10-18) | {c['night_00_05']['HR']:.1f} / "
      f"{c['day_10_18']['HR']:.1f} bpm |",
      f"| RMSSD night / day (present minutes) | {c['night_00_05']['rmssd']:.1f} / "
      f"{c['day_10_18']['rmssd']:.1f} ms |",
      f"| HRV present night / day | {c['night_00_05']['hrv_present']:.0%} / "
      f"{c['day_10_18']['hrv_present']:.0%} |",
      "", "| measure | value |", "|---|---|",
      f"| complete windows (no missing value) | {w['complete_share']:.1%} |",
      "| missing ratio percentiles 5 / 25 / 50 / 75 / 95 | "
      + " / ".join(f"{p[q]:.2f}" for q in ("5", "25", "50", "75", "95")) + " |",
      f"| windows kept by the > 0.5 drop rule: all / waking / sleeping | "
      f"{w['kept_share']:.1%} / {w['kept_share_waking']:.1%} / {w['kept_share_sleeping']:.1%} |",
      "", f"{a['windows']} windows ({a['train']} train / {a['test']} test):", "",
      "| classifier | accuracy | weakest class |", "|---|---|---|",
      f"| majority class (chance) | {a['chance_accuracy']:.1%} | |"]
  for name in ("logistic_regression", "random_forest"):
    recall = a[name]["recall_per_class"]
    weakest = min(recall, key=recall.get)
    lines.append(f"| {name} | {a[name]['accuracy']:.1%} | {weakest} {recall[weakest]:.0%} |")
  return "\n".join(lines)


def main():
  parser = argparse.ArgumentParser(description=__doc__)
  parser.add_argument("--subjects", type=int, default=200)
  parser.add_argument("--days", type=int, default=7)
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--output", default=str(pathlib.Path(__file__).parent / "results" /
                                              "synthetic_realism.json"))
  args = parser.parse_args()
  subjects = [physiology.generate_subject(args.seed, k, args.days) for k in range(args.subjects)]
  values = np.concatenate([s.values for s in subjects])
  result = {
      "subjects": args.subjects, "days": args.days, "seed": args.seed,
      "features": feature_moments(values),
      "coupling": coupling(subjects),
      "window_missingness": missingness(subjects),
      "activity_classification": activity_classification(subjects, args.seed),
  }
  pathlib.Path(args.output).write_text(json.dumps(result, indent=2) + "\n")
  print(markdown(result))


if __name__ == "__main__":
  main()
