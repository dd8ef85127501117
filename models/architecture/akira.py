"""The AKIRA regressor: a backbone truncated at global average pooling, dropout 0.5, Dense(34),
then sigmoid multiplied by each output's maxval (Mori et al. 2020; the authors' reference code).

Two configurations:
- ``paper``: Keras ResNet-152 at 224 px (the paper fine-tuned an ImageNet ResNet-152). ImageNet
  weights cannot be downloaded here, so the backbone starts from a weights file when one is given,
  otherwise from random initialisation.
- ``compact`` (default): the Kimura-style separable-convolution residual network of
  :mod:`models.architecture.cellnet`, narrowed, at 112 px: fast enough on 2 CPU cores for 16-rotation inference.
"""
from __future__ import annotations

from dataclasses import dataclass

import keras
import numpy as np
from keras import layers

from core.akira_labels import load_labels


@dataclass(frozen=True)
class AkiraConfig:
    """Architecture and geometry. Geometry follows the paper at 224 px and scales with ``input_px``."""
    backbone: str = "compact"          # compact | paper
    input_px: int = 112                # paper: 224
    width: int = 16
    middle_width: int = 128
    middle_blocks: int = 4
    dropout: float = 0.5
    backbone_weights: str | None = None

    @property
    def resize_px(self) -> int:
        """The longest side before augmentation: 232 at 224 px input."""
        return int(round(self.input_px * 232 / 224))

    @classmethod
    def paper(cls, backbone_weights: str | None = None) -> "AkiraConfig":
        return cls(backbone="paper", input_px=224, backbone_weights=backbone_weights)


@keras.saving.register_keras_serializable(package="mdsdx")
class ScaleOutputs(layers.Layer):
    """Multiply each output by its maxval (sigmoid in [0, 1] -> [0, maxval])."""

    def __init__(self, maxval, **kwargs):
        super().__init__(**kwargs)
        self.maxval = [float(v) for v in maxval]

    def call(self, x):
        return x * keras.ops.convert_to_tensor(np.array(self.maxval, "float32"))

    def get_config(self):
        return {**super().get_config(), "maxval": self.maxval}


@keras.saving.register_keras_serializable(package="mdsdx")
class CaffePreprocess(layers.Layer):
    """ResNet's ImageNet preprocessing: RGB 0-255 -> BGR minus the ImageNet channel means."""

    def call(self, x):
        x = x[..., ::-1]
        return x - keras.ops.convert_to_tensor(np.array([103.939, 116.779, 123.68], "float32"))


def _backbone(config: AkiraConfig) -> keras.Model:
    if config.backbone == "paper":
        inputs = keras.Input((config.input_px, config.input_px, 3), name="image")
        resnet = keras.applications.ResNet152(include_top=False, weights=None, pooling="avg",
                                              input_shape=(config.input_px, config.input_px, 3))
        if config.backbone_weights:
            resnet.load_weights(config.backbone_weights)
        return keras.Model(inputs, resnet(CaffePreprocess(name="caffe_preprocess")(inputs)), name="backbone")
    if config.backbone == "compact":
        from models.architecture.cellnet import CellNetConfig, build_cellnet
        net = build_cellnet(CellNetConfig(input_px=config.input_px, width=config.width, middle_width=config.middle_width,
                                          middle_blocks=config.middle_blocks, exit_width=2 * config.middle_width))
        backbone = keras.Model(net.input, net.get_layer("embedding").output, name="backbone")
        if config.backbone_weights:
            backbone.load_weights(config.backbone_weights)
        return backbone
    raise ValueError(f"unknown backbone {config.backbone!r}; use compact or paper")


def build_akira(config: AkiraConfig = AkiraConfig()) -> keras.Model:
    """Input RGB 0-255 of shape (input_px, input_px, 3); output (34,) in [0, maxval]."""
    labels = load_labels()
    backbone = _backbone(config)
    inputs = keras.Input((config.input_px, config.input_px, 3), name="image")
    x = backbone(inputs)
    x = layers.Dropout(config.dropout, name="head_dropout")(x)
    x = layers.Dense(len(labels.ids), name="head_dense")(x)
    x = layers.Activation("sigmoid", name="head_sigmoid")(x)
    outputs = ScaleOutputs(labels.maxval.tolist(), name="scaled_outputs")(x)
    return keras.Model(inputs, outputs, name=f"akira_{config.backbone}")


def head_variables(model: keras.Model) -> list:
    """The trainable variables of the head (learning rate 1e-4); everything else is backbone (1e-5)."""
    return list(model.get_layer("head_dense").trainable_variables)


def backbone_variables(model: keras.Model) -> list:
    head = {id(v) for v in head_variables(model)}
    return [v for v in model.trainable_variables if id(v) not in head]
