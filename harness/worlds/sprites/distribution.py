"""Distribution scores in classifier feature space: Fréchet distance and per-prompt diversity.

A generator can score perfectly per video and still collapse onto one trajectory per prompt (DMD's
mode seeking); these two numbers see that. Fréchet distance compares the Gaussian fits of generated and
real features; diversity is the mean pairwise feature distance among samples of the same prompt.
"""

from __future__ import annotations

import itertools

import numpy as np

from harness.errors import ConfigError


def _sqrt_psd(matrix: np.ndarray) -> np.ndarray:
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """||mu_a - mu_b||^2 + tr(S_a + S_b - 2 (S_a S_b)^1/2) for feature sets [N, D], in float64.

    The trace of the matrix square root uses the symmetric form sqrt(S_a) S_b sqrt(S_a), whose
    eigenvalues equal those of S_a S_b but which eigh can diagonalise stably.
    """
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if len(a) < 2 or len(b) < 2:
        raise ConfigError(f"Fréchet distance needs >= 2 samples per set, got {len(a)} and {len(b)}")
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
    root_a = _sqrt_psd(cov_a)
    cross = np.sqrt(np.clip(np.linalg.eigvalsh(root_a @ cov_b @ root_a), 0, None)).sum()
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2 * cross)


def per_prompt_diversity(features: np.ndarray, prompts: list[str]) -> float:
    """Mean over prompts with >= 2 samples of the mean pairwise L2 distance of their features."""
    groups: dict[str, list[int]] = {}
    for i, prompt in enumerate(prompts):
        groups.setdefault(prompt, []).append(i)
    per_prompt = []
    for rows in groups.values():
        if len(rows) >= 2:
            pairs = list(itertools.combinations(rows, 2))
            per_prompt.append(np.mean([np.linalg.norm(features[i] - features[j]) for i, j in pairs]))
    return float(np.mean(per_prompt)) if per_prompt else float("nan")


def distribution_scores(classifier, videos, prompts, reference_videos, reference_prompts=None) -> dict:
    """{'frechet_distance', 'diversity'[, 'reference_diversity', 'diversity_ratio']} for uint8 videos."""
    generated = classifier.features(videos)
    real = classifier.features(reference_videos)
    scores = {
        "frechet_distance": frechet_distance(generated, real),
        "diversity": per_prompt_diversity(generated, list(prompts)),
    }
    if reference_prompts is not None:
        scores["reference_diversity"] = per_prompt_diversity(real, list(reference_prompts))
        scores["diversity_ratio"] = scores["diversity"] / scores["reference_diversity"]
    return scores
