"""Study files: YAML → presets and overrides → allowlist check → typed, validated objects.

Every problem is reported as one :class:`ConfigError` line that names the file and the key path.
"""

from __future__ import annotations

import copy
import difflib
import importlib
import inspect
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from harness.errors import ConfigError

# Plugins may come from the project's own packages, plus modules a study lists in ``allow_modules``.
PROJECT_PACKAGES = ("harness", "methods", "reports")

STUDY_KEYS_NOT_IN_RUNS = ("tracker", "executor", "presets", "description", "allow_modules")


# ---------------------------------------------------------------------------------------------
# Raw YAML handling
# ---------------------------------------------------------------------------------------------
# A study file is a few hundred nodes; these bounds stop a hostile one (an alias bomb, deep nesting)
# before anything walks it, with room to spare for real files.
MAX_YAML_DEPTH = 64
MAX_YAML_NODES = 200_000


class _BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe loader with limits on nesting depth and on the tree's size once aliases expand.

    An alias costs nothing to parse but every walk of the tree visits its anchor again, so the bound is
    on the expanded size: a node's size counts an aliased anchor as often as it is referenced.
    """

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self._depth = 0
        self._sizes: dict[int, int] = {}

    def compose_node(self, parent: Any, index: Any) -> Any:
        self._depth += 1
        try:
            if self._depth > MAX_YAML_DEPTH:
                raise yaml.YAMLError(f"nesting deeper than {MAX_YAML_DEPTH} levels")
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        if id(node) not in self._sizes:
            self._sizes[id(node)] = size = 1 + sum(self._sizes.get(id(child), 1) for child in _children(node))
            if size > MAX_YAML_NODES:
                raise yaml.YAMLError(f"more than {MAX_YAML_NODES} values once aliases are expanded "
                                     "(an alias bomb?)")
        return node


def _children(node: Any) -> list[Any]:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def safe_load_bounded(text: str) -> Any:
    """``yaml.safe_load`` within :data:`MAX_YAML_DEPTH` and :data:`MAX_YAML_NODES`."""
    loader = _BoundedLoader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def read_yaml(path: Path) -> dict[str, Any]:
    try:
        if not path.exists():
            raise ConfigError(f"{path}: file not found")
        if path.is_dir():
            raise ConfigError(f"{path}: is a folder, expected a study YAML file")
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: malformed YAML: the file is not UTF-8 text") from None
    except ValueError as exc:  # a NUL byte in the path
        raise ConfigError(f"{str(path)!r}: not a usable file name ({exc})") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        data = safe_load_bounded(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{path}: malformed YAML{where}: {exc.problem}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: malformed YAML: {exc}") from None
    except RecursionError:
        raise ConfigError(f"{path}: malformed YAML: nested too deeply") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a study file must be a mapping of keys, got {type(data).__name__}")
    return data


def deep_merge(base: Any, override: Any) -> Any:
    """Merge ``override`` over ``base``; a plugin node whose class_path changes is replaced whole."""
    if not (isinstance(base, Mapping) and isinstance(override, Mapping)):
        return copy.deepcopy(override)
    if "class_path" in override and override.get("class_path") != base.get("class_path"):
        return copy.deepcopy(dict(override))
    out = dict(copy.deepcopy(base))
    for key, value in expand_dotted(override).items():
        out[key] = deep_merge(out[key], value) if key in out else copy.deepcopy(value)
    return out


def expand_dotted(mapping: Mapping[str, Any]) -> dict[str, Any]:
    """``{"a.b": 1}`` → ``{"a": {"b": 1}}``, so overrides can name deep keys in one line."""
    out: dict[str, Any] = {}
    for key, value in mapping.items():
        parts = str(key).split(".")
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override '{key}' conflicts with another override of '{part}'")
        leaf = parts[-1]
        node[leaf] = deep_merge(node[leaf], value) if leaf in node else value
    return out


def parse_override(text: str) -> tuple[str, Any]:
    """``key.path=value`` with the value read as YAML (``seeds=[0,1]``, ``lr=1e-3``, ``name=x``)."""
    if "=" not in text:
        raise ConfigError(f"override '{text}' must look like key.path=value")
    key, raw = text.split("=", 1)
    if not key or not re.fullmatch(r"[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*", key):
        raise ConfigError(f"override '{text}': '{key}' is not a key path")
    try:
        value = safe_load_bounded(raw) if raw.strip() else ""
    except (yaml.YAMLError, RecursionError):
        value = raw
    if isinstance(value, str) and re.fullmatch(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+", value.strip()):
        value = float(value)  # YAML 1.1 reads 1e-3 as a string; on a command line it is a number
    return key, value


# ---------------------------------------------------------------------------------------------
# Allowlist
# ---------------------------------------------------------------------------------------------
def iter_class_paths(node: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """Yield ``(key path, class_path)`` for every plugin named anywhere in a config tree, in document
    order, with an explicit stack: resolved configs may nest deeper than a study file may."""
    stack: list[tuple[Any, str]] = [(node, path)]
    while stack:
        item, where = stack.pop()
        if isinstance(item, Mapping):
            if "class_path" in item:
                yield where or "<root>", item["class_path"]
            children = [(v, f"{where}.{k}" if where else str(k)) for k, v in item.items() if k != "class_path"]
        elif isinstance(item, (list, tuple)):
            children = [(v, f"{where}[{i}]") for i, v in enumerate(item)]
        else:
            continue
        stack.extend(reversed(children))


_DOTTED = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")


def _inside(module: str, packages: tuple[str, ...]) -> bool:
    return any(module == ok or module.startswith(ok + ".") for ok in packages)


def check_class_path(class_path: Any, allowed: tuple[str, ...], where: str) -> None:
    """Refuse a plugin unless it is a class defined inside an allowed package.

    The module part must lie in an allowed package before it is imported, so naming a module never
    runs code from outside them; then the object must be a class whose ``__module__`` is inside an
    allowed package too, which closes attribute chains such as ``harness.io.atomic.os.system``.
    ``where`` is the message prefix naming the key.
    """
    if not isinstance(class_path, str) or not _DOTTED.fullmatch(class_path):
        raise ConfigError(f"{where}: {class_path!r} is not a dotted import path")
    if "." not in class_path:
        return  # a short name resolves only to an already-imported subclass of the slot's type
    refuse = (f"{where}: '{class_path}' is not allowed; plugins must be classes defined in "
              f"{', '.join(PROJECT_PACKAGES)} or in a module listed in the study's allow_modules")
    module, name = class_path.rsplit(".", 1)
    if not _inside(module, allowed):
        raise ConfigError(refuse)
    try:
        obj = getattr(importlib.import_module(module), name)
    except ImportError as exc:
        raise ConfigError(f"{where}: cannot import '{class_path}': {exc}") from None
    except AttributeError:
        raise ConfigError(f"{where}: cannot import '{class_path}': module '{module}' has no attribute "
                          f"'{name}'") from None
    if not inspect.isclass(obj) or not _inside(str(getattr(obj, "__module__", "")), allowed):
        raise ConfigError(refuse)


def check_allowlist(raw: Mapping[str, Any], allow_modules: list[str] | tuple[str, ...], source: str) -> None:
    """Check every ``class_path`` of a raw config tree (see :func:`check_class_path`)."""
    allowed = PROJECT_PACKAGES + tuple(allow_modules)
    for key, class_path in iter_class_paths(raw):
        check_class_path(class_path, allowed, f"{source}: key '{key}.class_path'")


# ---------------------------------------------------------------------------------------------
# jsonargparse errors → one line
# ---------------------------------------------------------------------------------------------
def format_parse_error(message: str, raw: Mapping[str, Any] | None = None, prefix: str = "",
                       top_level: Sequence[str] = ()) -> str:
    """Turn jsonargparse's nested, multi-line message into ``key.path: reason``."""
    lines = [line.strip() for line in str(message).splitlines() if line.strip()]
    keys: list[str] = [prefix] if prefix else []
    reason = lines[-1] if lines else str(message)
    for line in lines:
        m = re.match(r'Parser key "([^"]+)"', line)
        if m:
            keys.append(m.group(1))
        elif re.match(r"Problem with given class_path '([^']+)'", line):
            keys.append("init_args")
    m = re.match(r"(?:Option|Key) '([^']+)' is not accepted", reason)
    if m:
        bad = m.group(1)
        reason = f"unknown key '{bad}'"
        hint = _did_you_mean(bad, ".".join(k for k in keys if k), raw, top_level)
        if hint:
            reason += f" (did you mean '{hint}'?)"
    elif m := re.match(r"Group '([^']+)' does not accept nested key '([^']+)'", reason):
        reason = f"unknown key '{m.group(2)}'"
    elif keys and keys[-1] == "init_args" and re.match(r"(No module named|module '[^']+' has no attribute)", reason):
        keys[-1] = "class_path"
        reason = f"cannot import: {reason}"
    reason = reason.replace("<class '", "").replace("'>", "")
    path = ".".join(k for k in keys if k)
    return f"key '{path}': {reason}" if path else reason


def init_parameters(cls: type) -> set[str]:
    """The keyword arguments a class's constructor accepts, following ``**kwargs`` up the base classes
    (a method passes the shared settings on to :class:`~methods.distill.DistillationMethod`)."""
    names: set[str] = set()
    for base in cls.__mro__:
        if base is object or "__init__" not in vars(base):
            continue
        params = inspect.signature(base.__init__).parameters.values()
        names |= {p.name for p in params if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)} - {"self"}
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            break
    return names


def _did_you_mean(bad: str, key_path: str, raw: Mapping[str, Any] | None, top_level: Sequence[str]) -> str | None:
    """Suggest a close accepted name: init args of the plugin at ``key_path``, or ``top_level`` keys."""
    candidates: list[str] = []
    if raw is not None and key_path.endswith("init_args"):
        node: Any = raw
        for part in key_path.split(".")[:-1]:
            node = node.get(part, {}) if isinstance(node, Mapping) else {}
        class_path = node.get("class_path") if isinstance(node, Mapping) else None
        if isinstance(class_path, str) and "." in class_path:
            try:
                module, name = class_path.rsplit(".", 1)
                cls = getattr(importlib.import_module(module), name)
                candidates = sorted(init_parameters(cls))
            except (ImportError, AttributeError, TypeError, ValueError):
                candidates = []
    elif not key_path:
        candidates = list(top_level)
    match = difflib.get_close_matches(bad, candidates, n=1, cutoff=0.6)
    return match[0] if match else None


@dataclass
class LoadedStudy:
    """A study file after presets and overrides, before typed parsing."""

    path: Path
    raw: dict[str, Any]
    preset: str | None = None
    overrides: list[str] = field(default_factory=list)
    # The part of the preset and of the command-line overrides under ``pipeline``: applied to every
    # run after its grid levels, so ``--set pipeline.init_args.num_videos=4`` wins over the grid.
    run_overrides: dict[str, Any] = field(default_factory=dict)


def load_raw_study(path: str | Path, preset: str | None = None, overrides: list[str] | None = None) -> LoadedStudy:
    """Read the YAML, merge the chosen preset and the ``key=value`` overrides over it."""
    path = Path(path)
    return apply_preset_and_overrides(path, read_yaml(path), preset, overrides)


def apply_preset_and_overrides(path: Path, raw: Mapping[str, Any], preset: str | None,
                               overrides: list[str] | None) -> LoadedStudy:
    """A study's raw tree with its preset and the ``key=value`` overrides merged over it, the part under
    ``pipeline`` kept apart (it wins over grid levels), the allowlist checked."""
    raw = dict(raw)
    run_overrides: dict[str, Any] = {}
    presets = raw.get("presets") or {}
    if not isinstance(presets, Mapping):
        raise ConfigError(f"{path}: key 'presets' must map preset names to overrides")
    if preset is not None:
        if preset not in presets:
            known = ", ".join(sorted(presets)) or "none"
            raise ConfigError(f"{path}: unknown preset '{preset}' (this study defines: {known})")
        if not isinstance(presets[preset], Mapping):
            raise ConfigError(f"{path}: key 'presets.{preset}' must be a mapping of overrides")
        raw = deep_merge(raw, presets[preset])
        run_overrides = deep_merge(run_overrides, expand_dotted(presets[preset]).get("pipeline") or {})
    for text in overrides or []:
        key, value = parse_override(text)
        raw = deep_merge(raw, {key: value})
        run_overrides = deep_merge(run_overrides, expand_dotted({key: value}).get("pipeline") or {})
    allow = raw.get("allow_modules") or []
    if not isinstance(allow, list) or not all(isinstance(m, str) for m in allow):
        raise ConfigError(f"{path}: key 'allow_modules' must be a list of module names")
    check_allowlist(raw, allow, str(path))
    return LoadedStudy(path=path, raw=raw, preset=preset, overrides=list(overrides or []),
                       run_overrides=run_overrides)
