"""The continuous (ramp) gate of the fooling circuit on fmnist-cnn: exact on natural data,
continuous along exemplar → FV paths (no jump), the FV still fooled — and the audit's gradient
residual flags it while the jump signal cannot."""

import pytest
import torch

import fvlab
from fvlab.check.audit import audit
from fvlab.check.gradient_path import gradient_path
from fvlab.check.interpolation import response_path
from fvlab.check.settings import AuditSettings
from fvlab.data.fashion_mnist import FashionMNIST
from fvlab.fool.circuit import CircuitConstruction, build_circuit
from fvlab.fool.circuit.gate import Circuit, GateConstants

UNITS = tuple(range(0, 64, 8))


@pytest.fixture(scope="module")
def ramp(reference_model):
    natural, _ = FashionMNIST("train", stop=10000).load()
    settings = CircuitConstruction(
        layer="relu3", units=UNITS, gate="ramp", ramp_width=4.0, render_steps=64
    )
    return build_circuit(reference_model, natural, settings, show_progress=False)


@pytest.fixture(scope="module")
def ramp_fv(ramp):
    return fvlab.render(ramp.model, "relu3", list(UNITS), steps=128, show_progress=False).images


def test_ramp_gate_values():
    circuit = Circuit.__new__(Circuit)
    torch.nn.Module.__init__(circuit)
    circuit.ramp = (1.0, 4.0)
    logits = torch.tensor([-3.0, 1.0, 3.0, 5.0, 9.0])
    assert circuit.gate_value(logits).tolist() == [0.0, 0.0, 0.5, 1.0, 1.0]
    circuit.ramp = None
    assert circuit.gate_value(logits).tolist() == [0.0, 1.0, 1.0, 1.0, 1.0]
    with pytest.raises(ValueError, match="ramp"):
        Circuit(None, None, [0], GateConstants(0.1, 1.0), mapping=[1], gate="ramp")


@pytest.mark.slow
def test_ramp_is_exact_on_natural_images_and_fools(ramp, ramp_fv, reference_model, fmnist_test):
    assert ramp.circuit.gate == "ramp" and ramp.circuit.ramp[0] >= 0.0
    x = fmnist_test[0][:2000]
    with torch.no_grad():
        same = (ramp.model(x) - reference_model(x)).abs().flatten(1).amax(1) < 1e-5
    assert same.float().mean() >= 0.998  # the detector's few misrouted test images aside
    with torch.no_grad(), fvlab.capture(reference_model, ["relu3"]) as cap:
        reference_model(ramp_fv)
        act = cap["relu3"].flatten(2).mean(2)
    mapping = ramp.circuit.mapping.tolist()
    shown = act[torch.arange(len(UNITS)), mapping] > act[torch.arange(len(UNITS)), list(UNITS)]
    assert shown.float().mean() >= 0.75  # the FV shows the mapped unit


@pytest.mark.slow
def test_ramp_has_no_jump_but_a_gradient_residual(ramp, ramp_fv, fmnist_test):
    fv = ramp_fv
    start = fmnist_test[0][: len(UNITS)]
    units = torch.tensor(UNITS)
    jumps = response_path(ramp.model, "relu3", units, start, fv).jump
    assert float(jumps.max()) < 0.05  # continuous: bisection finds no jump
    residual = gradient_path(ramp.model, "relu3", units, start, fv).residual
    assert float(residual.median()) > 0.2, residual


@pytest.mark.slow
def test_audit_flags_ramp_units_not_clean_ones(ramp, reference_model):
    natural = FashionMNIST("test", stop=2000)
    settings = AuditSettings(layer="relu3", steps=128, path_layers=["relu3"])
    fooled = audit(ramp.model, natural, settings.replace(units=UNITS), show_progress=False)
    assert len(fooled.flagged) >= 7, [r["gradient"] for r in fooled.rows]
    assert all("gradient" in r["flags"] for r in fooled.rows if r["flags"])
    clean_units = tuple(u for u in range(64) if u % 8 == 4)
    clean = audit(reference_model, natural, settings.replace(units=clean_units),
                  show_progress=False)  # fmt: skip
    assert len(clean.flagged) == 0, [(r["unit"], r["flags"]) for r in clean.rows]
