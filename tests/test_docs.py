"""The documentation is tested like code: every shell and Python code block of the
pages in docs/ runs, in order, in a fresh folder, and must succeed.

Conventions of the pages (MyST Markdown):

* ```` ```bash ```` and ```` ```python ```` blocks are run; other languages (yaml, json,
  text) are not; a block whose first line is ``# file: NAME`` (any language) is
  written to NAME instead, for later blocks to use (sweep files, modules, scripts);
* a block that cannot run here (downloads, SLURM, ``make``) is written as
  ```` ```{code-block} bash ```` with the option ``:class: no-test``; that set is kept
  small and listed in :data:`NO_TEST_EXPECTED`;
* tiny settings: before running, :data:`TINY` rewrites epochs, grids and seeds (e.g.
  ``-N 100`` -> ``-N 1``); nothing else is changed.

Shell blocks of one page run as one bash script (``set -e``), Python blocks as their
own interpreter, with the project's ``bin`` folder first on PATH and ``examples/``
linked into the folder. Running the pages takes minutes, so those tests are marked
slow; the Sphinx build itself is ``make docs`` (warnings are errors).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
#: Pages whose blocks are not run here, and why.
EXCLUDED_PAGES = {
    "api.md": "autodoc directives only",
    "changelog.md": "includes CHANGELOG.md",
    "performance.md": "benchmark commands of the performance issue (minutes each, GPU figures)",
}
RUN_LANGUAGES = {"bash": "bash", "shell": "bash", "sh": "bash", "python": "python"}
#: Tiny settings: (pattern, replacement) applied to every block that runs.
TINY = [
    (r"(?<![\w-])(-N|--num_epochs) \d+", r"\1 1"),
    (r"\bnum_epochs=\d+", "num_epochs=1"),
    (r"^(\s*num_epochs:) \d+", r"\1 1"),
    (r"--seeds( \d+)+", "--seeds 42"),
    (r"--grid_points \d+", "--grid_points 2"),
    (r"--rerun_seeds \d+", "--rerun_seeds 1"),
    (r"(log_grid: \[[^,\]]+, [^,\]]+,) \d+\]", r"\1 2]"),
    (r"range\(42, 52\)", "range(42, 43)"),
    (r"n_runs=\d+", "n_runs=1"),
]
#: The blocks marked no-test, per page (a new one must be added here on purpose).
NO_TEST_EXPECTED = {
    "quickstart.md": 1,       # git clone, make run, make test, source .venv/bin/activate
    "benchmarking.md": 2,     # the full small-set sweep (days); SLURM
    "datasets.md": 1,         # downloads
    "adding_problems.md": 1,  # pytest inside the repository
    "migration.md": 1,        # needs the CIFAR-10 download
    "baselines.md": 2,        # regenerating the baselines (hours); a rerun on Fashion-MNIST (real data)
    "testproblems.md": 1,     # the ResNet-18 recipe: 100 epochs on CIFAR-100 (GPU hours)
    "optimizers.md": 1,       # scripts/optimizer_matrix.py (an hour on two cores)
}
FENCE = re.compile(r"^(`{3,})\s*(\{code-block\}\s*)?([\w-]*)\s*$")


@dataclass
class Block:
    page: str
    line: int
    language: str
    options: dict
    text: str

    @property
    def runs(self) -> bool:
        return self.language in RUN_LANGUAGES and "no-test" not in self.options.get("class", "")

    @property
    def file_name(self):
        first = self.text.splitlines()[0] if self.text else ""
        return first[len("# file:"):].strip() if first.startswith("# file:") else None


def parse_blocks(page: Path) -> list:
    """The fenced code blocks of a MyST page, with their options (``:class: no-test``)."""
    blocks, lines, index = [], page.read_text().splitlines(), 0
    while index < len(lines):
        match = FENCE.match(lines[index])
        if not match or not match.group(3) and not match.group(2):
            index += 1
            continue
        fence, language, start = match.group(1), match.group(3), index + 1
        body, options, index = [], {}, index + 1
        while index < len(lines) and lines[index].strip() != fence:
            option = re.match(r"^:(\w[\w-]*):\s*(.*)$", lines[index])
            if match.group(2) and option and not body:
                options[option.group(1)] = option.group(2)
            else:
                body.append(lines[index])
            index += 1
        index += 1
        while body and not body[0].strip():
            body.pop(0)
        blocks.append(Block(page.name, start, language, options, "\n".join(body) + "\n"))
    return blocks


def tiny(text: str) -> str:
    for pattern, replacement in TINY:
        text = re.sub(pattern, replacement, text, flags=re.MULTILINE)
    return text


def pages() -> list:
    return sorted(path for path in DOCS.glob("*.md") if path.name not in EXCLUDED_PAGES)


def _environment() -> dict:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["MPLBACKEND"] = "Agg"
    env["PYTHONPATH"] = str(ROOT)  # the examples' own imports, like a checkout
    return env


def run_page(page: Path, folder: Path) -> None:
    """Run the blocks of ``page`` in order in ``folder``; fail naming the block."""
    (folder / "examples").symlink_to(ROOT / "examples")
    script = ["set -euo pipefail"]
    for number, block in enumerate(parse_blocks(page)):
        text = tiny(block.text)
        if block.file_name:
            (folder / block.file_name).write_text(text)
            continue
        if not block.runs:
            continue
        script.append(f"echo '>>> {page.name} line {block.line}'")
        if block.language == "python":
            name = f"block_{number}.py"
            (folder / name).write_text(text)
            script.append(f"python {name}")
        else:
            script.append(text)
    done = subprocess.run(["bash", "-c", "\n".join(script)], cwd=folder, env=_environment(),
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, f"{page.name}: a block failed:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"


def test_pages_exist_and_are_in_the_toctree():
    index = (DOCS / "index.md").read_text()
    for page in DOCS.glob("*.md"):
        if page.name != "index.md":
            assert f"\n{page.stem}\n" in index, f"{page.name} is not in the toctree of index.md"


def test_every_block_is_runnable_or_marked():
    counts = {}
    for page in pages():
        for block in parse_blocks(page):
            if block.language in RUN_LANGUAGES and not block.runs:
                counts[page.name] = counts.get(page.name, 0) + 1
    assert counts == NO_TEST_EXPECTED


def test_tiny_settings_rewrite_only_sizes():
    assert tiny("deepobs-run quadratic_deep --optimizer sgd --lr 0.01 -N 100") == \
        "deepobs-run quadratic_deep --optimizer sgd --lr 0.01 -N 1"
    assert tiny("num_epochs: 100\nbatch_size: 128") == "num_epochs: 1\nbatch_size: 128"
    assert tiny("lr: {log_grid: [1.0e-5, 100.0, 36]}") == "lr: {log_grid: [1.0e-5, 100.0, 2]}"


@pytest.mark.slow  # minutes in all (a deepobs-run per command); CI: pytest -m slow tests/test_docs.py
@pytest.mark.parametrize("page", [pytest.param(page, id=page.name) for page in pages()])
def test_page_blocks_run(page, tmp_path):
    if not any(block.runs for block in parse_blocks(page)):
        pytest.skip(f"{page.name} has no runnable block")
    run_page(page, tmp_path)


def test_problem_table_matches_the_registry():
    """The defaults in docs/testproblems.md are the problems' own (class attributes)."""
    import deepobs

    rows = {}
    for line in (DOCS / "testproblems.md").read_text().splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 8 and cells[0].startswith("`"):
            rows[cells[0].split("`")[1]] = cells
    assert sorted(rows) == deepobs.list_problems()
    for name, cells in rows.items():
        problem = deepobs.get_problem_class(name)
        assert int(cells[5]) == problem.default_batch_size, name
        assert int(cells[6]) == problem.default_num_epochs, name
        weight_decay = None if cells[7] == "-" else float(cells[7])
        assert weight_decay == problem.default_weight_decay, name


def test_every_command_help_has_an_example_line():
    """``--help`` of every console script ends with a line starting ``example: <command>``."""
    from deepobs.analyzer.cli import build_parser as plot_parser
    from deepobs.datasets.prepare import build_parser as prepare_parser
    from deepobs.runners.cli import build_run_parser
    from deepobs.tuner.cli import build_parser as tune_parser

    parsers = {"deepobs-run": build_run_parser({}), "deepobs-plot": plot_parser(),
               "deepobs-tune": tune_parser(), "deepobs-prepare-data": prepare_parser()}
    setup = (ROOT / "setup.py").read_text()
    for command, parser in parsers.items():
        assert f'"{command}=' in setup, command
        assert (parser.epilog or "").startswith(f"example: {command} "), command


def test_result_format_page_names_every_key():
    """Every key of a real result (quadratic_deep, protocols 1.2 and 1.1) is in docs/results.md."""
    import torch

    from deepobs import StandardRunner

    page = (DOCS / "results.md").read_text()
    runner = StandardRunner(torch.optim.SGD, {"lr": {"type": float}})
    for protocol in ("1.2", "1.1"):
        output = runner.run("quadratic_deep", {"lr": 0.01}, num_epochs=1, protocol=protocol,
                            no_logs=True, quiet=True, device="cpu")
        missing = [key for key in output if f"`{key}`" not in page]
        assert not missing, f"docs/results.md does not describe {missing}"
