"""Installs the deepobs package; the version comes from the VERSION file."""

from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).resolve().parent
VERSION = (HERE / "VERSION").read_text().strip()
REQUIREMENTS = [
    line.strip() for line in (HERE / "requirements.txt").read_text().splitlines()
    if line.strip() and not line.startswith("#")
]

OPTIMIZERS = ["pytorch_optimizer==4.1.0", "schedulefree==1.4.1", "einops==0.8.2"]

setup(
    name="deepobs",
    version=VERSION,
    description="A deep-learning optimizer benchmark suite: DeepOBS, faithful and fast, in PyTorch",
    long_description=(HERE / "README.md").read_text(),
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.10",
    packages=find_packages(include=["deepobs", "deepobs.*"]),
    # The shipped baselines (deepobs/analyzer/data links to baselines/).
    package_data={"deepobs.analyzer": ["data/*/*.json", "data/*/LICENSE", "data/*/README.md",
                                      "data/*/crosscheck/*.json", "data/*/sweeps/*.yaml"]},
    install_requires=REQUIREMENTS,
    extras_require={
        # Sweeps: Bayesian search and SLURM.
        "tune": ["optuna>=3", "submitit>=1.5"],
        # Documentation: make docs.
        "docs": ["sphinx>=7", "myst-parser>=2", "furo>=2024.1"],
        # Every optimizer family (docs/optimizers.md): pinned, the compatibility matrix was measured with these.
        # (einops: pytorch_optimizer's DeMo imports it.)
        "optimizers": OPTIMIZERS,
        "test": ["pytest>=7", "pytest-timeout>=2.1", "hypothesis>=6", "optuna>=3", "submitit>=1.5"] + OPTIMIZERS,
    },
    entry_points={
        "console_scripts": [
            "deepobs-run=deepobs.runners.cli:main",
            "deepobs-prepare-data=deepobs.datasets.prepare:main",
            "deepobs-plot=deepobs.analyzer.cli:main",
            "deepobs-tune=deepobs.tuner.cli:main",
        ],
    },
)
