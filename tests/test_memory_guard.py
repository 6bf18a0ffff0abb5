"""The memory ceiling of deepobs-run on the CPU: an allocation larger than the machine
can give fails in the process (a one-line error) instead of the process being killed."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from deepobs.errors import ConfigurationError
from deepobs.runners import memory_guard
from deepobs.runners.memory_guard import LIMIT_ENV, ceiling_bytes, limit_cpu_memory

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the ceiling is Linux-only")


def test_the_ceiling_is_what_is_mapped_plus_what_is_available(monkeypatch):
    monkeypatch.delenv(LIMIT_ENV, raising=False)
    monkeypatch.setattr(memory_guard, "_meminfo_bytes", lambda *keys: 10 * 2 ** 30)
    monkeypatch.setattr(memory_guard, "_mapped_bytes", lambda: 3 * 2 ** 30)
    assert ceiling_bytes() == 13 * 2 ** 30
    monkeypatch.setenv(LIMIT_ENV, "1.5")
    assert ceiling_bytes() == 3 * 2 ** 30 + int(1.5 * 2 ** 30)
    monkeypatch.setenv(LIMIT_ENV, "0")
    assert ceiling_bytes() is None
    for bad in ("lots", "-1", "nan"):
        monkeypatch.setenv(LIMIT_ENV, bad)
        with pytest.raises(ConfigurationError, match=f"{LIMIT_ENV}='{bad}': expected a number of GiB"):
            ceiling_bytes()


def test_gpu_runs_get_no_ceiling(monkeypatch):
    monkeypatch.setenv(LIMIT_ENV, "1")
    assert limit_cpu_memory("cuda") is None and limit_cpu_memory("cuda:1") is None


def _run(code: str, **env) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1", **env})


def test_an_allocation_past_the_ceiling_fails_in_the_process():
    done = _run("import torch\nfrom deepobs.runners.memory_guard import limit_cpu_memory\n"
                "print(limit_cpu_memory('cpu'))\n"
                "try:\n    torch.empty(2 ** 40, dtype=torch.uint8).fill_(1)\n"
                "except RuntimeError as error:\n    print('refused', 'allocate' in str(error))\n",
                **{LIMIT_ENV: "8"})
    assert done.returncode == 0, done.stderr
    ceiling, refused = done.stdout.split("\n")[:2]
    assert 8 * 2 ** 30 < int(ceiling) < 2 ** 40 and refused == "refused True"


def test_deepobs_run_as_a_command_stops_with_one_line_when_memory_runs_out(tmp_path):
    """An optimizer whose step asks for 16 GiB under a 4 GiB allowance: one line naming the
    allocation, no traceback (the path Kron's 12 GB preconditioner takes on cifar10_3c3d)."""
    (tmp_path / "hog.py").write_text(
        "import torch\n\nclass Hog(torch.optim.SGD):\n"
        "    def step(self, closure=None):\n"
        "        self.buffer = torch.ones(2 ** 34, dtype=torch.uint8)\n"
        "        return super().step(closure)\n")
    done = subprocess.run(
        [sys.executable, "-m", "deepobs.run", "quadratic_deep", "--optimizer", "hog.Hog", "--lr", "0.1",
         "-N", "1", "--no_logs", "--device", "cpu", "--output_dir", str(tmp_path)],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
        env={**os.environ, "OMP_NUM_THREADS": "1", LIMIT_ENV: "4"})
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert "Hog failed in its first step" in lines[0] and "can't allocate memory" in lines[0], lines[0]
