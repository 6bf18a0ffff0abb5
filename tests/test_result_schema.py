"""The result-file schema (deepobs.result_schema) and what deepobs-plot does with files
that break it: skip them, name each with its reason, build the report from the rest."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analyzer_fixtures import V11_TEXT, run_dict, write_run
from deepobs import result_schema
from deepobs.analyzer.loading import load_results
from deepobs.errors import DataError

HUGE = int("9" * 400)
#: The malformed values of issue 19 item 5, and more of the same kind.
BAD_VALUES = ["sixty", ["0.1", "0.2", "0.3"], [[1.0], [2.0], [3.0]], HUGE, -1, True, None, {}, "lr=0.1",
              [1.0, None, "x"], 1e308, float("nan"), float("inf"), [], ["a"] * 3, {"lr": {"nested": 1}},
              "o$x_{$", "<script>", "é" * 200]
#: Whole-file texts that are no result: deep brackets, truncation, literals.
BAD_TEXTS = ["[" * 100_000, "{" * 50_000, '{"testproblem": "toy', "NaN", "Infinity", "[]", "", "\x00\xff",
             '{"num_epochs": ' + "9" * 5000 + "}", "[" * 900 + "]" * 900]


def _write(folder: Path, seed: int, data=None, text=None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"random_seed__{seed}__2026-01-01-00-00-00.json"
    path.write_text(text if text is not None else json.dumps(data, allow_nan=True))
    return path


def test_valid_files_have_no_problems():
    assert result_schema.problems(run_dict("toy", "SGD", 0.1, 42, [.1, .5, .7], [.1, .5, .6])) == []
    assert result_schema.problems(json.loads(V11_TEXT)) == []
    extras = run_dict("toy", "SGD", 0.1, 42, [.1, .5, .7], [.1, .5, .6],
                      extra={"learning_rates": [0.1, 0.1], "training_params": {"lr_sched_epochs": [1]},
                             "some_future_key": {"a": [1, {"b": None}]}})
    assert result_schema.problems(extras) == []


@pytest.mark.parametrize("key,value,expected", [
    ("num_epochs", "sixty", "num_epochs must be an integer"),
    ("train_losses", ["0.1", "0.2", "0.3"], "train_losses must be a list of numbers, item 0"),
    ("test_losses", [[1.0], [2.0], [3.0]], "test_losses must be a list of numbers"),
    ("optimizer_hyperparams", "lr=0.1", "optimizer_hyperparams must be a mapping"),
    ("batch_size", HUGE, "an integer of 400 digits"),
    ("testproblem", "../../x", "path separator"),
    ("optimizer_name", "a\nb", "control"),
    ("valid_accuracies", [0.1], "has 1 entries, expected num_epochs+1 = 3"),
])
def test_each_problem_is_one_line_naming_the_key(key, value, expected):
    data = run_dict("toy", "SGD", 0.1, 42, [.1, .5, .7], [.1, .5, .6])
    data[key] = value
    with pytest.raises(DataError) as error:
        result_schema.validate(data, "f.json")
    assert expected in str(error.value) and str(error.value).startswith("f.json: ") and "\n" not in str(error.value)


@pytest.mark.parametrize("text", BAD_TEXTS, ids=range(len(BAD_TEXTS)))
def test_unparseable_texts_are_a_data_error(tmp_path, text):
    path = _write(tmp_path, 1, text=text)
    with pytest.raises(DataError) as error:
        result_schema.load(path)
    assert str(error.value).startswith(str(path)) and "\n" not in str(error.value)


def test_tuner_reads_results_through_the_schema(tmp_path):
    from deepobs.tuner.runs import objective, read_output

    data = run_dict("toy", "SGD", 0.1, 42, [.1, .5, .7], [.1, .5, .6])
    data["valid_accuracies"][1] = None  # a null epoch (the objective used to raise TypeError)
    good = _write(tmp_path, 1, data)
    assert objective(read_output(good)) == pytest.approx(0.7)
    bad = _write(tmp_path, 2, {**run_dict("toy", "SGD", 0.1, 42, [.1, .5, .7], [.1, .5, .6]),
                               "valid_accuracies": ["x", "y", "z"]})
    with pytest.raises(ValueError, match="valid_accuracies must be a list of numbers"):
        read_output(bad)


# ------------------------------------------------------------------ mutated files
json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(min_value=-HUGE, max_value=HUGE),
              st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=8), st.sampled_from(BAD_VALUES)),
    lambda children: st.one_of(st.lists(children, max_size=4), st.dictionaries(st.text(max_size=5), children,
                                                                               max_size=3)),
    max_leaves=8)
KEYS = list(result_schema.KEYS)


@st.composite
def mutated_files(draw):
    """(data or None, text or None): a result dict with one to three keys changed or
    dropped, or a text that is no JSON object at all."""
    if draw(st.integers(0, 9)) == 0:
        return None, draw(st.sampled_from(BAD_TEXTS))
    data = run_dict("toy", draw(st.sampled_from(["SGD", "Adam"])), 0.1, draw(st.integers(0, 99)),
                    [.1, .5, .7], [.1, .5, .6])
    for _ in range(draw(st.integers(1, 3))):
        key = draw(st.sampled_from(KEYS + ["extra_key"]))
        if draw(st.booleans()) and key in data:
            del data[key]
        else:
            data[key] = draw(st.one_of(st.sampled_from(BAD_VALUES), json_values))
    return data, None


def _populate(root: Path, files) -> list:
    """One valid run, then the mutated files; returns the paths that must be skipped."""
    write_run(root, run_dict("toy", "SGD", 0.1, 42, [.1, .5, .7], [.1, .5, .6]))
    invalid = []
    for index, (data, text) in enumerate(files):
        path = _write(root / "toy" / "Mutated" / f"setting_{index}", index, data, text)
        if text is not None or result_schema.problems(data):
            invalid.append(path)
    return invalid


@pytest.mark.filterwarnings("ignore:skipped")
@given(files=st.lists(mutated_files(), min_size=1, max_size=6))
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_property_loading_skips_and_names_every_invalid_file(tmp_path_factory, files):
    root = tmp_path_factory.mktemp("results")
    invalid = _populate(root, files)
    runs = load_results(root, check_hashes=False)
    skipped = {Path(item.path) for item in runs.attrs["skipped"]}
    assert set(invalid) <= skipped
    assert all("\n" not in item.reason and item.reason for item in runs.attrs["skipped"])
    assert len(runs) + len(skipped) == len(files) + 1


ISSUE_MUTATIONS = [("train_losses", ["0.1", "0.2", "0.3"]), ("test_accuracies", ["a", "b", "c"]),
                   ("train_losses", [[1.0], [2.0], [3.0]]), ("num_epochs", "sixty"),
                   ("optimizer_hyperparams", "lr=0.1"), ("batch_size", HUGE), ("random_seed", HUGE),
                   ("testproblem", "x/../../../ESC")]


def test_issue_malformed_files_are_listed_and_the_report_is_built(tmp_path, capsys):
    """Issue 19 item 5: each of these raised a traceback and aborted the whole report."""
    from deepobs.analyzer.cli import main

    files = []
    for key, value in ISSUE_MUTATIONS:
        data = run_dict("toy", "SGD", 0.1, 43, [.1, .5, .7], [.1, .5, .6])
        data[key] = value
        files.append((data, None))
    files += [(None, "[" * 100_000), (None, '{"train_losses": [NaN, Infinity, -Infinity]}')]
    invalid = _populate(tmp_path / "results", files)
    assert len(invalid) == len(files)
    for seed in (1, 2):  # valid files whose names are broken TeX: figures draw text as it is
        write_run(tmp_path / "results", run_dict("p$^$q", "o$x_{$", 0.1, seed, [.1, .5, .7], [.1, .5, .6]))
    code = main([str(tmp_path / "results"), "--out", str(tmp_path / "report"), "--formats", "png"])
    captured = capsys.readouterr()
    assert code == 0 and (tmp_path / "report" / "report.html").is_file()
    assert (tmp_path / "report" / "figures" / "performance_p$^$q.png").is_file()
    for path in invalid:
        assert f"skipped file: {path}: " in captured.out
    assert "Traceback" not in captured.err + captured.out


@pytest.mark.slow
@given(files=st.lists(mutated_files(), min_size=1, max_size=5))
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_property_deepobs_plot_never_aborts_on_mutated_files(tmp_path_factory, files):
    """deepobs-plot's main on a folder of mutated files (plus one valid run): exit 0, a
    report, every invalid file named; no traceback whatever the content."""
    import contextlib
    import io

    from deepobs.analyzer.cli import main

    root = tmp_path_factory.mktemp("results")
    invalid = _populate(root, files)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(root), "--out", str(root.parent / "report"), "--formats", "png"])
    assert code == 0, err.getvalue()
    assert (root.parent / "report" / "report.html").is_file()
    for path in invalid:
        assert f"skipped file: {path}: " in out.getvalue()


def test_schema_knows_every_key_of_the_result_page():
    """Each key docs/results.md describes has a type in the schema (it stays in step with
    the runner: tests/test_docs.py checks that every key a run writes is on that page)."""
    import re

    page = (Path(__file__).resolve().parents[1] / "docs" / "results.md").read_text()
    table = page.split("## Every key", 1)[1].split("\n## ", 1)[0]
    keys = {key for line in table.splitlines() if line.startswith("| `")
            for key in re.findall(r"`([a-z_0-9]+)`", line.split("|")[1])}
    assert len(keys) > 30 and keys - set(result_schema.KEYS) == set()


def test_valid_but_hostile_values_do_not_abort_the_report(tmp_path, capsys):
    """Files the schema accepts but the analysis cannot average or draw: seeds of one
    setting with different num_epochs, a text or list learning rate (a custom optimizer's),
    losses near the float limit. Each is skipped or left out with a note."""
    from deepobs.analyzer.cli import main

    root = tmp_path / "results"
    write_run(root, run_dict("toy", "SGD", 0.1, 1, [.1, .5, .7], [.1, .5, .6]), setting="good")
    write_run(root, run_dict("toy", "SGD", 0.1, 1, [.1, .5, .7], [.1, .5, .6]), setting="mixed")
    write_run(root, run_dict("toy", "SGD", 0.1, 2, [.1, .5, .7, .8], [.1, .5, .6, .7], num_epochs=3),
              setting="mixed")
    for setting, lr in (("text_lr", "fast"), ("list_lr", [0.1, 0.2])):
        data = run_dict("toy", "SGD", 0.1, 3, [.1, .5, .7], [.1, .5, .6])
        data["optimizer_hyperparams"] = {"lr": lr}
        write_run(root, data, setting=setting)
    huge = run_dict("toy", "SGD", 0.1, 4, [1e308, -1e308, 1e308], [-5.0, 1e300, 7.0])
    huge["train_losses"] = [1e308, 1e308, -1e308]
    write_run(root, huge, setting="huge")
    code = main([str(root), "--out", str(tmp_path / "report"), "--formats", "png"])
    captured = capsys.readouterr()
    assert code == 0 and (tmp_path / "report" / "report.html").is_file(), captured.err
    # One folder, two num_epochs: settings are grouped by content, so these are two settings.
    assert "different num_epochs" not in captured.out


@pytest.mark.parametrize("protocol", ["1.2", "1.1"])
def test_what_the_runner_writes_is_valid(protocol):
    import torch

    from deepobs import StandardRunner

    runner = StandardRunner(torch.optim.SGD, {"lr": {"type": float}, "momentum": {"type": float}})
    output = runner.run("quadratic_deep", {"lr": 0.01, "momentum": 0.9}, num_epochs=1, protocol=protocol,
                        no_logs=True, quiet=True, device="cpu")
    output = json.loads(json.dumps(output))  # as a reader sees it
    assert result_schema.problems(output) == []
    assert set(output) - set(result_schema.KEYS) == set()  # every key has a type


def test_a_fifo_or_folder_named_like_a_result_is_skipped_without_hanging(tmp_path):
    import os

    root = tmp_path / "results"
    write_run(root, run_dict("toy", "SGD", 0.1, 42, [.1, .5, .7], [.1, .5, .6]))
    folder = root / "toy" / "SGD" / "odd"
    folder.mkdir(parents=True)
    os.mkfifo(folder / "random_seed__1__2026-01-01-00-00-00.json")  # reading it would block forever
    (folder / "random_seed__2__2026-01-01-00-00-00.json").symlink_to("/dev/zero")
    with pytest.warns(UserWarning, match="skipped 2 invalid"):
        runs = load_results(root)
    assert len(runs) == 1
    assert sorted(item.reason for item in runs.attrs["skipped"]) == ["not a regular file"] * 2
