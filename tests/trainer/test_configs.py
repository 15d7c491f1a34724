"""Model sizes by name, and the hardware configs that override the defaults."""

from absl import flags
from ml_collections import config_flags
import pytest

from trainer import models
from trainer.configs import gpu_bf16, mae, tpu_v5e

FIELDS = {"layers", "hidden", "mlp", "heads", "decoder_layers", "decoder_hidden",
          "decoder_heads"}


@pytest.mark.parametrize("size", list(mae.SIZES))
def test_every_size_builds(size):
  assert set(mae.SIZES[size]) == FIELDS
  config = mae.get_config(size)
  assert {k: config.model[k] for k in FIELDS} == mae.SIZES[size]
  model_config = models.ModelConfig.from_config(config.model)
  assert model_config.hidden % model_config.heads == 0
  assert models.count_params(model_config) > 0  # builds the model abstractly


def test_an_unknown_size_names_the_sizes():
  with pytest.raises(ValueError, match=r"unknown model size 'xxl'; expected one of \['pico'"):
    mae.get_config("xxl")


def load(path: str):
  """A config file loaded as lsm-train's --config flag loads it."""
  holder = flags.FlagValues()
  config_flags.DEFINE_config_file("config", path, flag_values=holder)
  holder(["test"])
  return holder.config


def differences(a, b) -> dict:
  flat_a, flat_b = (dict(_flat(c)) for c in (a, b))
  return {k: (flat_a.get(k), flat_b.get(k)) for k in flat_a.keys() | flat_b.keys()
          if flat_a.get(k) != flat_b.get(k)}


def _flat(config, prefix=""):
  for key, value in config.items():
    if hasattr(value, "items"):
      yield from _flat(value, f"{prefix}{key}.")
    else:
      yield f"{prefix}{key}", value


def test_hardware_configs_load_and_override_only_what_they_say():
  gpu = load("trainer/configs/gpu_bf16.py:b")
  tpu = load("trainer/configs/tpu_v5e.py:b")
  base = mae.get_config("b")
  common = {"model.dtype": ("float32", "bfloat16"), "batch_size": (32, 4096),
            "num_train_steps": (3500, 50_000), "workers": (0, 16),
            "learning_rate": (1e-3, 0.0)}  # 0: LSM's 5e-3 x batch / 4096
  for config in (gpu, tpu):
    changed = differences(base, config)
    assert common.items() <= changed.items(), changed
    assert config.model.hidden == 768 and config.size == "b"
  assert differences(base, tpu)["distributed"] == (False, True)
  assert "distributed" not in differences(base, gpu)
  assert not tpu.shard_params and tpu_v5e.get_config("l").shard_params
  assert gpu_bf16.get_config("tiny").model.hidden == 192  # any size, same overrides
  assert set(differences(base, gpu)) - set(common) <= {
      "worker_buffer", "prefetch_batches", "log_every_steps", "eval_every_steps",
      "checkpoint_every_steps", "eval_batches", "progress_bar"}
