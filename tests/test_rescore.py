"""`mdsdx diagnose --engine ray` gives the local engine's CSV row for row, and loses no smear when a worker dies."""
import os
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from cli import cli
from conftest import jpeg_bytes
from diagnose.rescore import PipelineSpec, rescore_local, rescore_ray

ray = pytest.importorskip("ray", reason='Ray is an optional extra: pip install -e ".[ray]"')


def _smears(root: Path, n_smears: int = 4) -> list[Path]:
    out = []
    for s in range(n_smears):
        folder = root / f"SMEAR-{s}"
        folder.mkdir(parents=True)
        for i in range(6 + s):
            (folder / f"cell_{i:02d}.jpg").write_bytes(jpeg_bytes(100 * s + i, px=120))
        out.append(folder)
    return out


class DiesOnce:
    """A pipeline whose process exits the first time it meets smear SMEAR-2 (a marker file says so)."""

    def __init__(self, pipeline, marker: str):
        self.pipeline, self.marker = pipeline, marker

    def diagnose_images(self, sources, names, smear_id, skip_invalid=False):
        if smear_id == "SMEAR-2" and not os.path.exists(self.marker):
            Path(self.marker).touch()
            os._exit(1)
        return self.pipeline.diagnose_images(sources, names, smear_id, skip_invalid)


class DyingSpec(PipelineSpec):
    def __init__(self, marker: str, **kw):
        super().__init__(**kw)
        object.__setattr__(self, "marker", marker)

    def load(self):
        return DiesOnce(super().load(), self.marker)


@pytest.fixture(scope="module")
def local_ray():
    import sys

    from ray import cloudpickle
    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the workers cannot import this test module
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


def test_ray_gives_the_local_rows_and_survives_a_dying_worker(tmp_path, tiny_models, local_ray):
    smears = _smears(tmp_path / "smears") + [tmp_path / "smears" / "MISSING"]
    spec = PipelineSpec(str(tiny_models["cellnet"]), str(tiny_models["diagnoser"]), threads=1)
    local = [r.row for r in rescore_local(smears, spec)]
    assert [r["status"] for r in local] == ["ok"] * 4 + ["failed"]
    assert [r.row for r in rescore_ray(smears, spec, workers=2)] == local

    marker = str(tmp_path / "died")
    dying = DyingSpec(marker, cell_model=str(tiny_models["cellnet"]), diagnoser=str(tiny_models["diagnoser"]), threads=1)
    after_a_death = [r.row for r in rescore_ray(smears, dying, workers=2)]
    assert os.path.exists(marker)  # a worker process really died on SMEAR-2
    assert after_a_death == local  # its smear was retried on the restarted worker: none lost, none twice


def test_diagnose_command_with_the_ray_engine_writes_the_local_csv(tmp_path, tiny_models, local_ray):
    smears = [str(p) for p in _smears(tmp_path / "smears", 3)]
    models = ["--cell-model", str(tiny_models["cellnet"]), "--diagnoser", str(tiny_models["diagnoser"])]
    runner = CliRunner()
    r = runner.invoke(cli, ["diagnose", *smears, "--out", str(tmp_path / "local.csv"), "--threads", "1", *models])
    assert r.exit_code == 0, r.output
    r = runner.invoke(cli, ["diagnose", *smears, "--out", str(tmp_path / "ray.csv"), "--engine", "ray", "--workers", "2",
                            "--report", str(tmp_path / "reports"), *models])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "ray.csv").read_text() == (tmp_path / "local.csv").read_text()
    assert len(pd.read_csv(tmp_path / "ray.csv")) == 3
    assert (tmp_path / "reports" / "SMEAR-0.html").is_file() and (tmp_path / "reports" / "cohort_heatmap.png").is_file()
