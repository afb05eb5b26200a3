import json
import subprocess
import sys
from pathlib import Path

import pytest

FVLAB = str(Path(sys.executable).with_name("fvlab"))


def run(*args, check=True):
    proc = subprocess.run([FVLAB, *args], capture_output=True, text=True, timeout=300)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def test_evaluate_writes_summary(tmp_path):
    run("evaluate", "--model", "fmnist-cnn", "--out", str(tmp_path), "-q")
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["model"] == "fmnist-cnn"
    assert summary["n_images"] == 10000
    assert 0.91 <= summary["top1"] <= 1


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("torchvision:resnet50", "layer4.1.conv2"),
        ("inceptionv1", "mixed4a "),
        ("fmnist-cnn", "bn3 "),
    ],
)
def test_layers_lists_names(model, expected):
    proc = run("layers", "--model", model)
    assert expected in proc.stdout
    if model != "fmnist-cnn":
        assert "random initialisation" in proc.stderr


def test_layers_marks_reused_modules():
    out = run("layers", "--model", "torchvision:resnet18").stdout
    assert "layer1.0.relu" in out and "×2 (reused)" in out


def test_misspelt_layer_names_the_nearest():
    code = (
        "import fvlab, torch\n"
        "m = fvlab.load('fmnist-cnn')\n"
        "with fvlab.capture(m, ['bn_3']) as cap: m(torch.rand(1, 1, 28, 28))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode != 0
    assert "unknown layer 'bn_3'; closest valid names: 'bn3'" in proc.stderr


def test_bad_input_is_one_line_and_exit_2(tmp_path):
    proc = run("evaluate", "--model", "nope", "--out", str(tmp_path), check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0
    assert "unknown model 'nope'" in proc.stderr
    proc = run("render", "--layer", "bn9", "--out", str(tmp_path), check=False)
    assert proc.returncode == 2 and "closest valid names" in proc.stderr


def test_every_command_has_help_with_example():
    for command in ("layers", "evaluate", "train-reference", "render"):
        out = run(command, "--help").stdout
        assert "Example" in out, command


def test_help_joins_prose_lines_and_keeps_example_lines():
    from fvlab.cli import help_text

    doc = """Summary line.

    Examples:
      fvlab render --layer fc
      fvlab render --layer relu3     --units 0-3

    A paragraph wrapped
    in the source at 95 characters.
    Example: fvlab layers
    fvlab evaluate --out x
    """
    assert help_text(doc) == (
        "Summary line.\n\nExamples:\n  fvlab render --layer fc\n"
        "  fvlab render --layer relu3 --units 0-3\n\n"
        "A paragraph wrapped in the source at 95 characters. Example: fvlab layers\n"
        "fvlab evaluate --out x"
    )


def test_every_command_help_keeps_every_word_of_its_docstring():
    from fvlab.cli import command_table, help_text

    for group, name, function in command_table():
        assert help_text(function.__doc__).split() == function.__doc__.split(), (group, name)
        # no paragraph of prose keeps the source's line breaks
        for paragraph in help_text(function.__doc__).split("\n\n"):
            lines = paragraph.splitlines()
            for before, line in zip(lines, lines[1:], strict=False):
                assert line.startswith(("  ", "fvlab ")) or before.endswith(":"), (name, line)
