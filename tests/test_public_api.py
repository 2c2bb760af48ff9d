"""``harness`` re-exports what a plugin author needs, lazily: every name resolves, none costs an import."""

from __future__ import annotations

import subprocess
import sys

import pytest

import harness


@pytest.mark.parametrize("name", sorted(harness._PUBLIC))
def test_every_public_name_is_the_object_its_module_defines(name):
    import importlib

    assert getattr(harness, name) is getattr(importlib.import_module(harness._PUBLIC[name]), name)


def test_importing_the_package_loads_no_torch_and_an_unknown_name_is_an_attribute_error():
    code = "import sys, harness; print('torch' in sys.modules, 'harness.engine' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
    with pytest.raises(AttributeError, match="has no attribute 'Wrold'"):
        harness.Wrold  # noqa: B018


def test_all_lists_exactly_the_public_names():
    assert set(harness.__all__) == {"__version__", *harness._PUBLIC}
