"""The check jobs' settings: defaults, normalisation, errors that name the parameter, and the
CLI printing a settings error as one line with exit status 2."""

import re

import pytest

from fvlab.check.settings import (
    AuditSettings,
    AuditThresholds,
    PathsSettings,
    SilentCheckSettings,
)
from fvlab.cli import main
from fvlab.jobs import SettingsError


@pytest.mark.parametrize(
    ("make", "parameter"),
    [
        (lambda: AuditSettings(layer="fc", metric="x"), "metric"),
        (lambda: AuditSettings(layer="fc", units=[]), "units"),
        (lambda: AuditSettings(layer="fc", top_k=1), "top_k"),
        (lambda: AuditSettings(layer="fc", top_k=3, path_exemplars=4), "path_exemplars"),
        (lambda: AuditThresholds(jump=0), "thresholds.jump"),
        (lambda: AuditSettings(layer="fc", thresholds={"jump": 0.1}), "thresholds"),
        (lambda: AuditSettings(layer="fc", split="val"), "split"),
        (lambda: PathsSettings(reduce="sum"), "reduce"),
        (lambda: PathsSettings(classes=(0, -1)), "classes"),
        (lambda: PathsSettings(classes=(0, 1), logits=(5,)), "logits"),
        (lambda: PathsSettings(bootstrap=5), "bootstrap"),
        (lambda: SilentCheckSettings(max_fraction=1.0), "max_fraction"),
        (lambda: SilentCheckSettings(layers=" , "), "layers"),
    ],
)
def test_settings_errors_name_the_parameter(make, parameter):
    with pytest.raises(SettingsError, match=f"^{re.escape(parameter)}: ") as error:
        make()
    assert error.value.parameter == parameter
    assert "--" not in str(error.value)  # a parameter, never a CLI flag


def test_defaults_and_normalised_values():
    settings = AuditSettings(layer="relu3", units=[1, 2], path_layers=["relu3"])
    assert settings.units == (1, 2) and settings.path_layers == ("relu3",)
    assert settings.thresholds.to_dict() == {
        "excess": 10.0, "jump": 0.01, "silent": 0.001, "gradient": 0.2, "valley": 3.0,
        "procedure": 2.0, "hold": 3.0,
    }  # fmt: skip
    assert settings.to_dict()["thresholds"] == settings.thresholds.to_dict()
    changed = settings.replace(thresholds=AuditThresholds(jump=0.5))
    assert changed.thresholds.jump == 0.5 and changed.units == (1, 2)
    paths = PathsSettings()
    assert paths.classes == tuple(range(10)) and paths.layers == "leaves"
    assert PathsSettings(layers=["relu3", "fc"]).layers == ("relu3", "fc")
    assert SilentCheckSettings(layers="relu3, relu4").layers == ("relu3", "relu4")
    assert SilentCheckSettings().to_dict()["batch_size"] == 500


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["audit", "--layer", "fc", "--metric", "x"], "fvlab: error: metric: "),
        (["audit", "--layer", "fc", "--jump-threshold", "0"], "fvlab: error: thresholds.jump: "),
        (["check", "paths", "--reduce", "sum"], "fvlab: error: reduce: "),
        (["check", "silent", "--max-fraction", "1"], "fvlab: error: max_fraction: "),
    ],
)
def test_cli_prints_a_settings_error_as_one_line(tmp_path, capsys, args, message):
    with pytest.raises(SystemExit) as exit_info:
        main([*args, "--out", str(tmp_path / "out"), "-q"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(message) and err.count("\n") == 1, err
    assert not (tmp_path / "out").exists()  # nothing was run
