"""Prompt lists of the Wan world: text files at real scale, a small built-in list for the tiny preset.

Self Forcing distils on ``prompts/vidprom_filtered_extended.txt`` (LLM-extended VidProM prompts) and is
scored on VBench's 946 prompts in their extended form (``all_dimension_extended.txt``, one line per
entry of ``VBench_full_info.json``, in the same order): those files are the user's to provide, named
by path in the study; nothing is downloaded. One prompt per line; blank lines are skipped; the eval
list keeps duplicates and order, since the VBench backend maps line ``i`` back to suite entry ``i``.
"""

from __future__ import annotations

from pathlib import Path

from harness.errors import ConfigError

# Wan's default negative prompt, Self Forcing's ``negative_prompt`` (the "unconditional" branch of CFG)
WAN_NEGATIVE_PROMPT = (
    "色调艳丽，过曝，静态，细节模糊不清，字幕，风格，作品，画作，画面，静止，整体发灰，最差质量，低质量，"
    "JPEG压缩残留，丑陋的，残缺的，多余的手指，画得不好的手部，画得不好的脸部，畸形的，毁容的，"
    "形态畸形的肢体，手指融合，静止不动的画面，杂乱的背景，三条腿，背景人很多，倒着走"
)

# The tiny preset's lists: short scene descriptions, disjoint between splits.
TINY_TRAIN = (
    "a red fox running through snow",
    "waves breaking on a rocky shore at sunset",
    "a paper boat drifting down a stream",
    "a hummingbird hovering near a flower",
    "city traffic at night seen from above",
    "a chef slicing vegetables in a kitchen",
    "leaves falling in an autumn park",
    "a cat stretching on a windowsill",
)
TINY_EVAL = (
    "a dog catching a frisbee on the beach",
    "clouds moving over a mountain range",
    "a person riding a bicycle down a hill",
    "a candle flame flickering in the dark",
)


def read_prompt_file(path: str | Path, setting: str) -> list[str]:
    """The non-blank lines of ``path``; a missing or empty file is one error naming ``setting``."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise ConfigError(f"WanWorld.{setting}: prompt file {path} not found")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"WanWorld.{setting}: cannot read {path} ({exc})") from None
    prompts = [line.strip() for line in lines if line.strip()]
    if not prompts:
        raise ConfigError(f"WanWorld.{setting}: {path} holds no prompt")
    return prompts


class PromptLists:
    """The train and eval lists: files when given (read once, on first use), else the built-in tiny lists."""

    SPLITS = ("train", "eval")

    def __init__(self, train: str | None, eval: str | None, *, builtin: bool) -> None:
        self.files = {"train": train, "eval": eval}
        self.builtin = builtin
        self._cache: dict[str, list[str]] = {}

    def get(self, split: str) -> list[str]:
        if split not in self.SPLITS:
            raise ConfigError(f"WanWorld has no prompt split '{split}'; choose one of {list(self.SPLITS)}")
        if split not in self._cache:
            self._cache[split] = self._read(split)
        return list(self._cache[split])

    def _read(self, split: str) -> list[str]:
        setting = f"{split}_prompts"
        path = self.files[split]
        if path:
            return read_prompt_file(path, setting)
        if self.builtin:
            return list(TINY_TRAIN if split == "train" else TINY_EVAL)
        raise ConfigError(f"WanWorld.{setting} is not set: name a text file with one prompt per line")
