"""The problem registry: listing by pattern, lookup errors, user registration."""

import pytest

import deepobs
from deepobs.errors import ConfigurationError
from deepobs.registry import UnknownProblemError, _PROBLEMS


def test_builtin_problems_are_listed():
    names = deepobs.list_problems()
    assert {"quadratic_deep", "two_d_beale", "two_d_branin", "two_d_rosenbrock"} <= set(names)
    assert names == sorted(names)
    assert deepobs.list_problems("two_d_*") == ["two_d_beale", "two_d_branin", "two_d_rosenbrock"]
    assert deepobs.list_problems("no_such_*") == []


def test_unknown_problem_names_close_matches():
    with pytest.raises(UnknownProblemError, match="did you mean: quadratic_deep"):
        deepobs.get_problem("quadratc_deep")
    assert issubclass(UnknownProblemError, ConfigurationError)


def test_get_problem_returns_an_instance_to_set_up():
    problem = deepobs.get_problem("quadratic_deep", 32, device="cpu")
    assert problem.data is None and problem.batch_size == 32
    problem.set_up()
    assert problem.data.batch_size == 32 and problem.num_parameters() == 100


def test_deepobs_style_import_of_a_problem_class():
    from deepobs.testproblems import quadratic_deep

    assert quadratic_deep is deepobs.get_problem_class("quadratic_deep")
    with pytest.raises(ImportError):
        from deepobs.testproblems import no_such_problem  # noqa: F401


def test_user_code_registers_a_problem_the_same_way():
    from deepobs.testproblems.quadratic import QuadraticDeep

    try:
        @deepobs.register_problem("user_quadratic")
        class UserQuadratic(QuadraticDeep):
            default_num_epochs = 3

        assert "user_quadratic" in deepobs.list_problems("user_*")
        assert deepobs.get_problem("user_quadratic", device="cpu").name == "user_quadratic"
        with pytest.raises(ValueError, match="already registered"):
            deepobs.register_problem("user_quadratic")(type("Other", (QuadraticDeep,), {}))
    finally:
        _PROBLEMS.pop("user_quadratic", None)
