"""Threads of a run: chosen for the machine once per process, explicit choices kept."""

import torch

from deepobs.runners import threads


def fresh(monkeypatch, at_import=None):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setitem(threads._TORCH_THREADS, "chosen", False)
    monkeypatch.setitem(threads._TORCH_THREADS, "at_import",
                        torch.get_num_threads() if at_import is None else at_import)


def test_explicit_choices_win(monkeypatch):
    fresh(monkeypatch)
    assert threads.choose_threads(3) == (3, None)
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert threads.choose_threads() == (2, None)


def test_a_count_the_script_set_is_kept(monkeypatch):
    fresh(monkeypatch, at_import=torch.get_num_threads() + 1)  # the script changed it since
    assert threads.choose_threads() == (torch.get_num_threads(), None)


def test_chosen_by_load_once_per_process(monkeypatch):
    fresh(monkeypatch)
    monkeypatch.setattr(threads, "granted_cores", lambda: (4, "CPU affinity"))
    monkeypatch.setattr(threads.os, "cpu_count", lambda: 4)
    monkeypatch.setattr(threads, "busy_cores", lambda: 3.2)
    count, note = threads.choose_threads()
    assert count == 1 and "other work keeps 3 of the 4 cores" in note
    monkeypatch.setattr(threads, "busy_cores", lambda: 0.2)
    assert threads.choose_threads() == (4, None)
    before = torch.get_num_threads()
    try:
        threads.apply_threads()
        assert threads.choose_threads() == (torch.get_num_threads(), None)  # later runs keep it
    finally:
        torch.set_num_threads(before)


def test_granted_cores_follow_slurm(monkeypatch):
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "1")
    assert threads.granted_cores() == (1, "SLURM_CPUS_PER_TASK")
