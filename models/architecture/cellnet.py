"""The stage-1 cell network of Kimura et al. 2019 (Fig. 5), after ``keras.applications.xception``.

- Stem: two 3x3 convolutions (the first strided).
- Upstream submodule (Kimura: three consecutive blocks, each with two parallel pathways):
  ``block{1..3}``: [SepConv-BN-ReLU, SepConv-BN, MaxPool/2] beside a strided 1x1 Conv-BN shortcut.
- Downstream submodule (Kimura: eight blocks whose second pathway "lacks convolutional components
  and is termed a residual network"): ``block{4..11}``: 3 x [ReLU, SepConv, BN] + identity.
- Exit: ``block12`` SepConv-BN-ReLU x2, global average pooling -> the embedding.

Heads: ``cell_type`` (softmax over the 17 types, with its pre-softmax ``cell_type_logits``),
``features`` (sigmoid over the 97 features, with ``features_logits``), ``attributes`` (logits of
the 11 WBCAtt attributes, grouped, 31 values) and ``embedding``.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import keras
from keras import layers

N_CELL_TYPES = 17
N_FEATURES = 97


@dataclass(frozen=True)
class CellNetConfig:
    """Architecture settings; the defaults are the shipped compact model (~2.2 M parameters).

    The full-resolution stem and first block cost most of the CPU time, so they stay narrow
    (``width``), while the 8x8 middle flow, which is cheap, keeps ``middle_width`` channels.
    """
    input_px: int = 128
    field_of_view: float = 1.0  # preprocessing only: the network sees the central share of the crop's side
    width: int = 16            # stem: width, 2x width; blocks 1-2: 2x, 4x width
    middle_width: int = 256    # block 3 and the eight downstream blocks
    middle_blocks: int = 8     # Kimura Fig. 5: eight downstream blocks
    exit_width: int = 512      # embedding size
    dropout: float = 0.2
    n_attribute_values: int = 31
    bn_momentum: float = 0.9   # Keras' 0.99 let the moving statistics lag far behind at lr 2e-3


def build_cellnet(config: CellNetConfig = CellNetConfig(), name: str = "cellnet") -> keras.Model:
    """Build the network. Input: uint8 or float RGB of shape (input_px, input_px, 3), values 0-255.

    Returns a model with outputs ``{"cell_type": (17,), "cell_type_logits": (17,), "features": (97,),
    "features_logits": (97,), "attributes": (31,), "embedding": (exit_width,)}``.
    """
    w = config.width
    BatchNormalization = partial(layers.BatchNormalization, momentum=config.bn_momentum)
    inputs = keras.Input((config.input_px, config.input_px, 3), name="image")
    x = layers.Rescaling(1 / 127.5, offset=-1.0, name="rescale")(inputs)

    x = layers.Conv2D(w, 3, strides=2, padding="same", use_bias=False, name="block0_conv1")(x)
    x = BatchNormalization(name="block0_conv1_bn")(x)
    x = layers.Activation("relu", name="block0_conv1_act")(x)
    x = layers.Conv2D(2 * w, 3, padding="same", use_bias=False, name="block0_conv2")(x)
    x = BatchNormalization(name="block0_conv2_bn")(x)
    x = layers.Activation("relu", name="block0_conv2_act")(x)

    for b, filters in enumerate((2 * w, 4 * w, config.middle_width), start=1):
        shortcut = layers.Conv2D(filters, 1, strides=2, padding="same", use_bias=False, name=f"block{b}_shortcut")(x)
        shortcut = BatchNormalization(name=f"block{b}_shortcut_bn")(shortcut)
        x = layers.SeparableConv2D(filters, 3, padding="same", use_bias=False, name=f"block{b}_sepconv1")(x)
        x = BatchNormalization(name=f"block{b}_sepconv1_bn")(x)
        x = layers.Activation("relu", name=f"block{b}_sepconv1_act")(x)
        x = layers.SeparableConv2D(filters, 3, padding="same", use_bias=False, name=f"block{b}_sepconv2")(x)
        x = BatchNormalization(name=f"block{b}_sepconv2_bn")(x)
        x = layers.MaxPooling2D(3, strides=2, padding="same", name=f"block{b}_pool")(x)
        x = layers.add([x, shortcut], name=f"block{b}_add")

    for i in range(config.middle_blocks):
        b = 4 + i
        residual = x
        for j in (1, 2, 3):
            x = layers.Activation("relu", name=f"block{b}_sepconv{j}_act")(x)
            x = layers.SeparableConv2D(config.middle_width, 3, padding="same", use_bias=False, name=f"block{b}_sepconv{j}")(x)
            x = BatchNormalization(name=f"block{b}_sepconv{j}_bn")(x)
        x = layers.add([x, residual], name=f"block{b}_add")

    b = 4 + config.middle_blocks
    x = layers.Activation("relu", name=f"block{b}_act")(x)
    x = layers.SeparableConv2D(config.exit_width * 3 // 4, 3, padding="same", use_bias=False, name=f"block{b}_sepconv1")(x)
    x = BatchNormalization(name=f"block{b}_sepconv1_bn")(x)
    x = layers.Activation("relu", name=f"block{b}_sepconv1_act")(x)
    x = layers.SeparableConv2D(config.exit_width, 3, padding="same", use_bias=False, name=f"block{b}_sepconv2")(x)
    x = BatchNormalization(name=f"block{b}_sepconv2_bn")(x)
    x = layers.Activation("relu", name=f"block{b}_sepconv2_act")(x)
    embedding = layers.GlobalAveragePooling2D(name="embedding")(x)

    h = layers.Dropout(config.dropout, name="head_dropout")(embedding)
    type_logits = layers.Dense(N_CELL_TYPES, name="cell_type_logits")(h)
    feature_logits = layers.Dense(N_FEATURES, name="features_logits")(h)
    outputs = {
        "cell_type": layers.Softmax(name="cell_type")(type_logits),
        "cell_type_logits": type_logits,
        "features": layers.Activation("sigmoid", name="features")(feature_logits),
        "features_logits": feature_logits,
        "attributes": layers.Dense(config.n_attribute_values, name="attributes")(h),
        "embedding": embedding,
    }
    return keras.Model(inputs, outputs, name=name)
