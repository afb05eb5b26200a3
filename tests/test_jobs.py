"""The job layer: settings validate once and name the parameter; results save where asked."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fvlab.jobs import JobResult, Settings, SettingsError, at_least, choice, finish, unit_tuple


@dataclass(frozen=True)
class ToySettings(Settings):
    mode: str = "a"
    steps: int = 4
    units: tuple[int, ...] | None = None
    out: Path = Path("x")

    def validate(self) -> None:
        choice("mode", self.mode, ("a", "b"))
        at_least("steps", self.steps, 1)
        unit_tuple("units", self.units)


@dataclass
class ToyResult:
    numbers: dict = field(default_factory=lambda: {"n": 1})

    def summary(self) -> dict:
        return self.numbers

    def save(self, out: Path) -> Path:
        out.mkdir(parents=True, exist_ok=True)
        path = out / "summary.json"
        path.write_text(json.dumps(self.summary()))
        return path


def test_invalid_settings_name_the_parameter():
    with pytest.raises(SettingsError, match=r"^mode: must be one of a, b, not 'c'$"):
        ToySettings(mode="c")
    with pytest.raises(SettingsError, match=r"^steps: must be >= 1, got 0$") as info:
        ToySettings(steps=0)
    assert info.value.parameter == "steps"
    with pytest.raises(SettingsError, match="units: unit indices start at 0"):
        ToySettings(units=(1, -2))
    with pytest.raises(SettingsError, match="units: is empty"):
        ToySettings(units=())
    with pytest.raises(SettingsError, match="steps"):
        ToySettings().replace(steps=-1)


def test_settings_are_json_data():
    settings = ToySettings(units=(3, 1), out=Path("a/b"))
    assert settings.to_dict() == {"mode": "a", "steps": 4, "units": [3, 1], "out": "a/b"}
    assert json.loads(json.dumps(settings.to_dict())) == settings.to_dict()


@given(st.integers(min_value=-5, max_value=5))
def test_at_least_accepts_exactly_the_values_at_or_above_the_minimum(value):
    if value >= 0:
        at_least("x", value, 0)
    else:
        with pytest.raises(SettingsError):
            at_least("x", value, 0)


def test_finish_saves_only_when_given_a_folder(tmp_path):
    result = ToyResult()
    assert isinstance(result, JobResult)
    assert finish(result, None) is result and not any(tmp_path.iterdir())
    finish(result, tmp_path / "out")
    assert json.loads((tmp_path / "out" / "summary.json").read_text()) == {"n": 1}
