"""Fine-tuning's layer-wise learning-rate decay."""

import jax
import numpy as np
import pytest

from trainer import finetune, models
from trainer.configs import mae


def test_layer_scales_decay_from_the_head_down_to_the_embedding():
  config = models.ModelConfig.from_config(mae.get_config("nano").model)   # 2 blocks
  params = finetune.init_params(finetune.Classifier(config, 3), 0, None)
  scales = finetune.layer_scales(params, 0.5, config.layers)
  assert scales["head"]["kernel"] == 1.0 and scales["mae"]["encoder_norm"]["scale"] == 1.0
  assert scales["mae"]["encoder_1"]["Dense_0"]["kernel"] == 0.5
  assert scales["mae"]["encoder_0"]["MultiHeadDotProductAttention_0"]["query"]["bias"] == 0.25
  assert scales["mae"]["patch_embedding"]["kernel"] == 0.125
  assert scales["mae"]["mask_token"] == 0.125
  ones = finetune.layer_scales(params, 1.0, config.layers)
  assert all(np.all(x == 1.0) for x in jax.tree.leaves(ones))


def test_layer_decay_leaves_training_from_scratch_alone(monkeypatch):
  """layer_decay applies to a pre-trained encoder only: the supervised baseline keeps
  one rate, whatever the config says."""
  config = models.ModelConfig.from_config(mae.get_config("nano").model)
  seen = []
  real = finetune.layer_scales
  monkeypatch.setattr(finetune, "layer_scales",
                      lambda params, decay, layers: seen.append(decay) or real(params, decay,
                                                                                 layers))
  rng = np.random.default_rng(0)
  x = rng.normal(size=(8, 300, 26)).astype(np.float32)
  m = np.ones_like(x, bool)
  y = np.arange(8) % 2
  run = finetune.FinetuneConfig(steps=1, batch_size=8, layer_decay=0.5)
  finetune.train_classifier(x, m, y, 2, config, config=run)
  pretrained = finetune.init_params(finetune.Classifier(config, 2), 1, None)["mae"]
  finetune.train_classifier(x, m, y, 2, config, pretrained=pretrained, config=run)
  assert seen == [1.0, 0.5]
  with pytest.raises(ValueError, match=r"layer_decay must be in \(0, 1\], got 1.5"):
    finetune.train_classifier(x, m, y, 2, config,
                              config=finetune.FinetuneConfig(steps=1, layer_decay=1.5))
  with pytest.raises(ValueError, match="at least one step"):
    finetune.train_classifier(x, m, y, 2, config, config=finetune.FinetuneConfig(steps=0))
