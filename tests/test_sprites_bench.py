"""sprites-bench: exact detection on clean renders, each corruption hits its own dimension, real
videos score highest and noise / static grey lowest, aggregation, distribution scores, classifier I/O."""

import json

import numpy as np
import pytest

from harness.errors import CheckpointError, ConfigError
from harness.worlds.sprites import corruptions
from harness.worlds.sprites.classifier import (
    CONFIG_FILE,
    WEIGHTS_FILE,
    ClassifierConfig,
    load_classifier,
    train_classifier,
)
from harness.worlds.sprites.data import SpritesData
from harness.worlds.sprites.detect import Detector
from harness.worlds.sprites.distribution import frechet_distance, per_prompt_diversity
from harness.worlds.sprites.evaluator import SpritesBench, noise_floor
from harness.worlds.sprites.physics import fit_trajectories
from harness.worlds.sprites.scoring import SCORING_TABLE, aggregate, normalize
from harness.worlds.sprites.world_config import SpritesConfig


@pytest.fixture(scope="module")
def data():
    return SpritesData(SpritesConfig())


@pytest.fixture(scope="module")
def real(data):
    return data.render(48, 3, split="eval")


@pytest.fixture(scope="module")
def bench(data):
    return SpritesBench(data.cfg)


def _cases(data, real):
    r, st, v = data.renderer, real.states, real.videos
    return {
        "blur": corruptions.blur(v, 1.0),
        "flicker": corruptions.flicker(v, 12.0),
        "jitter": corruptions.jitter(r, st, 2),
        "recolor": corruptions.recolor(r, st),
        "drop_second": corruptions.drop_second(r, st),
        "switch_background": corruptions.switch_background(r, st),
        "noise": corruptions.pure_noise(v.shape),
        "grey": corruptions.static_grey(v.shape),
    }


@pytest.fixture(scope="module")
def scored(data, real, bench):
    cases = {"real": real.videos, **_cases(data, real)}
    return {name: normalize(bench.score(videos, real.prompts)) for name, videos in cases.items()}


def test_detection_is_exact_on_clean_frames(data, real):
    det = Detector(data.cfg)(real.videos)
    st = real.states
    for i in range(len(st.present)):
        for o in np.nonzero(st.present[i])[0]:
            c = st.color[i, o]
            assert det.present[i, c].all()
            assert (det.shape[i, c] == st.shape[i, o]).all()
            assert np.array_equal(det.top_left[i, c], st.top_left[i, o].astype(float))
    assert det.present.sum() == st.present.sum() * data.cfg.frames  # nothing else is found


def test_trails_leave_detection_exact_and_real_videos_perfect():
    """Trail pixels are never taken for their object, and the background dimensions do not count them."""
    cfg = SpritesConfig(trail=2, speed_max=3)
    real = SpritesData(cfg).render(32, 5, split="eval")
    det = Detector(cfg)(real.videos)
    st = real.states
    for i, o in zip(*np.nonzero(st.present)):
        assert (det.shape[i, st.color[i, o]] == st.shape[i, o]).all()
        assert np.array_equal(det.top_left[i, st.color[i, o]], st.top_left[i, o].astype(float))
    background = (real.videos == SpritesData(cfg).renderer.backgrounds[st.background][:, None]).all(-1)
    assert (det.object_region | background).all()  # every trail pixel is in an object's region
    scores = SpritesBench(cfg).score(real.videos, real.prompts)
    assert all(scores[d] == pytest.approx(1.0, abs=1e-6) for d in SCORING_TABLE), scores


def test_physics_fit_is_exact_on_clean_trajectories_and_not_on_jittered_ones(data, real):
    st, travel = real.states, data.cfg.travel
    tracks = st.top_left[st.present].astype(float)
    observed = np.ones(tracks.shape[:2], dtype=bool)
    clean = fit_trajectories(tracks, observed, travel, data.cfg.speed_max + 1.0)
    assert np.all(clean.rms == 0) and np.array_equal(
        clean.velocity, st.velocity[st.present][:, 0].astype(float)
    )
    shaken = tracks + np.random.default_rng(0).choice([-2.0, 2.0], size=tracks.shape)
    assert np.median(fit_trajectories(shaken, observed, travel, 4.0).rms) > 1.0


def test_real_videos_score_perfectly(scored):
    assert all(value == pytest.approx(1.0, abs=1e-6) for value in scored["real"].values()), scored["real"]


OWN_DIMENSION = {
    "blur": "imaging_quality",
    "flicker": "temporal_flickering",
    "jitter": "motion_smoothness",
    "recolor": "color",
    "drop_second": "multiple_objects",
    "switch_background": "background_consistency",
}


@pytest.mark.parametrize("case, dimension", OWN_DIMENSION.items())
def test_each_corruption_lowers_its_own_dimension_most(scored, case, dimension):
    drops = {d: scored["real"][d] - scored[case][d] for d in SCORING_TABLE}
    assert max(drops, key=drops.get) == dimension, drops
    assert drops[dimension] > 0.04


def test_noise_and_grey_score_lowest(scored):
    totals = {name: aggregate_normalized(norm)["total"] for name, norm in scored.items()}
    ranked = sorted(totals, key=totals.get)
    assert set(ranked[:2]) == {"noise", "grey"}, totals
    assert ranked[-1] == "real" and totals["real"] == pytest.approx(100.0)
    assert totals["noise"] < 5 and totals["grey"] < 50
    assert max(scored["noise"].values()) < 0.05  # the table's minimum is the chance floor


def aggregate_normalized(norm):
    raw = {d: s.min + norm[d] * (s.max - s.min) for d, s in SCORING_TABLE.items()}
    return aggregate(raw)


def test_scoring_table_minimum_is_the_noise_floor():
    floor = noise_floor(n=32)
    for dim, scale in SCORING_TABLE.items():
        assert abs(floor[dim] - scale.min) < 0.03, (dim, floor[dim], scale.min)


def test_aggregation_follows_vbench_formula():
    raw = {d: s.max for d, s in SCORING_TABLE.items()}
    raw["temporal_flickering"] = 0.665 + 0.5 * (1 - 0.665)  # normalised 0.5
    raw["dynamic_degree"] = 0.0  # weight 0.5
    raw["color"] = 0.25
    quality = (4 + 0.5 + 0) / 5.5
    semantic = (3 + 0.25) / 4
    scores = aggregate(raw)
    assert scores["quality"] == pytest.approx(100 * quality)
    assert scores["semantic"] == pytest.approx(100 * semantic)
    assert scores["total"] == pytest.approx(100 * (4 * quality + semantic) / 5)
    del raw["color"]
    with pytest.raises(ConfigError, match="sprites-bench score: dimension 'color' is missing"):
        aggregate(raw)
    raw["color"] = float("nan")
    with pytest.raises(ConfigError, match="dimension 'color' has non-finite value"):
        aggregate(raw)


def test_evaluate_returns_details_and_refuses_bad_input(bench, real):
    result = bench.evaluate(real.videos[:4], real.prompts[:4])
    assert result.label == "sprites-bench" and result.scores["total"] == pytest.approx(100.0)
    first = result.per_video[0]
    assert first["prompt"] == real.prompts[0] and first["object_class"] == 1.0
    assert {o["color"] for o in first["objects"]} == {o.split()[1] for o in real.prompts[0].split(" and ")}
    assert "sprites-bench/total" in result.summary()
    with pytest.raises(ConfigError, match=r"videos must be uint8 \[N, T, 32, 32, 3\]"):
        bench.score(real.videos[:2].astype(np.float32), real.prompts[:2])
    with pytest.raises(ConfigError, match="2 videos but 1 prompts"):
        bench.score(real.videos[:2], real.prompts[:1])
    with pytest.raises(ConfigError, match="unknown word 'pink'"):
        bench.score(real.videos[:1], ["a pink circle moving left"])
    single = [p for p in real.prompts if " and " not in p][:2]
    with pytest.raises(ConfigError, match="multiple_objects"):
        bench.evaluate(real.videos[:2], single)


def test_frechet_distance_values():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(4000, 3))
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-8)
    assert frechet_distance(a, a + np.array([3.0, 0.0, 4.0])) == pytest.approx(25.0, rel=1e-6)
    # Two 1-D Gaussians: (mu1 - mu2)^2 + (s1 - s2)^2
    x, y = rng.normal(0, 1, size=(20000, 1)), rng.normal(1, 2, size=(20000, 1))
    assert frechet_distance(x, y) == pytest.approx(1.0 + 1.0, rel=0.05)
    with pytest.raises(ConfigError, match=">= 2 samples"):
        frechet_distance(a[:1], a)


def test_per_prompt_diversity_sees_mode_collapse():
    feats = np.array([[0.0, 0.0], [3.0, 4.0], [1.0, 1.0], [1.0, 1.0], [9.0, 9.0]])
    prompts = ["p", "p", "q", "q", "single"]
    assert per_prompt_diversity(feats, prompts) == pytest.approx((5.0 + 0.0) / 2)
    assert np.isnan(per_prompt_diversity(feats[:1], ["p"]))


@pytest.fixture(scope="module")
def classifier_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("classifier")
    metrics = train_classifier(
        out, ClassifierConfig(steps=12, batch_size=16, width=8, feature_dim=16), SpritesConfig()
    )
    heads = {f"eval_accuracy_{h}" for h in ("color", "shape", "direction", "count")}
    assert set(metrics) == {"train_loss", "train_seconds", "eval_accuracy", *heads}
    assert all(0.0 <= metrics[k] <= 1.0 for k in heads)
    return out


def test_classifier_round_trip_and_distribution_scores(classifier_dir, data, real):
    model = load_classifier(classifier_dir, SpritesConfig())
    meta = json.loads((classifier_dir / CONFIG_FILE).read_text())
    assert meta["world"]["resolution"] == 32 and meta["classifier"]["feature_dim"] == 16
    assert model.features(real.videos).shape == (48, 16)
    bench = SpritesBench(data.cfg, classifier=model)
    other_real = data.render_prompts(real.prompts, 99).videos
    same = bench.evaluate(other_real, real.prompts, real.videos, real.prompts).distribution
    noisy = bench.evaluate(corruptions.pure_noise(real.videos.shape), real.prompts, real.videos).distribution
    assert set(same) == {"frechet_distance", "diversity", "reference_diversity", "diversity_ratio"}
    assert same["frechet_distance"] < noisy["frechet_distance"]


def test_classifier_load_errors_name_the_file(classifier_dir, tmp_path):
    with pytest.raises(CheckpointError, match=f"{CONFIG_FILE}: missing"):
        load_classifier(tmp_path)
    with pytest.raises(CheckpointError, match="sprites.resolution=32"):
        load_classifier(classifier_dir, SpritesConfig(resolution=16))
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / CONFIG_FILE).write_text((classifier_dir / CONFIG_FILE).read_text())
    (broken / WEIGHTS_FILE).write_bytes(b"not a safetensors file")
    with pytest.raises(CheckpointError, match=f"{WEIGHTS_FILE}: unreadable"):
        load_classifier(broken)
    meta = json.loads((classifier_dir / CONFIG_FILE).read_text())
    meta["classifier"]["width"] = 12
    (broken / CONFIG_FILE).write_text(json.dumps(meta))
    (broken / WEIGHTS_FILE).write_bytes((classifier_dir / WEIGHTS_FILE).read_bytes())
    with pytest.raises(CheckpointError, match="has shape"):
        load_classifier(broken)
    (broken / CONFIG_FILE).write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_classifier(broken)
