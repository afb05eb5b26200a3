"""Bad input to silent units gives specific FvlabErrors (and exit status 2 on the CLI)."""

import pytest
import torch

from fvlab.cli import main
from fvlab.errors import FvlabError, UnknownLayerError
from fvlab.fool.silent import silent


@pytest.fixture(scope="module")
def natural(fmnist_test):
    return fmnist_test[0][:64]


@pytest.fixture(scope="module")
def target(fmnist_test):
    return fmnist_test[0][100]


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"layer": "relu3"}, FvlabError, "is a ReLU, not a Conv2d"),
        ({"layer": "bn3"}, FvlabError, "Conv layers of fmnist-cnn: conv1, conv2"),
        ({"layer": "conv33"}, UnknownLayerError, "closest valid names"),
        ({"units": [3, 64]}, FvlabError, "has 64 units (0–63)"),
        ({"units": [1, 1]}, FvlabError, "units repeat"),
        ({"target": "no-such-file.png"}, FvlabError, "neither an existing image file"),
        ({"target": "builtin:star"}, FvlabError, "unknown built-in target 'star'"),
        ({"target": "relu9:0"}, UnknownLayerError, "unknown layer 'relu9'"),
        ({"target": "relu4:999"}, FvlabError, "has 64 units"),
        ({"target": torch.full((1, 28, 28), 2.0)}, FvlabError, "values in [0, 1]"),
        ({"target": torch.rand(2, 1, 28, 28)}, FvlabError, "(C, H, W) or (1, C, H, W)"),
        ({"attach": "fc"}, FvlabError, "must run once, after 'conv3'"),
        ({"attach": "nope"}, UnknownLayerError, "attach layer 'nope'"),
        ({"pooling": "max"}, FvlabError, "valid: none, mean"),
        ({"direction_objective": "best"}, FvlabError, "valid: sum, centre, contrast"),
        ({"margin": -1.0}, FvlabError, "margin >= 0"),
    ],
)
def test_bad_input_is_explained(reference_model, natural, target, kwargs, error, message):
    arguments = {"layer": "conv3", "target": target, "units": [0, 1]} | kwargs
    with pytest.raises(error) as info:
        silent(reference_model, natural_data=natural, show_progress=False, **arguments)
    assert message in str(info.value)


def test_a_builtin_target_is_drawn_at_the_model_size(reference_model, natural):
    from fvlab.fool.targets import builtin_target

    result = silent(
        reference_model, "conv3", "builtin:ring", natural, units=[0], show_progress=False
    )
    assert torch.equal(result.target.cpu(), builtin_target("ring", 28, 1)[None])
    assert result.params["target"] == {"kind": "builtin", "name": "ring"}


def test_a_bare_module_is_refused(reference_model, natural, target):
    with pytest.raises(FvlabError, match="expected a LoadedModel"):
        silent(reference_model.module, "conv3", target, natural)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ([], "give exactly one of target"),
        (["--target-unit", "relu4:0", "--target", "x.png"], "give exactly one of"),
        (["--target", "missing.png"], "target image missing.png not found"),
        (["--target-unit", "relu4:0", "--units", "a-b"], "cannot read units"),
    ],
)
def test_cli_errors_exit_2(tmp_path, capsys, extra, message):
    with pytest.raises(SystemExit) as info:
        main(["fool", "silent", "--layer", "conv3", "--out", str(tmp_path), "-q", *extra])
    assert info.value.code == 2
    assert message in capsys.readouterr().err
