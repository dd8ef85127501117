import json

from click.testing import CliRunner

from cli import cli
from core.taxonomy import LINEAGES, SOURCES, load_taxonomy

KIMURA_TABLE3 = [
    "bl_abnormal_nuclear_shape", "bl_abnormal_granulation", "bl_vacuoles",
    "neu_pseudo_pelger", "neu_spherical_nucleus", "neu_hypersegmentation", "neu_degranulation",
    "neu_abnormal_granulation", "neu_giant", "neu_vacuoles", "neu_toxic_granulation", "neu_dohle_body",
    "ly_cleaved_nucleus", "ly_increased_nc_ratio", "ly_abnormal_chromatin", "ly_abnormal_nuclear_shape",
    "ly_granular", "ly_vacuoles", "erb_irregular_shape", "plt_giant",
]
# Mori 2020 Table 1, granulocytic and erythroid dysplasias, by their abbreviations.
MORI_TABLE1 = ["SUL", "HS", "HYPES", "DG", "PCH", "DB", "AR", "DNP", "NP", "ACC",
               "NB", "INB", "KR", "MN", "RCACC", "MC", "GRC", "VAC", "HJB"]


def test_counts_and_unique_ids():
    tax = load_taxonomy()
    assert len(tax.cell_types) == 17
    assert len(tax.features) == 97
    assert len({t.id for t in tax.cell_types}) == 17
    assert len({t.abbr for t in tax.cell_types}) == 17
    assert len(set(tax.feature_ids)) == 97
    assert len({f.name for f in tax.features}) == 97


def test_kimura_abbreviations_in_order():
    assert load_taxonomy().type_abbrs == ["SNE", "BNE", "MMY", "MY", "PMY", "BL", "LY", "VLY", "MO", "EO", "BA",
                                          "LP", "MEK", "TAG", "ERB", "SMU", "ART"]


def test_every_feature_is_well_formed():
    tax = load_taxonomy()
    for f in tax.features:
        assert f.cell_types, f.id
        assert set(f.cell_types) <= set(tax.type_abbrs), f.id
        assert f.lineage in LINEAGES, f.id
        assert f.source in SOURCES, f.id
        assert isinstance(f.dysplasia, bool)
        assert f.name.split(":")[0].strip(), f.id


def test_papers_tables_are_covered():
    tax = load_taxonomy()
    for fid in KIMURA_TABLE3:
        assert "kimura_t3" in tax.feature(fid).papers, fid
    mori = {p.split(":")[1] for f in tax.features for p in f.papers if p.startswith("mori_t1:")}
    assert set(MORI_TABLE1) <= mori
    for fid in ["neu_degranulation", "neu_pseudo_pelger", "neu_hypersegmentation", "neu_abnormal_chromatin_clumping",
                "neu_nuclear_projections", "plt_giant", "neu_dohle_body", "neu_toxic_granulation", "neu_vacuoles"]:
        assert fid in tax.feature_ids


def test_who_dysplasia_only_in_myeloid_lineages():
    for f in load_taxonomy().features:
        if f.dysplasia:
            assert f.lineage in ("granulocytic", "erythroid", "megakaryocytic-platelet"), f.id


def test_cli_json_and_table():
    runner = CliRunner()
    result = runner.invoke(cli, ["taxonomy", "--format", "json"])
    assert result.exit_code == 0
    data = json.loads(result.output)
    assert len(data["cell_types"]) == 17 and len(data["features"]) == 97
    assert set(data["cell_types"][0]) == {"id", "abbr", "name"}
    assert set(data["features"][0]) == {"id", "name", "cell_types", "lineage", "dysplasia", "source"}
    table = runner.invoke(cli, ["taxonomy", "--format", "table"])
    assert table.exit_code == 0
    assert "neutrophil: degranulation" in table.output and "97 features" in table.output


def test_cli_bad_format_is_one_clear_error():
    result = CliRunner().invoke(cli, ["taxonomy", "--format", "xml"])
    assert result.exit_code == 2
    assert "xml" in result.output
