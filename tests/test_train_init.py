"""Starting a stage-1 training run from existing weights (``--init-weights``)."""
import keras
import numpy as np
import pytest

from core.errors import InvalidInput
from models.architecture.cellnet import CellNetConfig, build_cellnet
from models.engine.train import load_initial_weights
from models.export.artifact import save_cellnet

TINY = CellNetConfig(input_px=32, width=4, middle_width=16, middle_blocks=1, exit_width=32)


def _pair(config=TINY):
    net = build_cellnet(config)
    trainer = keras.Model(net.input, {"cell_type": net.output["cell_type_logits"],
                                      "features_logits": net.output["features_logits"],
                                      "attributes": net.output["attributes"]})
    return net, trainer


def _same(a, b, layer):
    return all(np.array_equal(x, y) for x, y in zip(a.get_layer(layer).get_weights(), b.get_layer(layer).get_weights()))


def test_from_training_checkpoint_and_from_saved_model(tmp_path):
    source, source_trainer = _pair()
    source_trainer.save_weights(str(tmp_path / "best.weights.h5"))
    net, trainer = _pair()
    assert not _same(net, source, "cell_type_logits")
    load_initial_weights(net, trainer, tmp_path / "best.weights.h5")
    assert _same(net, source, "cell_type_logits") and _same(net, source, "block4_sepconv1")

    path = save_cellnet(source, TINY, tmp_path / "model", calibration={"type_temperature": 1.0,
                        "feature_temperature": 1.0, "unid_threshold": 0.0}, trained_features=[], training={})
    net2, trainer2 = _pair()
    load_initial_weights(net2, trainer2, path)
    assert _same(net2, source, "features_logits") and _same(net2, source, "block0_conv1")


def test_missing_or_mismatched_weights_are_clear_errors(tmp_path):
    net, trainer = _pair()
    with pytest.raises(InvalidInput, match="no such weights file"):
        load_initial_weights(net, trainer, tmp_path / "absent.weights.h5")
    _, wider_trainer = _pair(CellNetConfig(input_px=32, width=8, middle_width=16, middle_blocks=1, exit_width=32))
    wider_trainer.save_weights(str(tmp_path / "wider.weights.h5"))
    with pytest.raises(InvalidInput, match="do not fit"):
        load_initial_weights(net, trainer, tmp_path / "wider.weights.h5")


def test_training_frame_gives_a_rewritten_neutrophil_a_partial_type_label(tmp_path, monkeypatch):
    import pandas as pd

    import models.engine.train
    from core.taxonomy import load_taxonomy
    from simulate.training_set import read_training_set
    real = pd.DataFrame({"path": ["r.jpg"], "split": ["train"], "cell_types": [("MY",)]})
    monkeypatch.setattr(models.engine.train, "load_all", lambda root: real)
    pd.DataFrame({"path": ["train/a.jpg", "train/b.jpg"], "cell_type": ["SNE", "BNE"],
                  "features": ["neu_pseudo_pelger:2", "neu_degranulation:3"], "split": ["train", "train"],
                  "source_file": ["x", "y"]}).to_csv(tmp_path / "cells.csv", index=False)
    frame = models.engine.train.assemble(models.engine.train.TrainConfig(), read_training_set(tmp_path))
    abbrs = load_taxonomy().type_abbrs
    allowed = [{abbrs[i] for i in np.flatnonzero(t)} for t in frame["type_target"]]
    assert allowed == [{"MY"}, {"SNE", "BNE"}, {"BNE"}]
    assert list(frame["key"]) == ["MY", "SNE", "BNE"]  # sampling still balances on the drawn type


def test_sampling_weights_balance_and_boost_real_crops():
    import pandas as pd
    from models.engine.train import sampling_weights
    keys = pd.Series(["SNE"] * 4 + ["SNE"] * 4 + ["MY"])
    origins = pd.Series(["real"] * 4 + ["simulated"] * 4 + ["real"])
    plain = sampling_weights(keys, origins, 1.0)
    assert plain.sum() == pytest.approx(1.0)
    assert plain[:8].sum() == pytest.approx(plain[8])  # full balance: each type half the draws
    boosted = sampling_weights(keys, origins, 1.0, {"SNE": 3.0})
    assert boosted[0] / boosted[4] == pytest.approx(3.0)  # only the real SNE crops are boosted
    assert boosted[8] / boosted[4] == pytest.approx(8.0)
    with pytest.raises(InvalidInput, match="VLY"):
        sampling_weights(keys, origins, 1.0, {"VLY": 2.0})


def test_a_field_of_view_outside_0_1_is_a_clear_config_error():
    from models.engine.train import TrainConfig
    with pytest.raises(InvalidInput, match="field_of_view"):
        TrainConfig(field_of_view=1.25)


def test_swa_sets_the_mean_of_the_last_epochs_weights(tmp_path):
    from models.engine.train import _epoch_weights_path, _load_swa_weights
    snapshots = []
    for epoch in (1, 2, 3):
        _, trainer = _pair()
        path = _epoch_weights_path(tmp_path, epoch)
        path.parent.mkdir(exist_ok=True)
        trainer.save_weights(str(path))
        snapshots.append(trainer.get_weights())
    _, trainer = _pair()
    _load_swa_weights(trainer, tmp_path, last_epoch=3, swa_epochs=2)  # epochs 2 and 3, not 1
    for got, w2, w3 in zip(trainer.get_weights(), snapshots[1], snapshots[2]):
        np.testing.assert_allclose(got, (w2 + w3) / 2, rtol=1e-6, atol=1e-7)


def test_a_bad_schedule_or_swa_length_is_a_clear_config_error():
    from models.engine.train import TrainConfig
    with pytest.raises(InvalidInput, match="schedule"):
        TrainConfig(schedule="linear")
    with pytest.raises(InvalidInput, match="swa_epochs"):
        TrainConfig(epochs=4, swa_epochs=5)


def _saved_tiny(tmp_path, config=TINY):
    """A saved TINY model whose batch-norm statistics are not the fresh 0 and 1."""
    source = build_cellnet(config)
    rng = np.random.default_rng(0)
    for layer in source.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            gamma, beta, mean, var = layer.get_weights()
            layer.set_weights([gamma * rng.uniform(0.5, 1.5, gamma.shape), rng.normal(0, 0.1, beta.shape),
                               rng.normal(0, 0.2, mean.shape), rng.uniform(0.5, 2.0, var.shape)])
    path = save_cellnet(source, config, tmp_path / "narrow", calibration={"type_temperature": 1.0,
                        "feature_temperature": 1.0, "unid_threshold": 0.0}, trained_features=[], training={})
    return source, path


WIDE = CellNetConfig(input_px=32, width=6, middle_width=24, middle_blocks=1, exit_width=48)


def test_a_grown_network_computes_what_its_narrower_donor_did_and_can_learn(tmp_path):
    source, path = _saved_tiny(tmp_path)
    net, trainer = _pair(WIDE)
    load_initial_weights(net, trainer, path, grow=True)
    x = np.random.default_rng(1).uniform(0, 255, (6, 32, 32, 3)).astype("float32")
    before, after = source(x, training=False), net(x, training=False)
    for name in ("cell_type_logits", "features_logits", "attributes"):
        np.testing.assert_allclose(after[name], before[name], atol=1e-4)
    pointwise = net.get_layer("block4_sepconv1").get_weights()[1]  # (1, 1, 24, 24): inputs 16-23 are new
    assert (pointwise[:, :, 16:, :] == 0).all() and (pointwise[:, :, :16, 16:] != 0).any()

    type_trainer = keras.Model(net.input, net.output["cell_type_logits"])
    type_trainer.compile(optimizer=keras.optimizers.SGD(0.1), loss=keras.losses.CategoricalCrossentropy(from_logits=True))
    type_trainer.fit(x, np.eye(17)[np.arange(6)], epochs=1, verbose=0)
    assert (net.get_layer("block4_sepconv1").get_weights()[1][:, :, 16:, :] != 0).any()  # the new inputs learn


def test_growth_refuses_what_it_cannot_widen(tmp_path):
    _, path = _saved_tiny(tmp_path)
    for config, message in ((CellNetConfig(input_px=32, width=4, middle_width=16, middle_blocks=2, exit_width=32), "only widens"),
                            (CellNetConfig(input_px=32, width=2, middle_width=16, middle_blocks=1, exit_width=32), "does not fit")):
        net, trainer = _pair(config)
        with pytest.raises(InvalidInput, match=message):
            load_initial_weights(net, trainer, path, grow=True)
    net, trainer = _pair(WIDE)
    trainer.save_weights(str(tmp_path / "wide.weights.h5"))
    with pytest.raises(InvalidInput, match="needs a saved cellnet.keras"):
        load_initial_weights(net, trainer, tmp_path / "wide.weights.h5", grow=True)
    from models.engine.train import TrainConfig
    with pytest.raises(InvalidInput, match="grow_init: needs init_weights"):
        TrainConfig(grow_init=True)
