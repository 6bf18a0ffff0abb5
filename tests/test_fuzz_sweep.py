"""Hypothesis fuzzing of the sweep-file loader: every text, YAML or JSON document gives
either a checked :class:`Sweep` or a one-line :class:`ConfigurationError`, never another
exception, a hang or a line break in the message."""

from __future__ import annotations

import json

import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from deepobs.errors import ConfigurationError

sweep_module = pytest.importorskip("deepobs.tuner.sweep")
load_sweep, Sweep, TOP_LEVEL_KEYS = sweep_module.load_sweep, sweep_module.Sweep, sweep_module.TOP_LEVEL_KEYS

VALID = {
    "name": "fuzz",
    "problems": ["quadratic_deep", {"name": "two_d_beale", "num_epochs": 2}],
    "optimizers": {"sgd": {"lr": {"log_uniform": [1.0e-4, 1.0]}}, "momentum": {"lr": [0.001, 0.01]}},
    "search": "random",
    "budget": 3,
    "seeds": 42,
    "num_epochs": 2,
    "fake_data": 128,
}

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2 ** 70), max_value=2 ** 70),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12),
    st.sampled_from(["quadratic_deep", "sgd", "adam", "lr", "grid", "random", "bayesian", "local",
                     "slurm", "log_uniform", "uniform", "int_uniform", "log_grid", "scipy", "1.1",
                     "1.2", "true", "-1", "1e400", "nan", "", "../..", "name"]),
)
documents = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.one_of(st.sampled_from(sorted(TOP_LEVEL_KEYS) + ["lr", "name", "momentum",
                                                                              "log_uniform", "partition"]),
                                  st.text(max_size=8)), children, max_size=5),
    ),
    max_leaves=20,
)


def mutated_valid(draw_keys, replacement):
    """The valid sweep with some keys replaced by arbitrary values (or removed)."""
    data = json.loads(json.dumps(VALID))
    for key in draw_keys:
        if replacement is None:
            data.pop(key, None)
        else:
            data[key] = replacement
    return data


structured = st.one_of(
    documents,
    st.builds(mutated_valid, st.lists(st.sampled_from(sorted(TOP_LEVEL_KEYS)), max_size=3), documents),
)


def as_text(data, style):
    if style == "json":
        return json.dumps(data, allow_nan=True)
    try:
        return yaml.safe_dump(data, allow_unicode=True)
    except yaml.YAMLError:
        return json.dumps(data, allow_nan=True)


sweep_texts = st.one_of(
    st.builds(as_text, structured, st.sampled_from(["json", "yaml"])),
    st.text(max_size=200),
    st.builds(lambda text, cut, junk: text[:cut] + junk + text[cut:],
              st.just(yaml.safe_dump(VALID)), st.integers(0, 400), st.text(max_size=10)),
)

HOSTILE = [
    "a: &a [1,1,1,1,1,1,1,1,1]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
    "d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: [*e,*e,*e,*e,*e,*e,*e]\n",
    "!!python/object/apply:os.system ['echo hacked']",
    "problems: !!python/name:os.system\noptimizers: {sgd: {lr: 0.1}}",
    "[" * 5000 + "]" * 5000,
    "problems: [quadratic_deep]\noptimizers: {sgd: {lr: .nan}}",
    "problems: [quadratic_deep]\noptimizers: {sgd: {lr: {log_uniform: [0, 1]}}}\nsearch: random\nbudget: 2",
    "problems: [quadratic_deep]\noptimizers: {sgd: {lr: {log_uniform: [1, 0.1]}}}\nsearch: random\nbudget: 2",
    "problems: [quadratic_deep]\noptimizers: {sgd: {lr: [0.1]}}\nbudget: 99999999999999999999999",
    "problems: [quadratic_deep]\noptimizers: {'os.system': {lr: [0.1]}}",
    "problems: [quadratic_deep]\noptimizers: {sgd: {lr: [0.1]}}\noutput_dir: \"\\0\"",
    "\ufeffproblems: [quadratic_deep]\noptimizers: {sgd: {lr: [0.1]}}",
    "problems: [quadratic_deep]\noptimizers: {sgd: {lr: [0.1]}}\nseeds: [1, 1, -3]",
    "problems: [quadratic_deep]\noptimizers: {sgd: {lr: [0.1]}}\nname: \"a\\nb\"",
]


def check(text, record=False):
    try:
        sweep = load_sweep(text)
    except ConfigurationError as error:
        message = str(error)
        assert message and len(message.splitlines()) == 1, repr(message)
        if record:
            event("ConfigurationError")
        return None
    assert isinstance(sweep, Sweep)
    assert sweep.problems and sweep.searches
    if record:
        event("sweep")
    return sweep


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sweep_texts)
def test_every_sweep_text_is_a_sweep_or_a_one_line_configuration_error(text):
    check(text, record=True)


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_sweep_files_are_refused_or_read_safely(text):
    sweep = check(text)
    if sweep is not None:  # a valid sweep: every value it carries is finite and named
        for search in sweep.searches.values():
            assert search is not None
        assert all(isinstance(seed, int) and seed >= 0 for seed in sweep.seeds)


def test_the_valid_base_document_loads():
    sweep = check(yaml.safe_dump(VALID))
    assert sweep is not None and sweep.name == "fuzz" and len(sweep.problems) == 2
    assert sweep.method == "random" and sorted(sweep.searches) == ["momentum", "sgd"]
    assert len(sweep.studies()) == 4  # 2 problems x 2 optimizers
