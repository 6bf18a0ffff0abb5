"""Sweep files: loading, one-line errors with line numbers, deepobs-tune --dry-run / --commands."""

from __future__ import annotations

import json
import shlex
import textwrap

import pytest

from deepobs.errors import ConfigurationError
from deepobs.tuner import load_sweep
from deepobs.tuner.cli import main
from deepobs.tuner.spaces import LogUniform

SWEEP = textwrap.dedent("""\
    name: demo
    output_dir: {out}
    problems: [quadratic_deep, {{name: two_d_beale, num_epochs: 2}}]
    optimizers:
      sgd:
        lr: [1e-3, 0.01, 1]
      momentum:
        lr: {{log_grid: [1.0e-3, 1.0e-1, 3]}}
        momentum: 0.9
    seeds: [42]
    num_epochs: 1
    fake_data: 128
    batch_size: 32
    workers: 2
    """)


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny runs are fastest on one thread, and the test machine's cores are shared."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _write(tmp_path, text, name="sweep.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_load_sweep_reads_problems_optimizers_and_options(tmp_path):
    sweep = load_sweep(_write(tmp_path, SWEEP.format(out=tmp_path / "res")))
    assert sweep.name == "demo" and sweep.method == "grid" and sweep.workers == 2
    assert [p.name for p in sweep.problems] == ["quadratic_deep", "two_d_beale"]
    assert sweep.problems[1].num_epochs == 2
    # YAML reads 1e-3 (no dot) as text and 1 as an int: both become the float lr.
    assert sweep.searches["sgd"].space["lr"] == [0.001, 0.01, 1.0]
    assert all(isinstance(v, float) for v in sweep.searches["sgd"].space["lr"])
    assert sweep.searches["momentum"].space["lr"] == pytest.approx([1e-3, 1e-2, 1e-1])
    runs = sweep.tuning_runs()
    assert len(runs) == 2 * (3 + 3)
    assert {run.num_epochs for run in runs if run.testproblem == "two_d_beale"} == {2}
    assert {run.num_epochs for run in runs if run.testproblem == "quadratic_deep"} == {1}
    assert sweep.rerun_seeds == ()


def test_load_sweep_accepts_text_json_and_distributions():
    text = json.dumps({"problems": ["two_d_branin"], "optimizers": {"adam": {"lr": {"log_uniform": [1e-4, 1e-1]}}},
                       "search": "random", "budget": 5, "rerun_best": True, "search_seed": 3})
    sweep = load_sweep(text)
    assert isinstance(sweep.searches["adam"].space["lr"], LogUniform)
    assert len(sweep.tuning_runs()) == 5
    assert sweep.rerun_seeds == tuple(range(43, 52))
    # tab-indented JSON is not YAML but still a sweep
    assert load_sweep(json.dumps(json.loads(text), indent="\t")).searches["adam"].budget == 5
    scipy_sweep = load_sweep("problems: [two_d_branin]\nsearch: random\nbudget: 2\n"
                             "optimizers: {sgd: {lr: {scipy: lognorm, args: [0.5], scale: 0.01}}}\n")
    assert all(run.hyperparams["lr"] > 0 for run in scipy_sweep.tuning_runs())


@pytest.mark.parametrize("text, expected", [
    ("problems: [quadratic_deep]\noptimizers: {sgd: {lr: [0.1]}}\nbugdet: 3\n",
     r"^sweep:3: bugdet: unknown key; did you mean: budget\?"),
    ("problems: [quadratic_deep]\noptimizers:\n  sgd:\n    lr: [0.1, fast]\n",
     r"^sweep:4: optimizers\.sgd\.lr\[1\]: must be a float, got 'fast'"),
    ("problems: [quadratic_dep]\noptimizers: {sgd: {lr: [0.1]}}\n",
     r"^sweep:1: problems\[0\]\.name: unknown problem 'quadratic_dep'"),
    ("problems: [quadratic_deep]\noptimizers:\n  sgd:\n    learning_rate: [0.1]\n",
     r"^sweep:4: optimizers\.sgd\.learning_rate: unknown hyperparameter of sgd"),
    ("problems: [quadratic_deep]\noptimizers: {nosuchopt: {lr: [0.1]}}\n",
     r"^sweep:2: optimizers\.nosuchopt: unknown optimizer"),
    ("problems: [quadratic_deep]\noptimizers: {sgd: {lr: [0.1]}}\nsearch: random\n",
     r"search: random search needs a budget"),
    ("problems: [quadratic_deep]\noptimizers: {sgd: {lr: {log_uniform: [1, 0.1]}}}\n",
     r"^sweep:2: optimizers\.sgd\.lr\.log_uniform: log_uniform needs low < high"),
    ("problems: [quadratic_deep]\noptimizers: {sgd: {lr: {log_uniform: [0.1, 1]}}}\n",
     r"^sweep:2: optimizers\.sgd: grid search needs a list of values for 'lr'"),
    ("problems: [quadratic_deep]\noptimizers: {sgd: {lr: [0.1]}}\nworkers: 0\n",
     r"^sweep:3: workers: must be an integer >= 1, got 0"),
    ("problems: [quadratic_deep]\noptimizers: {sgd: {lr: [0.1]}}\nprotocol: 1.1\n",
     r"protocol: sweeps select settings on the validation split"),
    ("problems: [quadratic_deep]\noptimizers: {sgd: {lr: [0.1]}}\nslurm: {partiton: gpu}\n",
     r"^sweep:3: slurm\.partiton: unknown SLURM setting"),
    ("problems: [quadratic_deep]\nproblems: [two_d_beale]\noptimizers: {sgd: {lr: [0.1]}}\n",
     r"^sweep:2: problems: duplicate key"),
    ("problems: [quadratic_deep\noptimizers: {sgd: {lr: [0.1]}}\n", r"^sweep:\d+: not valid YAML or JSON"),
    ("- a\n- b\n", r"^sweep:1: \(top level\): a sweep is a mapping"),
    ("", r"^sweep: the sweep is empty"),
    ("a: &x [*x]\n", r"nested too deeply"),
])
def test_bad_sweeps_give_one_line_errors(text, expected):
    with pytest.raises(ConfigurationError, match=expected) as info:
        load_sweep(text)
    assert "\n" not in str(info.value)


def test_missing_file_is_a_configuration_error(tmp_path):
    with pytest.raises(ConfigurationError, match="does not exist"):
        load_sweep(str(tmp_path / "nope.yaml"))


def test_cli_rejects_a_bad_sweep_with_exit_status_2_before_any_run(tmp_path, capsys):
    path = _write(tmp_path, SWEEP.format(out=tmp_path / "res") + "mdoe: best\n")
    assert main([str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "sweep.yaml:15: mdoe: unknown key; did you mean: mode?" in err
    assert not (tmp_path / "res").exists()


def test_dry_run_lists_runs_and_commands_are_deepobs_run_lines(tmp_path, capsys):
    path = _write(tmp_path, SWEEP.format(out=tmp_path / "res"))
    assert main([str(path), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "12 tuning runs, 0 already done" in out and "two_d_beale Momentum lr=1.e-03" in out
    commands = tmp_path / "jobs.txt"
    assert main([str(path), "--commands", str(commands)]) == 0
    lines = commands.read_text().splitlines()
    assert len(lines) == 12 and all(line.startswith("deepobs-run ") for line in lines)
    # One of them, run through deepobs-run, lands where the sweep looks for it.
    from deepobs.runners.cli import main as run_main

    assert run_main(shlex.split(lines[-1])[1:]) == 0
    assert main([str(path), "--dry-run"]) == 0
    assert "12 tuning runs, 1 already done" in capsys.readouterr().out


def test_bayesian_sweep_cannot_list_commands(tmp_path, capsys):
    path = _write(tmp_path, "problems: [quadratic_deep]\nsearch: bayesian\nbudget: 3\n"
                            "optimizers: {sgd: {lr: {log_uniform: [0.001, 0.1]}}}\n")
    assert main([str(path), "--commands"]) == 2
    assert "cannot be listed in advance" in capsys.readouterr().err
    assert main([str(path), "--dry-run"]) == 0
    assert "3 settings proposed by TPE" in capsys.readouterr().out


def test_bayesian_sweep_runs_end_to_end_and_writes_a_summary(tmp_path, capsys):
    path = _write(tmp_path, f"name: tpe\noutput_dir: {tmp_path / 'res'}\nproblems: [two_d_branin]\n"
                            "search: bayesian\nbudget: 4\nstartup_trials: 2\nparallel_trials: 2\n"
                            "optimizers: {sgd: {lr: {log_uniform: [0.001, 0.1]}}}\n"
                            "num_epochs: 1\nfake_data: 128\nrerun_best: [43]\n")
    assert main([str(path), "--executor", "serial", "-q"]) == 0
    summary = json.loads((tmp_path / "res" / ".deepobs_tune" / "tpe" / "summary.json").read_text())
    (study,) = summary["studies"]
    assert study["method"] == "bayesian" and study["metric"] == "valid_losses" and len(study["trials"]) == 4
    best = max(study["trials"], key=lambda trial: trial["score"])
    assert study["best_setting"] == best["setting"] and sorted(study["reruns"]["files"]) == ["42", "43"]
    assert len(list((tmp_path / "res").rglob("random_seed__*.json"))) == 5
    assert "two_d_branin SGD: best lr=" in capsys.readouterr().out


# --------------------------------------------------------------------------- checked before anything runs
def test_seeds_beyond_numpys_limit_are_refused_when_the_sweep_is_loaded(tmp_path):
    for seeds in ("[1.0e+23]", "[42, 4294967296]", "1.0e+23"):
        text = f"problems: [quadratic_deep]\noptimizers: {{sgd: {{lr: 0.1}}}}\nseeds: {seeds}\n"
        with pytest.raises(ConfigurationError, match=r"seeds.*at most 4294967295"):
            load_sweep(text)
    with pytest.raises(ConfigurationError, match=r"sweep:1: seeds\[0\]: "):  # YAML reads 1e23 as text
        load_sweep('{"problems": ["quadratic_deep"], "optimizers": {"sgd": {"lr": 0.1}}, "seeds": [1e23]}')
    with pytest.raises(ConfigurationError, match=r"rerun_best\[0\].*at most"):
        load_sweep("problems: [quadratic_deep]\noptimizers: {sgd: {lr: 0.1}}\nrerun_best: [1.0e+23]\n")
    assert load_sweep("problems: [quadratic_deep]\noptimizers: {sgd: {lr: 0.1}}\nseeds: [4294967295]\n").seeds == (
        4294967295,)


def test_text_hyperparameters_follow_the_runner_rule_at_load(tmp_path, monkeypatch):
    """Text values the runner refuses (control characters) are refused when the sweep loads;
    text that is no file name (``../../../x``) is a valid value: its setting folder gets a
    hashed name inside the output folder (docs/results.md)."""
    (tmp_path / "textopt.py").write_text(
        "import torch\n"
        "def build(params, lr=0.1, mode='plain'):\n"
        "    return torch.optim.SGD(params, lr=lr)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    for value in ('"tab\\there"', '[ok, "new\\nline"]'):
        text = f"problems: [quadratic_deep]\noptimizers:\n  textopt.build: {{mode: {value}}}\n"
        with pytest.raises(ConfigurationError, match=r"sweep:3: optimizers\.textopt\.build\.mode.*control"):
            load_sweep(text)
    sweep = load_sweep("problems: [quadratic_deep]\noptimizers:\n  textopt.build: {mode: [plain, ../../../x]}\n"
                       f"output_dir: {tmp_path / 'out'}\n")
    runs = sweep.tuning_runs()
    assert [spec.hyperparams["mode"] for spec in runs] == ["plain", "../../../x"]
    folder = runs[1].result_folder()
    assert (tmp_path / "out") in folder.parents and "__cfg__" in folder.name


BIG_GRID = """\
problems: [quadratic_deep]
optimizers:
  momentum: {{lr: {{log_grid: [1.0e-5, 1.0, {points}]}}, momentum: {{log_grid: [0.1, 0.99, {points}]}}}}
output_dir: {out}
"""


def test_a_sweep_of_more_than_10000_runs_needs_yes(tmp_path, capsys):
    from deepobs.tuner import cli

    sweep = _write(tmp_path, BIG_GRID.format(points=101, out=tmp_path / "res"))  # 10,201 runs
    assert main([str(sweep), "--dry-run"]) == 2
    error = capsys.readouterr().err
    assert "10,201 runs, more than 10,000" in error and "--yes" in error and error.count("\n") == 1
    assert main([str(sweep), "--commands", str(tmp_path / "jobs.txt")]) == 2
    assert not (tmp_path / "jobs.txt").exists() and not (tmp_path / "res").exists()
    cli._check_size(load_sweep(sweep), "local", 1, yes=True)  # --yes: accepted
    small = load_sweep(_write(tmp_path, BIG_GRID.format(points=100, out=tmp_path / "res"), "small.yaml"))
    assert cli.planned_runs(small) == cli.MAX_RUNS_WITHOUT_YES  # 10,000: no question asked
    cli._check_size(small, "local", cli.MAX_WORKERS_WITHOUT_YES, yes=False)


def test_too_many_local_workers_need_yes_and_huge_grids_are_refused(tmp_path, capsys):
    sweep = _write(tmp_path, f"problems: [quadratic_deep]\noptimizers: {{sgd: {{lr: [0.1]}}}}\n"
                             f"output_dir: {tmp_path / 'res'}\nworkers: 100000\n")
    assert main([str(sweep)]) == 2
    error = capsys.readouterr().err
    assert "100,000 local workers" in error and "--yes" in error and error.count("\n") == 1
    assert main([str(sweep), "--workers", "257"]) == 2
    assert "257 local workers" in capsys.readouterr().err
    assert not (tmp_path / "res").exists()
    # 1001 x 1001 grid points: more than one search may hold, refused while loading
    with pytest.raises(ConfigurationError, match=r"1,002,001 points, more than the 1,000,000"):
        load_sweep(BIG_GRID.format(points=1001, out=tmp_path / "res"))
    with pytest.raises(ConfigurationError, match=r"budget must be at most 1,000,000"):
        load_sweep("problems: [quadratic_deep]\noptimizers: {sgd: {lr: {log_uniform: [0.001, 1]}}}\n"
                   "search: random\nbudget: 1000000000\n")


def test_a_sweep_runs_every_optimizer_under_its_lr_schedule(tmp_path):
    sweep = load_sweep("problems: [quadratic_deep]\noptimizers: {sgd: {lr: [0.1]}}\n"
                       "lr_schedule: {name: warmup_cosine, warmup_epochs: 0.5}\nnum_epochs: 2\n")
    assert sweep.run_options["lr_schedule"] == "warmup_cosine"
    assert sweep.run_options["schedule_params"] == {"warmup_epochs": 0.5}
    spec = sweep.tuning_runs()[0]
    assert spec.lr_schedule == "warmup_cosine" and "--lr_schedule" in spec.to_argv()
    assert load_sweep("problems: [quadratic_deep]\noptimizers: {sgd: {lr: [0.1]}}\nlr_schedule: cosine\n"
                      ).run_options == {"lr_schedule": "cosine", "protocol": "1.2"}
    for text, expected in (("lr_schedule: cosin", r"^sweep:3: lr_schedule: must be one of constant, step"),
                           ("lr_schedule: {name: cosine, warmup_epochs: 1}",
                            r"^sweep:3: lr_schedule: lr schedule 'cosine' takes no parameter warmup_epochs"),
                           ("lr_schedule: {name: wsd, decay_fraction: lots}",
                            r"decay_fraction of lr schedule 'wsd' must be a number")):
        with pytest.raises(ConfigurationError, match=expected):
            load_sweep("problems: [quadratic_deep]\noptimizers: {sgd: {lr: [0.1]}}\n" + text + "\n")
