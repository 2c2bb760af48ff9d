"""The import graph stays one-way: no cycle, no import against the layers (tests/import_graph.py)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from tests import import_graph


def test_the_project_has_no_cycle_and_no_upward_import():
    assert import_graph.problems() == []


def _package(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))


def test_a_cycle_through_a_lazy_import_is_found(tmp_path):
    _package(tmp_path, {
        "harness/__init__.py": "",
        "harness/engine/__init__.py": "",
        "harness/engine/study.py": "from harness.engine.runner import execute\n",
        "harness/engine/runner.py": "def execute():\n    from harness.engine import study\n",
        "methods/__init__.py": "",
        "reports/__init__.py": "",
    })
    assert import_graph.problems(tmp_path) == ["cycle: harness.engine.runner ↔ harness.engine.study"]


def test_an_upward_import_is_named_with_its_file_and_line(tmp_path):
    _package(tmp_path, {
        "harness/__init__.py": "",
        "harness/engine/__init__.py": "",
        "harness/engine/driver.py": "import os\n\nfrom methods.asd import ASD\n",
        "methods/__init__.py": "",
        "methods/asd.py": "ASD = 1\n",
        "reports/__init__.py": "",
    })
    assert import_graph.problems(tmp_path) == [
        "upward import: harness.engine.driver (layer 2) → methods.asd (layer 7), harness/engine/driver.py:3"
    ]


def test_imports_for_type_checkers_only_do_not_count(tmp_path):
    _package(tmp_path, {
        "harness/__init__.py": "",
        "harness/engine/__init__.py": "",
        "harness/engine/driver.py": "from typing import TYPE_CHECKING\n\nif TYPE_CHECKING:\n    from methods.asd import ASD\n",
        "methods/__init__.py": "",
        "methods/asd.py": "from harness.engine import driver\n",
        "reports/__init__.py": "",
    })
    assert import_graph.problems(tmp_path) == []


def test_a_subpackage_without_a_declared_layer_is_an_error(tmp_path):
    _package(tmp_path, {
        "harness/__init__.py": "",
        "harness/gadgets/__init__.py": "",
        "harness/gadgets/tool.py": "from harness.errors import ConfigError\n",
        "harness/errors.py": "",
        "methods/__init__.py": "",
        "reports/__init__.py": "",
    })
    with pytest.raises(KeyError, match="harness.gadgets.tool: no layer declared"):
        import_graph.problems(tmp_path)
