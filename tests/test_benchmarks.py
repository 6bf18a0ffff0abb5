"""The end-to-end benchmark runs and reports every figure the issue asks for (a tiny
workload: this checks the script, not the speed; speed is measured in benchmarks/)."""

import json
import sys
from pathlib import Path

import pytest
import torch

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
#: benchmarks/ modules imported by top-level name; removed afterwards.
MODULES = ("run", "epochs", "report", "workloads", "common_way", "measure")


@pytest.fixture
def benchmark_run(monkeypatch):
    """benchmarks/run.py as a module; the thread count and sys.modules restored after."""
    threads = torch.get_num_threads()
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import run
    yield run
    torch.set_num_threads(threads)
    for name in MODULES:
        sys.modules.pop(name, None)


def test_quick_benchmark_writes_the_table_and_the_figures(tmp_path, benchmark_run):
    run = benchmark_run

    arguments = ["--quick", "--quick_steps", "2", "--problems", "quadratic_deep", "--repeats", "1",
                 "--options", "some", "--threads", "1", "--out", str(tmp_path), "--tag", "tiny"]
    assert run.main(arguments) == 0
    figures = json.loads((tmp_path / "tiny.json").read_text())
    entry = figures["problems"]["quadratic_deep"]
    assert entry["batches"]["train"] == 2
    for key in ("ours_over_floor_train", "ours_over_floor_epoch", "common_over_ours_epoch",
                "common_over_floor_epoch", "common_over_ours_eval"):
        assert entry[key] > 0, key
    for variant in ("ours", "common", "floor"):
        parts = entry["variants"][variant]["parts"]
        assert set(parts) == {"train", "train_eval", "valid", "test"} and all(v > 0 for v in parts.values())
        assert entry["variants"][variant]["peak_bytes"] > 0
    assert "eval batch 128 (default 1024)" in entry["options"] and "amp bf16" in entry["options"]
    assert figures["threads"] == 1 and "ours/floor (train) <= 1.15" in figures["targets"]
    markdown = (tmp_path / "tiny.md").read_text()
    assert "| quadratic_deep | 2 / 2 / 2 / 2 | 1024 (train 128) |" in markdown
    assert "Targets: ours/floor (train) <= 1.15:" in markdown


def test_moe_speed_prints_dense_and_sparse_times_and_their_ratio(monkeypatch, capsys):
    """benchmarks/moe_speed.py on a tiny layer (checks the script, not the speed)."""
    threads = torch.get_num_threads()
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import moe_speed
    try:
        results = moe_speed.main(["--experts", "2", "8", "--batch", "2", "--length", "5",
                                  "--d_model", "4", "--repeats", "1"])
    finally:
        torch.set_num_threads(threads)
        sys.modules.pop("moe_speed", None)
    assert sorted(results) == [2, 8]
    for times in results.values():
        assert times["dense"] > 0 and times["sparse"] > 0
        assert times["ratio"] == pytest.approx(times["dense"] / times["sparse"])
    printed = capsys.readouterr().out
    assert "batch 2 x length 5 tokens, d 4, hidden 8, top-1, capacity factor 1.25" in printed
    assert "target dense/sparse >= 4 at 8 experts:" in printed


def test_resnet18_epoch_is_a_gpu_line_not_run_on_a_cpu_by_default(benchmark_run):
    import workloads

    assert "cifar100_resnet18" not in workloads.default_problems("cpu")
    assert "cifar100_resnet18" in workloads.default_problems("cuda")
    assert set(workloads.default_problems("cuda")) == set(workloads.PROBLEMS)
    assert workloads.FAKE_SIZES["cifar100_resnet18"] == 50_000  # the real 40k/10k/10k splits
