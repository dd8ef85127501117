"""The WBCAtt attribute head refitted on frozen embeddings (``mdsdx train attributes``)."""
import numpy as np

from models.attribute_head import AttributeHeadConfig, fit_attribute_head
from models.cellnet import CellNetConfig, build_cellnet

FAST = AttributeHeadConfig(cs=(0.3, 3.0), folds=3)


def _data(seed: int = 0, n: int = 240, d: int = 8):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype(np.float32)
    three = np.argmax(x[:, :3], axis=1)                 # 3 of 4 values ever seen; value 2 of 4 never
    three = np.where(three == 2, 3, three)
    two = (x[:, 3] > 0).astype(np.int32)                # a binary attribute
    one = np.zeros(n, np.int32)                         # only one value seen
    targets = np.stack([three, two, one], axis=1)
    targets[rng.random(n) < 0.2, 1] = -1                # unlabelled crops are left out of that fit
    return x, targets


def test_the_head_recovers_separable_attributes_and_never_calls_an_unseen_value():
    x, targets = _data()
    kernel, bias, chosen = fit_attribute_head(x, targets, [4, 2, 3], FAST)
    assert kernel.shape == (8, 9) and bias.shape == (9,)
    logits = x @ kernel + bias
    assert (logits[:, 0:4].argmax(1) == targets[:, 0]).mean() > 0.9
    assert not (logits[:, 0:4].argmax(1) == 2).any()
    known = targets[:, 1] >= 0
    assert (logits[known, 4:6].argmax(1) == targets[known, 1]).mean() > 0.9
    assert (logits[:, 6:9].argmax(1) == 0).all()
    assert chosen[0] in FAST.cs and chosen[1] in FAST.cs and np.isnan(chosen[2])


def test_written_back_into_the_network_the_head_gives_the_same_logits():
    net = build_cellnet(CellNetConfig(input_px=32, width=4, middle_width=16, middle_blocks=1, exit_width=32))
    images = np.random.default_rng(1).integers(0, 255, (6, 32, 32, 3)).astype("float32")
    emb = np.asarray(net(images, training=False)["embedding"])
    size = net.get_layer("attributes").get_weights()[1].shape[0]
    kernel = np.random.default_rng(2).normal(size=(emb.shape[1], size)).astype(np.float32)
    bias = np.linspace(-1, 1, size).astype(np.float32)
    net.get_layer("attributes").set_weights([kernel, bias])
    np.testing.assert_allclose(np.asarray(net(images, training=False)["attributes"]), emb @ kernel + bias, rtol=1e-4, atol=1e-4)


def test_embeddings_are_computed_in_chunks_in_order():
    from models.attribute_head import _embeddings
    net = build_cellnet(CellNetConfig(input_px=32, width=4, middle_width=16, middle_blocks=1, exit_width=32))
    images = np.random.default_rng(3).integers(0, 255, (5, 32, 32, 3)).astype(np.uint8)
    emb, logits = _embeddings(net, images, batch_size=2, chunk=2)
    whole = net.predict(images.astype("float32"), verbose=0)
    np.testing.assert_allclose(emb, np.asarray(whole["embedding"]), rtol=1e-4, atol=1e-5)
    assert logits.shape == (5, np.asarray(whole["attributes"]).shape[1])
