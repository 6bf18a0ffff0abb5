"""The gate from names to paths (deepobs.safe_names) and its users: no name read from a
file, a flag or a sweep makes deepobs-plot or deepobs-tune write outside the output folder."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analyzer_fixtures import run_dict, write_run
from deepobs import result_schema
from deepobs.errors import ConfigurationError
from deepobs.safe_names import (
    MAX_COMPONENT_BYTES, bounded_component, join_under, output_path, path_component, writable_folder,
)

#: Names an attacker would try, and text of every kind.
HOSTILE = ["..", ".", "", " ", "a/b", "../x", "x/../../../../../../../../tmp/ESC_DEEP", "a\\b", "a\x00b",
           "a\nb", "a\rb", "\u202eevil", "\u2028", "é" * 128, "a" * 256, "/etc", "~", "-", "COM1"]
names = st.one_of(st.sampled_from(HOSTILE), st.text(max_size=40),
                  st.text(alphabet="./\\\x00\n .a", max_size=12), st.text(min_size=200, max_size=300))
SLOW_SETTINGS = settings(max_examples=30, deadline=None,
                         suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def _inside(path: Path, root: Path) -> bool:
    path, root = Path(os.path.abspath(path)).resolve(), root.resolve()
    return path == root or root in path.parents


@pytest.mark.parametrize("name", ["..", ".", "", " ", "a/b", "a\\b", "a\x00b", "a\nb", "\x7f", "\u202e", "a" * 256,
                                  "é" * 128, 3, None])
def test_path_component_refuses_in_one_line(name):
    with pytest.raises(ConfigurationError) as error:
        path_component(name, "problem")
    assert "\n" not in str(error.value) and "problem" in str(error.value)


@pytest.mark.parametrize("name", ["quadratic_deep", "SGD", "lr__1.e-02", "a" * 255, "é" * 127, "..a", "a..",
                                  "Momentum (deepobs-1.1)"])
def test_path_component_accepts_file_names(name):
    assert path_component(name) == name


def test_join_under_refuses_a_symlink_out_of_the_root(tmp_path):
    root = tmp_path / "out"
    root.mkdir()
    (root / "link").symlink_to(tmp_path)
    with pytest.raises(ConfigurationError, match="leads outside"):
        join_under(root, "link", "x")
    assert join_under(root, "a", "b") == root / "a" / "b"


def test_bounded_component_fits_with_its_suffix():
    long = "performance_" + "é" * 127
    short = bounded_component(long, reserve=4)
    assert len((short + ".png").encode()) <= MAX_COMPONENT_BYTES and path_component(short) == short
    assert bounded_component("x", reserve=4) == "x"
    assert bounded_component(long + "a", 4) != short  # the digest keeps distinct names apart


def test_output_path_refuses_a_newline_and_writable_folder_a_file(tmp_path):
    with pytest.raises(ConfigurationError, match="control"):
        output_path(str(tmp_path / "a\nb"))
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigurationError, match="not writable"):
        writable_folder(tmp_path / "file")
    assert writable_folder(tmp_path / "new" / "deeper").is_dir()


@given(name=names, root_name=st.sampled_from(["out", "a b", "é"]))
@SLOW_SETTINGS
def test_property_gate_never_leads_outside_the_root(tmp_path, name, root_name):
    root = tmp_path / root_name
    for parts in ((name,), ("x", name), (name, name)):
        try:
            joined = join_under(root, *parts)
        except ConfigurationError as error:
            assert "\n" not in str(error)
            continue
        assert _inside(joined, root) and joined != root


# ------------------------------------------------------------------ the analyzer
def test_issue_attack_writes_nothing_outside_out(tmp_path, capsys):
    """Issue 19 item 1: testproblem ``x/../../..`` made deepobs-plot write ESC_DEEP.png anywhere."""
    from deepobs.analyzer.cli import main

    results, out, target = tmp_path / "results", tmp_path / "report", tmp_path / "SOMEWHERE"
    write_run(results, run_dict("toy", "SGD", 0.1, 42, [.1, .5, .7], [.1, .5, .6]))
    evil = run_dict("toy", "SGD", 0.1, 43, [.1, .5, .7], [.1, .5, .6])
    evil["testproblem"] = "x/" + "../" * 12 + str(target).lstrip("/") + "/ESC_DEEP"
    folder = results / "toy" / "SGD" / "evil"
    folder.mkdir(parents=True)
    (folder / "random_seed__43__2026-01-01-00-00-00.json").write_text(json.dumps(evil))
    assert main([str(results), "--out", str(out), "--formats", "png"]) == 0
    assert not target.exists()
    assert all(_inside(p, out) for p in out.rglob("*"))
    printed = capsys.readouterr().out
    assert f"skipped file: {folder / 'random_seed__43__2026-01-01-00-00-00.json'}: testproblem" in printed


@given(problem=names, optimizer=names)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_property_analyzer_figures_stay_in_the_figures_folder(tmp_path, problem, optimizer):
    """A problem and optimizer name from a file either fail the result schema (the file is
    skipped) or give figure paths inside ``out/figures``, for every figure the report names."""
    from matplotlib.figure import Figure

    from deepobs.analyzer import report

    data = run_dict("toy", "SGD", 0.1, 42, [.1, .5, .7], [.1, .5, .6])
    data["testproblem"], data["optimizer_name"] = problem, optimizer
    if result_schema.problems(data):
        return  # skipped by the analyzer, with its reason
    out = tmp_path / "out"
    fig = Figure(figsize=(1, 1))
    for name in (f"performance_{problem}", f"sensitivity_lr_{problem}", f"tuning_rank_{problem}_{optimizer}",
                 f"sensitivity_2d_{problem}_{optimizer}"):
        written = []
        report._save(fig, out, name, ("png",), written)
        assert written and all(_inside(path, out / "figures") and path.is_file() for path in written)
    assert {p.parent for p in out.rglob("*") if p.is_file()} == {out / "figures"}


# ------------------------------------------------------------------ the tuner
@pytest.fixture(scope="module")
def text_optimizer():
    """An optimizer with a text hyperparameter (its values become folder names)."""
    import torch

    from deepobs.runners.optimizers import register_optimizer

    register_optimizer("safe_names_probe", torch.optim.SGD, {"lr": {"type": float}, "mode": {"type": str}},
                       name="SafeNamesProbe")
    return "safe_names_probe"


def _tuner_folder(tmp_path, optimizer, problem, mode, optimizer_name):
    """The run's result folder, or None when the tuner refuses the names (one line)."""
    from deepobs.tuner.runs import RunSpec

    try:
        spec = RunSpec(testproblem=problem, optimizer=optimizer, hyperparams={"lr": 0.1, "mode": mode},
                       random_seed=42, output_dir=str(tmp_path / "out"), optimizer_name=optimizer_name)
        return spec.result_folder()
    except ConfigurationError as error:
        assert "\n" not in str(error)
        return None


@given(mode=names, optimizer_name=st.one_of(st.none(), names), problem=st.sampled_from(
    ["quadratic_deep", "two_d_beale", "../quadratic_deep", "quadratic_deep/../../x"]))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_property_tuner_result_folders_stay_in_the_output_dir(tmp_path, text_optimizer, mode, optimizer_name,
                                                               problem):
    folder = _tuner_folder(tmp_path, text_optimizer, problem, mode, optimizer_name)
    if folder is not None:
        assert _inside(folder, tmp_path / "out") and folder.parent.parent.parent == tmp_path / "out"


@pytest.mark.parametrize("mode", ["../../../x", "a/b", "..", "a\nb", "x" * 300])
def test_tuner_never_climbs_out_with_a_text_hyperparameter(tmp_path, text_optimizer, mode):
    """Issue 19: ``mode: ["../../../x"]`` in a sweep; refused, or kept inside the output folder."""
    folder = _tuner_folder(tmp_path, text_optimizer, "quadratic_deep", mode, None)
    if folder is not None:
        assert _inside(folder, tmp_path / "out") and folder.parent.parent.parent == tmp_path / "out"
        assert "/" not in folder.name and folder.name not in (".", "..")


@given(name=names)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_property_tuner_state_folder_stays_in_the_output_dir(tmp_path, name):
    from deepobs.tuner.records import state_dir

    try:
        folder = state_dir(tmp_path / "out", name)
    except ConfigurationError:
        return
    assert _inside(folder, tmp_path / "out" / ".deepobs_tune") and folder.name == name
