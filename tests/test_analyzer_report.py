"""deepobs-plot: figures, tables and a self-contained report.html that renders in a real
headless browser (Debian's chromium) with no console error and every image decoded."""

import re
import shutil
import subprocess
import tempfile
import warnings
from pathlib import Path

import pytest

from analyzer_fixtures import build_tree
from deepobs.analyzer.cli import main
from deepobs.analyzer.report import build_report

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--enable-logging=stderr", "--v=0", "--virtual-time-budget=10000", "--dump-dom"]
# Appended to a copy of the page for the test only: the report itself has no script.
# Every image decoded, and shown whole: not wider than the page (nothing cut off at the right).
IMAGE_CHECK = ("<script>window.addEventListener('load', () => { const images = [...document.images];"
               " const broken = images.filter(i => !(i.complete && i.naturalWidth > 0));"
               " const page = document.documentElement.clientWidth;"
               " const cut = images.filter(i => i.getBoundingClientRect().right > page + 0.5"
               " || i.getBoundingClientRect().width < 0.5 * Math.min(i.naturalWidth, page));"
               " document.body.setAttribute('data-check',"
               " `images=${images.length} broken=${broken.length} cut=${cut.length}`);"
               " });</script>")


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    root = build_tree(tmp_path_factory.mktemp("tree") / "results")
    out = tmp_path_factory.mktemp("report")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return build_report(root, out, baselines="deepobs-1.1", formats=("png",))


@pytest.fixture(scope="module")
def report_dir(report):
    return report.html_path.parent


def test_every_legend_fits_inside_its_figure(report):
    assert len(report.legends_fit) >= 6  # performance x2, grid, lr sensitivity, sensitivity, rank, ...
    assert [name for name, fits in report.legends_fit.items() if not fits] == []


def test_report_writes_figures_tables_and_page(report_dir):
    figures = sorted(p.name for p in (report_dir / "figures").iterdir())
    assert "performance_toy_class.png" in figures and "performance_toy_class.pdf" not in figures
    assert "performance_quadratic_deep.png" in figures and "testset_performances.png" in figures
    assert "lr_sensitivity.png" in figures and "sensitivity_lr_toy_class.png" in figures
    assert "tuning_rank_toy_class_SGD.png" in figures
    assert all((report_dir / "figures" / name).stat().st_size > 1000 for name in figures)
    markdown = (report_dir / "results.md").read_text()
    assert "| quadratic_deep | SGD (deepobs-1.1) | 1.585e-02 | 10 | 87.40 ± 0.16 |" in markdown
    assert "| toy_class | Adam | 1.000e-03 | 3 |" in markdown
    assert r"87.40 $\pm$ 0.16" in (report_dir / "results.tex").read_text()
    assert "<table" in (report_dir / "results.html").read_text()


def test_report_is_self_contained(report_dir):
    page = (report_dir / "report.html").read_text()
    assert page.startswith("<!DOCTYPE html>")
    sources = re.findall(r'(?:src|href)="([^"]*)"', page)
    assert sources and all(s.startswith("data:image/png;base64,") for s in sources)
    assert "<script" not in page and "http://" not in page and "https://" not in page
    assert "skipped file:" in page and "empty setting folder:" in page  # check_output findings
    # The header names the metric each selection actually used, and the tuning seed.
    # (toy_class SGD is the one optimizer with settings to choose from).
    assert "selection: <code>final valid_accuracies on seed 42</code> (never the test set)" in page
    # 2-epoch runs against the 100-epoch baselines: a visible warning, once.
    assert page.count("<p class='warning'>⚠ quadratic_deep: your runs and the baselines differ: epochs 2 vs 100") == 1


def test_check_flag_and_bad_input(tmp_path, capsys):
    root = build_tree(tmp_path / "results")
    assert main([str(root), "--check"]) == 1
    assert "skipped file:" in capsys.readouterr().out
    assert main([str(tmp_path / "missing"), "--out", str(tmp_path / "o")]) == 2
    assert "does not exist" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main([str(root), "--metric", "test_accuracies"])
    assert exit_info.value.code == 2


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium "
                    "(apt-get install -y chromium)")
def test_report_renders_in_headless_chromium(report_dir, report):
    """The page as a browser shows it: every figure decoded and whole, no console error;
    with :func:`test_every_legend_fits_inside_its_figure`, no legend is cut off."""
    assert report.legends_fit and all(report.legends_fit.values())
    page = report_dir / "report.html"
    checked = page.with_name("report_checked.html")
    checked.write_text(page.read_text().replace("</body>", IMAGE_CHECK + "</body>"))
    profile = tempfile.mkdtemp(prefix="deepobs-chromium-")
    try:
        done = subprocess.run([str(CHROMIUM), *CHROMIUM_FLAGS, f"--user-data-dir={profile}",
                               checked.as_uri()], capture_output=True, text=True, timeout=120)
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    assert done.returncode == 0, done.stderr[-2000:]
    images = page.read_text().count("<img ")
    assert f'data-check="images={images} broken=0 cut=0"' in done.stdout
    console = [line for line in done.stderr.splitlines() if ":CONSOLE" in line]
    assert console == []


def test_list_valued_hyperparameters_do_not_break_the_report():
    """AdamW's ``betas`` is stored as a JSON list; it must not crash the report."""
    import pandas as pd

    from deepobs.analyzer.report import _varying

    settings = pd.DataFrame({"hyperparams": [{"lr": 0.1, "betas": [0.9, 0.999]},
                                             {"lr": 0.01, "betas": [0.9, 0.999]}]})
    assert _varying(settings) == ["lr"]
