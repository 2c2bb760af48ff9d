"""Cached UMT5 prompt embeddings: encoded once where the 5.7 B-parameter encoder fits, read everywhere.

Wan conditions on UMT5-XXL's last hidden state, trimmed to the prompt's real tokens and zero-padded to
512 rows (what ``WanPipeline`` and Self Forcing feed the transformer). The text encoder never sits in
a training process: :func:`encode_prompts` runs once per prompt list and the :class:`TextEmbeddingStore`
keeps only the real rows (≈8 KiB per token in bf16 instead of 4 MiB per padded prompt), keyed by the
SHA-256 of the prompt, in one safetensors file; :meth:`TextEmbeddingStore.embed` pads back to 512.

    python -m harness.worlds.wan.text PROMPTS.txt OUT.safetensors [--model Wan-AI/Wan2.1-T2V-1.3B-Diffusers]

needs ``transformers`` and the encoder weights (hub id or a local pipeline folder with ``tokenizer/``
and ``text_encoder/``); the store it writes is all training and evaluation need.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import torch

from harness.errors import CheckpointError, ConfigError, HarnessError
from harness.worlds.wan import deps

FORMAT = "harness-umt5-embeddings-v1"
TEXT_LEN = 512


def prompt_key(prompt: str) -> str:
    """The store key of a prompt: SHA-256 of its UTF-8 text, exactly as given."""
    return hashlib.sha256(prompt.encode("utf-8")).hexdigest()


class TextEmbeddingStore:
    """Real rows [n, D] per prompt; :meth:`embed` gives the backbone's ``cond`` [B, text_len, D]."""

    def __init__(self, rows: dict[str, torch.Tensor] | None = None, prompts: dict[str, str] | None = None,
                 *, text_dim: int | None = None, text_len: int = TEXT_LEN, source: str = "text embeddings") -> None:
        self.rows: dict[str, torch.Tensor] = dict(rows or {})
        self.prompts: dict[str, str] = dict(prompts or {})
        self.text_len, self.source = text_len, source
        widths = {r.shape[-1] for r in self.rows.values()}
        if len(widths) > 1:
            raise CheckpointError(f"{source}: rows of different widths {sorted(widths)}")
        self.text_dim = text_dim if text_dim is not None else (widths.pop() if widths else None)

    def __len__(self) -> int:
        return len(self.rows)

    def __contains__(self, prompt: str) -> bool:
        return prompt_key(prompt) in self.rows

    def add(self, prompt: str, rows: torch.Tensor) -> None:
        """Store the real rows [n, D] of a prompt (1 <= n <= text_len)."""
        if rows.dim() != 2 or not 1 <= rows.shape[0] <= self.text_len:
            raise ConfigError(f"prompt rows must be [n, D] with 1 <= n <= {self.text_len}, got {tuple(rows.shape)}")
        if self.text_dim is not None and rows.shape[1] != self.text_dim:
            raise ConfigError(f"prompt rows have width {rows.shape[1]}, this store holds width {self.text_dim}")
        self.text_dim = rows.shape[1]
        key = prompt_key(prompt)
        self.rows[key], self.prompts[key] = rows.detach().to("cpu").contiguous(), prompt

    def embed(self, prompts: Sequence[str], *, text_dim: int | None = None,
              dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """[B, text_len, D] zero-padded embeddings; ``text_dim`` is the width the backbone expects."""
        if text_dim is not None and self.text_dim is not None and self.text_dim != text_dim:
            raise ConfigError(f"{self.source}: embeddings have width {self.text_dim}, the Wan backbone expects "
                              f"text_dim={text_dim} (encode with the backbone's text encoder)")
        out = torch.zeros(len(prompts), self.text_len, self.text_dim or text_dim or 0, dtype=dtype)
        for i, prompt in enumerate(prompts):
            rows = self.rows.get(prompt_key(prompt))
            if rows is None:
                raise ConfigError(f"{self.source}: no embedding for prompt {prompt[:60]!r}; compute it with "
                                  "`python -m harness.worlds.wan.text PROMPTS.txt STORE.safetensors`")
            out[i, : rows.shape[0]] = rows.to(dtype)
        return out

    # -- files ---------------------------------------------------------------------------------

    def save(self, path: str | Path, **meta: str) -> Path:
        from safetensors.torch import save_file

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        metadata = {"format": FORMAT, "text_len": str(self.text_len), "text_dim": str(self.text_dim),
                    "prompts": json.dumps(self.prompts), **meta}
        tmp = path.with_name(path.name + ".tmp")
        save_file(self.rows, str(tmp), metadata=metadata)
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> TextEmbeddingStore:
        from safetensors import safe_open

        path = Path(path)
        if not path.is_file():
            raise CheckpointError(f"{path}: missing (compute it with `python -m harness.worlds.wan.text`)")
        try:
            with safe_open(str(path), framework="pt") as handle:
                meta = handle.metadata() or {}
                rows = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118
        except Exception as exc:  # noqa: BLE001 - safetensors raises its own types for corrupt files
            raise CheckpointError(f"{path}: unreadable safetensors file ({exc})") from None
        if meta.get("format") != FORMAT:
            raise CheckpointError(f"{path}: format is {meta.get('format')!r}, expected {FORMAT!r}")
        text_dim = None if meta.get("text_dim") in (None, "None") else int(meta["text_dim"])
        return cls(rows, json.loads(meta.get("prompts", "{}")), text_dim=text_dim,
                   text_len=int(meta.get("text_len", TEXT_LEN)), source=str(path))


# ---------------------------------------------------------------------------------------------
# Encoding (where the encoder is available)

Tokenizer = Callable[..., Any]


def encode_prompts(
    prompts: Iterable[str], tokenizer: Tokenizer, encoder: torch.nn.Module, *, text_len: int = TEXT_LEN,
    batch_size: int = 8, store: TextEmbeddingStore | None = None,
) -> TextEmbeddingStore:
    """Add every prompt's real rows of ``encoder(...).last_hidden_state`` to ``store`` (a new one if None).

    ``tokenizer`` is called as a Hugging Face tokenizer (padding to ``text_len``, truncation, attention
    mask); the real length of a prompt is the sum of its attention mask, as in ``WanPipeline``.
    """
    store = store if store is not None else TextEmbeddingStore(text_len=text_len)
    todo = [p for p in dict.fromkeys(prompts) if p not in store]
    device = next(encoder.parameters()).device
    for start in range(0, len(todo), batch_size):
        batch = todo[start : start + batch_size]
        tokens = tokenizer(batch, padding="max_length", max_length=text_len, truncation=True,
                           add_special_tokens=True, return_attention_mask=True, return_tensors="pt")
        mask = tokens["attention_mask"].to(device)
        with torch.no_grad():
            hidden = encoder(tokens["input_ids"].to(device), attention_mask=mask).last_hidden_state
        for prompt, h, n in zip(batch, hidden, mask.sum(dim=1).tolist(), strict=True):
            store.add(prompt, h[: max(int(n), 1)])
    return store


def load_umt5(model: str, *, device: str = "cpu", dtype: torch.dtype = torch.bfloat16) -> tuple[Any, torch.nn.Module]:
    """Tokenizer and UMT5 encoder of a Wan pipeline (hub id or folder with tokenizer/ and text_encoder/)."""
    transformers = deps.transformers()
    tokenizer = transformers.AutoTokenizer.from_pretrained(model, subfolder="tokenizer")
    encoder = transformers.UMT5EncoderModel.from_pretrained(model, subfolder="text_encoder", torch_dtype=dtype)
    return tokenizer, encoder.to(device).eval()


DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.worlds.wan.text", description=__doc__.split("\n")[0])
    parser.add_argument("prompts", help="text file, one prompt per line (blank lines skipped)")
    parser.add_argument("store", help="safetensors store to create or extend")
    parser.add_argument("--model", default="Wan-AI/Wan2.1-T2V-1.3B-Diffusers")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", default="bf16", choices=sorted(DTYPES))
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--negative", action="append", default=[], help="extra prompt to store (e.g. the CFG negative)")
    args = parser.parse_args(argv)
    try:
        lines = Path(args.prompts).read_text(encoding="utf-8").splitlines()
        prompts = [line.strip() for line in lines if line.strip()] + list(args.negative) + [""]
        store = TextEmbeddingStore.load(args.store) if Path(args.store).exists() else None
        tokenizer, encoder = load_umt5(args.model, device=args.device, dtype=DTYPES[args.dtype])
        store = encode_prompts(prompts, tokenizer, encoder, batch_size=args.batch_size, store=store)
        store.save(args.store, encoder=args.model)
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except HarnessError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    print(f"{args.store}: {len(store)} prompts, width {store.text_dim}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
