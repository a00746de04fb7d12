"""The error hierarchy: every exception class the app defines is an AutotuneError with a family and a stable code."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

import localml
import shared
from shared.errors import FAMILIES, AutotuneError, BackendError, BadInput, Conflict, code_of, family_of


def _app_exception_classes() -> list[type[BaseException]]:
    found: list[type[BaseException]] = []
    packages = [(shared.__path__, "shared."), (localml.__path__, "localml.")]
    for info in [info for path, prefix in packages for info in pkgutil.walk_packages(path, prefix)]:
        if info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        for _, value in inspect.getmembers(module, inspect.isclass):
            if issubclass(value, BaseException) and value.__module__ == info.name:
                found.append(value)
    return found


def test_every_exception_the_app_defines_is_an_autotune_error_with_its_own_code() -> None:
    classes = [c for c in _app_exception_classes() if issubclass(c, Exception)]
    assert len(classes) > 20
    strays = [f"{c.__module__}.{c.__name__}" for c in classes if not issubclass(c, AutotuneError)]
    assert strays == []
    codes: dict[str, str] = {}
    for cls in classes:
        if cls in FAMILIES or cls is AutotuneError:
            continue
        assert cls.code and cls.code != "error", cls
        codes.setdefault(cls.code, f"{cls.__module__}.{cls.__name__}")
    assert len(codes) >= len(classes) - len(FAMILIES) - 2  # BackendError shares its family's code by design


def test_families_and_codes_are_read_through_the_mro_and_keep_the_builtin_bases() -> None:
    from shared.finetune_params import ParameterError
    from shared.ledger import ConflictError
    from shared.names import InvalidNameError

    error = ParameterError("learning_rate must be a number", code="invalid_parameter")
    assert isinstance(error, BackendError) and isinstance(error, BadInput)
    assert family_of(error) == "bad_input" and code_of(error) == "invalid_parameter"
    assert family_of(BackendError("quota")) == "platform_error" and code_of(BackendError("quota")) == "backend_error"
    assert code_of(BackendError("gone", code="job_not_found")) == "job_not_found"
    assert isinstance(InvalidNameError("x"), ValueError) and code_of(InvalidNameError("x")) == "invalid_model_name"
    assert issubclass(ConflictError, Conflict) and issubclass(ConflictError, RuntimeError)
    assert family_of(KeyError("x")) == "error" and code_of(KeyError("x")) == "internal_error"
    with pytest.raises(ValueError):
        raise InvalidNameError("still a ValueError for every existing except clause")
