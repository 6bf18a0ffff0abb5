"""The problem registry: problems register by decorator and are found by name or pattern.

User code registers its own problems the same way as the built-in ones::

    @deepobs.register_problem("my_problem")
    class MyProblem(deepobs.TestProblem):
        ...
"""

from __future__ import annotations

import difflib
import fnmatch
from typing import Optional

_PROBLEMS: dict = {}
_BUILTINS_LOADED = False


from deepobs.errors import ConfigurationError


class UnknownProblemError(ConfigurationError):
    """Raised for a problem name that is not registered; names the close matches."""


def register_problem(name: Optional[str] = None, *, overwrite: bool = False):
    """Class decorator registering a :class:`~deepobs.testproblems.TestProblem` subclass.

    Args:
        name: registry name (default: the class's ``name`` attribute, else its name).
        overwrite: allow replacing a problem registered under the same name.
    """

    def decorator(cls):
        problem_name = name or getattr(cls, "name", None) or cls.__name__
        if problem_name in _PROBLEMS and not overwrite and _PROBLEMS[problem_name] is not cls:
            raise ValueError(f"a problem named {problem_name!r} is already registered")
        cls.name = problem_name
        _PROBLEMS[problem_name] = cls
        return cls

    return decorator


def _load_builtins() -> None:
    global _BUILTINS_LOADED
    if not _BUILTINS_LOADED:
        _BUILTINS_LOADED = True
        import deepobs.testproblems  # noqa: F401  (registers the built-in problems)


def list_problems(pattern: str = "*") -> list:
    """Sorted names of the registered problems matching a shell-style ``pattern``."""
    _load_builtins()
    return sorted(name for name in _PROBLEMS if fnmatch.fnmatchcase(name, pattern))


def close_matches(name: str, choices) -> str:
    """'; did you mean: a, b?' for the choices close to ``name``, else ''."""
    matches = difflib.get_close_matches(name, list(dict.fromkeys(choices)), n=3, cutoff=0.6)
    return f"; did you mean: {', '.join(matches)}?" if matches else ""


def get_problem_class(name: str):
    """The registered class of problem ``name``."""
    _load_builtins()
    try:
        return _PROBLEMS[name]
    except KeyError:
        raise UnknownProblemError(
            f"unknown problem {name!r}{close_matches(name, _PROBLEMS)} "
            "(deepobs-run --list shows all problems)"
        ) from None


def get_problem(name: str, batch_size: Optional[int] = None, weight_decay: Optional[float] = None,
                **kwargs):
    """Instantiate problem ``name`` (not yet set up: call ``set_up()``, as in DeepOBS).

    Keyword arguments go to the problem's constructor (``data_dir``, ``protocol``,
    ``random_seed``, ``device``, ``fake_data``, ...).
    """
    return get_problem_class(name)(batch_size, weight_decay, **kwargs)
