"""The command line: output, exit codes, and the one-line bad-input contract."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from onnx_builders import GraphBuilder
from test_nir_import import sinabs_like

from stems.cli import main
from stems.errors import StemsInputError
from stems.hardware import load_hardware


@pytest.fixture
def run() -> object:
    runner = CliRunner()

    def invoke(*args: str) -> object:
        return runner.invoke(main, [str(a) for a in args], catch_exceptions=False)

    return invoke


def assert_one_line_error(result: object, *needles: str) -> None:
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("stems: error: "), result.output
    assert "Traceback" not in result.output
    for needle in needles:
        assert needle in lines[0]


def test_version_and_help(run: object) -> None:
    assert run("--version").output.startswith("stems, version ")
    out = run("--help").output
    for command in ("inspect", "zoo", "schema"):
        assert command in out


def test_inspect_table_and_json(run: object, tmp_path: Path) -> None:
    model = sinabs_like(tmp_path)
    text = run("inspect", model, "--timesteps", "4")
    assert text.exit_code == 0 and "T = 4" in text.output and "state_bits" in text.output
    data = json.loads(run("inspect", model, "-T", "4", "--json").output)
    assert data["totals"]["conv_layers"] == 1 and data["totals"]["timesteps"] == 4
    assert [x["name"] for x in data["layers"]] == ["0", "2", "4"]
    assert set(data["totals"]) >= {
        "conv_layers",
        "linear_layers",
        "neuron_layers",
        "weights",
        "neurons",
        "state_bits",
        "timesteps",
    }


def test_inspect_with_annotations(run: object, tmp_path: Path) -> None:
    ann = tmp_path / "a.yaml"
    ann.write_text("stems_annotations: 1\nlayers:\n  '0': {stateful: false}\n")
    data = json.loads(run("inspect", sinabs_like(tmp_path), "-T", "2", "-a", ann, "--json").output)
    assert data["totals"]["stateful_layers"] == 1


def test_schema_annotations(run: object) -> None:
    assert "stems_annotations: 1" in run("schema", "annotations").output


@pytest.mark.parametrize(
    ("content", "needles"),
    [
        (b"", ("m.onnx",)),
        (b"\x08\x07garbage that is not protobuf" * 3, ("m.onnx",)),
    ],
)
def test_bad_model_files(run: object, tmp_path: Path, content: bytes, needles: tuple[str, ...]) -> None:
    path = tmp_path / "m.onnx"
    path.write_bytes(content)
    assert_one_line_error(run("inspect", path), *needles)


def test_bad_inputs_are_one_line(run: object, tmp_path: Path) -> None:
    assert_one_line_error(run("inspect", tmp_path / "missing.onnx"), "no such file")
    other = tmp_path / "m.txt"
    other.write_text("x")
    assert_one_line_error(run("inspect", other), "unknown model format")
    ann = tmp_path / "a.yaml"
    ann.write_text("stems_annotations: 1\nlayers:\n  '0': {statefull: false}\n")
    assert_one_line_error(
        run("inspect", sinabs_like(tmp_path), "-a", ann),
        "a.yaml",
        "layers.0.statefull",
        "did you mean 'stateful'",
    )


def test_zoo_list_and_export_refuses_to_clobber(run: object, tmp_path: Path) -> None:
    listing = run("zoo", "list").output
    assert "sew-resnet18-dvs128" in listing and "red-lif" in listing
    names = [m["name"] for m in json.loads(run("zoo", "list", "--json").output)]
    assert names == ["sew-resnet18-dvs128", "red-lif"]
    target = tmp_path / "out" / "sew.onnx"
    assert run("zoo", "export", "sew-resnet18-dvs128", target).exit_code == 0
    before = target.read_bytes()
    assert_one_line_error(run("zoo", "export", "red-lif", target), "already exists", "--force")
    assert target.read_bytes() == before
    assert run("zoo", "export", "red-lif", target, "--force").exit_code == 0
    assert target.read_bytes() != before
    assert_one_line_error(run("zoo", "export", "sew-resnet", target), "did you mean 'sew-resnet18-dvs128'")


def lrn_model(tmp_path: Path) -> Path:
    """Conv -> LRN (an operator stems does not price) -> Conv."""
    b = GraphBuilder()
    x = b.input("x", [1, 3, 8, 8])
    c = b.op("Conv", [x, b.weight("c.weight", [4, 3, 3, 3])], kernel_shape=[3, 3])
    odd = b.op("LRN", [c], size=3)
    b.output(b.op("Conv", [odd, b.weight("d.weight", [2, 4, 1, 1])], kernel_shape=[1, 1]), "y")
    return b.save(tmp_path / "lrn.onnx")


def test_unsupported_operator_and_truncated_file_through_the_cli(run: object, tmp_path: Path) -> None:
    model = lrn_model(tmp_path)
    assert_one_line_error(
        run("inspect", model), "lrn.onnx", "unsupported operator LRN", "--allow-unknown-ops"
    )
    passed = run("inspect", model, "--allow-unknown-ops", "--json")
    assert passed.exit_code == 0
    assert any("LRN" in m for m in json.loads(passed.output)["warnings"])
    cut = tmp_path / "cut.onnx"
    cut.write_bytes(model.read_bytes()[: model.stat().st_size // 2])
    assert_one_line_error(run("inspect", cut), "cut.onnx")


def test_binary_files_where_text_is_expected_are_one_line(run: object, tmp_path: Path) -> None:
    """A model (or any binary file) given as a mapping file, annotations, hardware YAML or summary."""
    blob = tmp_path / "model.onnx"
    blob.write_bytes(b"\x08\x07\x12\x0bstems\xd3\xff\x00binary")
    assert_one_line_error(run("evaluate", blob), "model.onnx", "not a YAML text file")
    assert_one_line_error(run("inspect", sinabs_like(tmp_path), "-a", blob), "not a YAML text file")
    hw = tmp_path / "hw.yaml"
    hw.write_bytes(blob.read_bytes())
    with pytest.raises(StemsInputError, match=r"hw\.yaml: not a YAML text file"):
        load_hardware(hw)
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "summary.json").write_bytes(blob.read_bytes())
    assert_one_line_error(run("report", folder), "summary.json", "cannot read")
