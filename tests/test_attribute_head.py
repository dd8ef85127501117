"""The WBCAtt attribute head refitted on frozen embeddings (``mdsdx train attributes``)."""
import numpy as np
import pytest

from models.architecture.cellnet import CellNetConfig, build_cellnet
from models.engine.attribute_head import AttributeHeadConfig, fit_attribute_head

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
    from models.engine.attribute_head import embed_images
    net = build_cellnet(CellNetConfig(input_px=32, width=4, middle_width=16, middle_blocks=1, exit_width=32))
    images = np.random.default_rng(3).integers(0, 255, (5, 32, 32, 3)).astype(np.uint8)
    emb, logits = embed_images(net, images, batch_size=2, chunk=2)
    whole = net.predict(images.astype("float32"), verbose=0)
    np.testing.assert_allclose(emb, np.asarray(whole["embedding"]), rtol=1e-4, atol=1e-5)
    assert logits.shape == (5, np.asarray(whole["attributes"]).shape[1])


def test_refit_rewrites_the_saved_model_and_its_version(tmp_path, tiny_models, monkeypatch):
    import json
    import shutil

    import pandas as pd
    from PIL import Image

    import core.datasets
    from conftest import synthetic_cell
    from core.errors import InvalidInput
    from models.engine.attribute_head import refit_saved
    from models.export.artifact import load_cellnet
    model = tmp_path / "cellnet"
    shutil.copytree(tiny_models["cellnet"], model)
    rows = []
    for i in range(24):
        path = tmp_path / f"c{i}.jpg"
        Image.fromarray(synthetic_cell(64, seed=i)).save(path)
        rows.append({"path": str(path), "split": "val" if i >= 18 else "train",
                     "cell_size": ["small", "big"][i % 2], "granularity": ["no", "yes"][(i // 2) % 2]})
    monkeypatch.setattr(core.datasets, "load_all", lambda root: pd.DataFrame(rows))
    before = json.loads((model / "metadata.json").read_text())["version"]
    report = refit_saved(model, config=AttributeHeadConfig(cs=(1.0,), folds=2))
    net, meta = load_cellnet(model)
    assert meta["version"].startswith(before + "-att") and meta["weights_version"] == meta["version"]
    assert report["n_train"] == 18 and report["n_val"] == 6 and set(report["c"]) == set(meta["attribute_head"]["c"])
    kernel, bias = net.get_layer("attributes").get_weights()
    assert bias[:2].std() > 0  # cell_size now fitted; unlabelled attributes keep zero weights
    assert report["fit_splits"] == ["train"]

    both = refit_saved(model, config=AttributeHeadConfig(cs=(1.0,), folds=2, fit_on_validation=True))
    assert both["fit_splits"] == ["train", "val"]
    # the reported validation figure is still the train-only fit's, scored on crops it did not see
    assert [both["val_accuracy_after"][a] for a in ("cell_size", "granularity")] == \
        [report["val_accuracy_after"][a] for a in ("cell_size", "granularity")]
    refitted_kernel, _ = load_cellnet(model)[0].get_layer("attributes").get_weights()
    assert not np.allclose(refitted_kernel[:, :2], kernel[:, :2])  # the saved head also learnt from the 6 val crops
    views = refit_saved(model, config=AttributeHeadConfig(cs=(1.0,), folds=2, fit_on_validation=True, train_views=2))
    assert views["fit_splits"] == ["train", "val"] and views["n_train"] == 18
    monkeypatch.setattr(core.datasets, "load_all", lambda root: pd.DataFrame(rows).assign(split="test"))
    with pytest.raises(InvalidInput, match="WBCAtt"):
        refit_saved(model, config=AttributeHeadConfig(cs=(1.0,), folds=2))


def test_dihedral_views_are_the_eight_distinct_symmetries():
    from models.engine.attribute_head import dihedral_view
    img = np.arange(2 * 4 * 4 * 3, dtype=np.uint8).reshape(2, 4, 4, 3)
    views = [dihedral_view(img, v) for v in range(8)]
    assert all(v.shape == img.shape and v.flags["C_CONTIGUOUS"] for v in views)
    np.testing.assert_array_equal(views[0], img)
    assert len({v.tobytes() for v in views}) == 8
    np.testing.assert_array_equal(views[1][0, :, :, 0], np.rot90(img[0, :, :, 0]))
    with pytest.raises(ValueError):
        dihedral_view(img, 8)


def test_the_head_fits_on_several_views_grouped_by_crop():
    x, targets = _data(n=120)
    views = 3
    rng = np.random.default_rng(5)
    x_views = np.concatenate([x + rng.normal(scale=0.01, size=x.shape).astype(np.float32) for _ in range(views)])
    groups = np.tile(np.arange(len(x)), views)
    kernel, bias, chosen = fit_attribute_head(x_views, np.tile(targets, (views, 1)), [4, 2, 3], FAST, groups=groups)
    logits = x @ kernel + bias
    assert (logits[:, 0:4].argmax(1) == targets[:, 0]).mean() > 0.9
    assert chosen[0] in FAST.cs
