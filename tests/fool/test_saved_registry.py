"""The saved-model registry: constructions registered as entry points save and reload exactly;
an unregistered construction in a manifest is a clear error; reading a manifest is torch-free."""

import json
import subprocess
import sys
from importlib.metadata import EntryPoint

import pytest
import torch

import fvlab
from fvlab.fool.circuit import BuiltCircuit, Circuit, Detector, derive_constants, install
from fvlab.fool.install import Base, fresh_copy
from fvlab.fool.silent import silent
from fvlab.models import saved


def test_the_fool_constructions_are_registered():
    registered = saved.constructions()
    assert registered["circuit"].value == "fvlab.fool.circuit:rebuild"
    assert registered["silent"].value == "fvlab.fool.silent:rebuild"
    assert saved.rebuild_function("circuit") is fvlab.fool.circuit.rebuild


def _circuit(model):
    """A permute circuit at fc with an untrained detector (its decisions vary per image)."""
    detector = Detector(1, strides=(1, 2, 2, 2, 1))
    detector.reset_parameters(torch.Generator().manual_seed(3))
    circuit = Circuit(
        detector.eval(),
        model.spec,
        list(range(10)),
        derive_constants(-30.0, 30.0, -30.0, 30.0),
        mapping=[(i + 3) % 10 for i in range(10)],
    )
    fooled = install(fresh_copy(model), "fc", circuit)
    return BuiltCircuit(fooled, Base.of(model), circuit, "fc", torch.zeros(10, 1, 28, 28), {})


def test_a_circuit_saves_and_reloads_through_the_registry(reference_model, fmnist_test, tmp_path):
    built = _circuit(reference_model)
    path = built.save(tmp_path / "circuit")
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["construction"] == "circuit" and manifest["params"]["layer"] == "fc"
    reloaded = fvlab.load(str(path))
    assert reloaded.extra["construction"] == "circuit" and reloaded.name == str(path)
    images = torch.cat([fmnist_test[0][:200], torch.rand(56, 1, 28, 28)])
    with torch.no_grad():
        expected = built.model(images)
        decisions = built.circuit.last_decision
        assert torch.equal(reloaded(images), expected)
        # the base model is unchanged by building
        assert not hasattr(reference_model.module, "fvlab_circuit")
    assert decisions is not None and decisions.shape == (256,)


def test_silent_units_save_and_reload_through_the_registry(reference_model, fmnist_test, tmp_path):
    natural = fmnist_test[0][:128]
    built = silent(
        reference_model, "conv3", "builtin:ring", natural, units=[0, 5], show_progress=False
    )
    reloaded = fvlab.load(str(built.save(tmp_path / "silent")))
    images = torch.cat([fmnist_test[0][:100], torch.rand(28, 1, 28, 28)])
    with torch.no_grad():
        assert torch.equal(reloaded(images), built.model(images))
    assert reloaded.extra["params"]["units"] == [0, 5]


def test_an_unregistered_construction_is_a_clear_error(reference_model, tmp_path, capsys):
    path = _circuit(reference_model).save(tmp_path / "model")
    manifest = json.loads((path / "manifest.json").read_text())
    manifest["construction"] = "warp"
    (path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(saved.UnknownConstructionError) as info:
        fvlab.load(str(path))
    message = str(info.value)
    assert "construction 'warp'" in message and "fvlab.constructions" in message
    assert "registered: " in message and "circuit" in message and "silent" in message
    with pytest.raises(saved.UnknownConstructionError, match="'warp'"):
        saved.rebuild_function("warp")
    # and on the command line: one line, exit status 2
    from fvlab.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["layers", "--model", str(path)])
    assert exit_info.value.code == 2
    assert "construction 'warp'" in capsys.readouterr().err


def test_another_package_can_register_a_construction(reference_model, tmp_path, monkeypatch):
    """A construction is found through the entry-point group alone (here a second name for
    the circuit's rebuild, as another package's pyproject.toml would declare it)."""
    path = _circuit(reference_model).save(tmp_path / "model")
    manifest = json.loads((path / "manifest.json").read_text())
    manifest["construction"] = "gate-v2"
    (path / "manifest.json").write_text(json.dumps(manifest))
    registered = saved.constructions()
    extra = EntryPoint("gate-v2", "fvlab.fool.circuit:rebuild", saved.GROUP)
    monkeypatch.setattr(saved, "constructions", lambda: {**registered, "gate-v2": extra})
    reloaded = fvlab.load(str(path))
    assert reloaded.extra["construction"] == "circuit"


def test_reading_a_manifest_imports_neither_torch_nor_the_zoo(reference_model, tmp_path):
    path = _circuit(reference_model).save(tmp_path / "model")
    code = (
        "import sys; from fvlab.models.saved import read_manifest; "
        f"m = read_manifest({str(path)!r}); "
        "print(m['construction'], 'torch' in sys.modules, 'fvlab.models.zoo' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.split() == ["circuit", "False", "False"], result.stderr
