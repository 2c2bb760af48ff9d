"""Batched sampling and streamed evaluation: a video's noise is its own (batch size and rank count do not
change it), evaluators collect arrays or a folder of mp4s, and two torchrun ranks (gloo) sharing a row
score exactly what one process does."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from harness.diffusion.sampling import NoiseSource, sample_causal
from harness.errors import ConfigError
from harness.evaluation.streaming import ArrayCollector, FolderCollector, FolderEvaluator, collector_for
from harness.io.video import SampleMeta, read_sidecar, read_video
from harness.parallel import ranks as dist_h
from harness.pipelines.batches import PerVideoNoise, VideoBatch, my_batches, plan_batches, video_seed
from harness.worlds.toy import ToyWorld

from .conftest import ROOT

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# -- evaluators and a world for the pipeline runs (imported by the torchrun ranks too) ----------------


def _stats(means: np.ndarray) -> dict[str, float]:
    """Scores that see every video and its place: the mean, and an index-weighted mean."""
    weights = np.arange(1, len(means) + 1, dtype=np.float64)
    return {"brightness": float(means.mean()), "ordered": float((weights * means).sum() / weights.sum())}


class ArrayMeans:
    """An array evaluator over per-video mean brightness."""

    name = "array-means"
    dimensions = ("brightness", "ordered")

    def score(self, videos: np.ndarray, prompts: list[str]) -> dict[str, float]:
        assert len(videos) == len(prompts)
        return _stats(np.asarray(videos, dtype=np.float64).reshape(len(videos), -1).mean(1) / 255.0)

    def aggregate(self, raw) -> dict[str, float]:
        return {"total": raw["brightness"]}


class FolderMeans(ArrayMeans):
    """The same scores read back from a folder of mp4s, in sidecar index order."""

    name = "folder-means"
    fps = 8.0

    def check(self) -> None:
        pass

    def score_folder(self, folder: Path, output_dir: Path) -> dict[str, float]:
        paths = sorted(folder.glob("*.mp4"), key=lambda p: read_sidecar(p).extra["index"])
        assert [read_sidecar(p).extra["index"] for p in paths] == list(range(len(paths)))
        output_dir.mkdir(parents=True, exist_ok=True)
        means = np.array([read_video(p).astype(np.float64).mean() / 255.0 for p in paths])
        return {**_stats(means), "videos": float(len(paths))}


class StreamWorld(ToyWorld):
    """The toy world with a many-step causal model for the diffusion-forcing row and a chosen evaluator."""

    def __init__(self, evaluator: str = "arrays", **kwargs) -> None:
        super().__init__(**kwargs)
        self.kind = evaluator

    def diffusion_forcing(self, stages=None):
        return self.causal_init().eval()

    def evaluator(self, stages=None):
        return FolderMeans() if self.kind == "folder" else ArrayMeans()


# -- per-video noise and the batch plan --------------------------------------------------------------------


def test_a_videos_noise_does_not_depend_on_the_videos_batched_with_it():
    whole = PerVideoNoise.of_videos(3, range(4))
    tail = PerVideoNoise.of_videos(3, range(2, 4))
    assert torch.equal(whole.normal((4, 5, 2))[2:], tail.normal((2, 5, 2)))
    assert torch.equal(whole.spawn().normal((4, 3))[2:], tail.spawn().normal((2, 3)))  # per-chunk streams too
    assert torch.equal(whole.uniform((4,))[2:], tail.uniform((2,)))
    alone = PerVideoNoise.of_videos(3, [1])  # one video: exactly a plain source seeded with its seed
    assert torch.equal(alone.normal((1, 6)), NoiseSource(video_seed(3, 1)).normal((1, 6)))
    assert video_seed(3, 1) != video_seed(3, 2) and video_seed(3, 1) != video_seed(4, 1)
    with pytest.raises(ValueError, match=r"a draw of shape \[3, 6\] is not one row per video \(4 videos\)"):
        whole.normal((3, 6))
    with pytest.raises(ValueError, match="a shared integer draw has no per-video meaning"):
        whole.integer(0, 10)


def test_sampled_videos_are_the_same_whatever_the_batch_split():
    world = ToyWorld(frames=4)
    model = world.causal_init().eval()
    prompts = ["a red circle", "a blue square", "a red circle", "a green triangle"]
    whole = sample_causal(world, model, prompts, "2", PerVideoNoise.of_videos(0, range(4))).videos
    parts = [sample_causal(world, model, prompts[i : i + 1], "2", PerVideoNoise.of_videos(0, [i])).videos
             for i in range(4)]
    torch.testing.assert_close(torch.cat(parts), whole, rtol=1e-5, atol=1e-5)
    trace = sample_causal(world, model, prompts[:2], "2", PerVideoNoise.of_videos(0, range(2)), trace=True).trace
    assert trace.meta["seed"] == "per-video noise of sample seed 0, videos 0..1"  # JSON-able in the trace file


def test_the_wan_teacher_draws_per_video_noise_too():
    pytest.importorskip("diffusers")
    from harness.worlds.wan.backbone import WanBackbone
    from harness.worlds.wan.world import WanWorld

    world = WanWorld("tiny")
    torch.manual_seed(0)
    teacher = WanBackbone(world.backbone_config).eval()
    prompts = ["a", "b", "c"]
    whole = world.sample_teacher(teacher, prompts, PerVideoNoise.of_videos(5, range(3)), steps=2)
    last = world.sample_teacher(teacher, prompts[2:], PerVideoNoise.of_videos(5, [2]), steps=2)
    torch.testing.assert_close(whole[2:], last, rtol=1e-5, atol=1e-5)
    plain = world.sample_teacher(teacher, prompts[:1], 5, steps=2)  # an int seed still works
    assert plain.shape == whole[:1].shape


def test_ranks_take_contiguous_whole_batches_that_cover_the_row_once(monkeypatch):
    assert [b.videos for b in plan_batches(5, 2)] == [range(2), range(2, 4), range(4, 5)]
    monkeypatch.setenv("WORLD_SIZE", "2")
    mine = []
    for r in (0, 1):
        monkeypatch.setenv("RANK", str(r))
        mine.append([b.number for b in my_batches(5, 2)])
    assert mine == [[0], [1, 2]]
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "0")
    assert my_batches(2, 2) == []  # more ranks than batches: some have nothing to do
    assert VideoBatch(1, range(2, 4)).seed(0) != VideoBatch(2, range(4, 6)).seed(0)
    with pytest.raises(ConfigError, match="sample_batch must be a whole number >= 1, got 0"):
        plan_batches(4, 0)


def test_share_splits_work_items_into_near_equal_contiguous_parts(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "3")
    parts = []
    for r in range(3):
        monkeypatch.setenv("RANK", str(r))
        parts.append(dist_h.share(10))
    assert parts == [range(3), range(3, 6), range(6, 10)]


# -- collectors ----------------------------------------------------------------------------------------


def _metas(indices) -> list[SampleMeta]:
    return [SampleMeta(prompt=f"p{i}", seed=0, method="m", schedule="2", nfe=3, extra={"index": i}) for i in indices]


def test_the_evaluator_chooses_arrays_or_a_folder(tmp_path):
    assert isinstance(FolderMeans(), FolderEvaluator) and not isinstance(ArrayMeans(), FolderEvaluator)
    assert isinstance(collector_for(FolderMeans(), tmp_path), FolderCollector)
    assert isinstance(collector_for(ArrayMeans(), tmp_path), ArrayCollector)


def test_a_folder_collector_writes_each_batch_and_a_resumed_attempt_skips_what_is_there(tmp_path):
    videos = np.random.default_rng(0).integers(0, 255, (2, 3, 8, 8, 3), dtype=np.uint8)
    first = FolderCollector(tmp_path, FolderMeans())
    first.prepare()
    first.add(videos, _metas([4, 5]), [4, 5])
    first.close()
    (tmp_path / "videos" / ".000006.123.tmp.mp4").write_bytes(b"half")  # a killed rank's partial file
    assert read_sidecar(tmp_path / "videos" / "000005.mp4").prompt == "p5"
    again = FolderCollector(tmp_path, FolderMeans())
    again.prepare()  # rank 0 of the next attempt: markers and partial files go, finished videos stay
    assert sorted(p.name for p in (tmp_path / "videos").iterdir()) == [
        "000004.json", "000004.mp4", "000005.json", "000005.mp4"]
    assert again.done([4, 5]) and not again.done([5, 6])


def test_an_array_collector_scores_every_ranks_videos_in_index_order(tmp_path, monkeypatch):
    videos = np.stack([np.full((3, 4, 4, 3), 10 * i, np.uint8) for i in range(4)])
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    follower = ArrayCollector(tmp_path, ArrayMeans())
    follower.add(videos[2:], _metas([2, 3]), [2, 3])
    follower.close()  # its shard and its marker
    monkeypatch.setenv("RANK", "0")
    lead = ArrayCollector(tmp_path, ArrayMeans())
    lead.add(videos[:2], _metas([0, 1]), [0, 1])
    lead.close()
    lead.wait()
    assert np.array_equal(lead.videos(), videos)
    scores = lead.score([f"p{i}" for i in range(4)], lambda: None)
    assert scores == pytest.approx({**_stats(np.arange(4) * 10 / 255.0), "total": 15 / 255.0})


# -- pipeline runs -------------------------------------------------------------------------------------

STUDY = """\
name: {name}
allow_modules: [tests.test_streaming_eval]
pipeline:
  class_path: harness.pipelines.DistillAndEvaluate
  init_args:
    world: {{class_path: tests.test_streaming_eval.StreamWorld, init_args: {{frames: 4, evaluator: {evaluator}}}}}
    method: {{class_path: methods.dmd.DMD, init_args: {{train: {{steps: 1, batch_size: 2}}}}}}
    num_videos: 4
    videos_per_prompt: 2
    num_reference: 0
    save_videos: 3
    sample_batch: {batch}{extra}
seeds: [0]
grid:
{rows}"""
ROWS = {
    "df": """  - variant:
      df: {class_path: harness.pipelines.DiffusionForcingReference, steps: 2}
    steps: {"2": {}}
""",
    "real": """  - variant:
      real: {class_path: harness.pipelines.RealDataReference}
    steps: {"-": {}}
""",
    "dmd": """  - variant:
      dmd: {}
    steps: {"2": {schedule: "2"}}
""",
}


def _run_rows(tmp_path: Path, name: str, evaluator: str = "arrays", batch: int = 2, extra: str = "",
              rows: tuple[str, ...] = ("df", "real")) -> dict:
    """Run those rows in process (under torchrun where ``extra`` asks for 2 GPUs): row → outcome."""
    from harness.engine.executors import InProcessExecutor
    from harness.engine.runner import RunJob
    from harness.engine.study import load_study

    path = tmp_path / f"{name}.yaml"
    grid = "".join(ROWS[r] for r in rows)
    path.write_text(STUDY.format(name=name, evaluator=evaluator, batch=batch, extra=extra, rows=grid))
    study = load_study(path)
    jobs = [RunJob(spec, str(tmp_path / name / "runs"), str(tmp_path / name / "cache"), study.tracker_config)
            for spec in study.runs]
    outcomes = list(InProcessExecutor().wait(jobs))
    for outcome in outcomes:
        assert outcome.state == "complete", outcome.reason
    return {o.name.split("/")[0]: o for o in outcomes}


def _run_folder(tmp_path: Path, name: str, row: str) -> Path:
    (folder,) = [p for p in (tmp_path / name / "runs" / name).iterdir()
                 if json.loads((p / "result.json").read_text())["metrics"]["method"] == row]
    return folder


def test_rows_score_the_same_whatever_the_batch_size_and_keep_their_first_samples(tmp_path):
    one = _run_rows(tmp_path, "one", batch=1, rows=("df", "real", "dmd"))
    four = _run_rows(tmp_path, "four", batch=4, rows=("df", "real", "dmd"))
    for row, nfe in (("df", 6), ("dmd", 6)):  # 2 chunks × (2 steps + the cache pass)
        got, want = one[row].metrics, four[row].metrics
        assert got["nfe"] == want["nfe"] == nfe and got["schedule"] == "2"
        for key in ("total", "brightness", "ordered"):
            assert got[key] == pytest.approx(want[key], abs=1e-6), (row, key)
    assert one["real"].metrics["latency_s"] == 0.0 and one["real"].metrics["nfe"] == 0
    trace = _run_folder(tmp_path, "four", "dmd") / "samples"
    assert (trace / "x0_cosine.json").is_file()  # the trace of the first eval videos, on rank 0
    folder = _run_folder(tmp_path, "four", "diffusion_forcing")
    assert not (folder / "eval").exists()  # scratch, removed once scored
    saved = sorted(p.name for p in (folder / "samples").glob("*.mp4"))
    assert saved == ["sample_000.mp4", "sample_001.mp4", "sample_002.mp4"]
    meta = read_sidecar(folder / "samples" / "sample_002.mp4")
    assert (meta.prompt, meta.nfe, meta.extra["index"]) == ("a blue square", 6, 2)


def test_a_folder_evaluator_scores_the_mp4s_written_batch_by_batch(tmp_path):
    rows = _run_rows(tmp_path, "folder", evaluator="folder")
    arrays = _run_rows(tmp_path, "arrays")
    got, want = rows["df"].metrics, arrays["df"].metrics
    assert got["videos"] == 4.0
    assert got["brightness"] == pytest.approx(want["brightness"], abs=1e-2)  # through yuv420p H.264 and back
    assert not (_run_folder(tmp_path, "folder", "diffusion_forcing") / "eval").exists()


@pytest.mark.slow
def test_two_torchrun_ranks_sharing_the_rows_score_exactly_what_one_process_does(tmp_path, monkeypatch):
    """One run per row and evaluator kind asks for 2 GPUs: torchrun, 2 CPU ranks (gloo), one batch each."""
    from harness.engine import executors

    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    launches, launch = [], executors.run_under_torchrun
    monkeypatch.setattr(executors, "run_under_torchrun", lambda job, n, *a: launches.append(n) or launch(job, n, *a))
    # the folder kind on both rows (mp4s from two ranks, a reference row); the array kind on one row
    for kind, rows in (("arrays", ("df",)), ("folder", ("df", "real"))):
        two = _run_rows(tmp_path, f"two_{kind}", kind, extra="\n    resources: {gpus: 2}", rows=rows)
        one = _run_rows(tmp_path, f"one_{kind}", kind, rows=rows)
        for row in rows:
            scores = {k: v for k, v in two[row].metrics.items() if k != "latency_s"}
            assert scores == {k: v for k, v in one[row].metrics.items() if k != "latency_s"}, (kind, row)
        folder = _run_folder(tmp_path, f"two_{kind}", "diffusion_forcing")
        saved = sorted(p.name for p in (folder / "samples").glob("*.mp4"))
        assert saved == ["sample_000.mp4", "sample_001.mp4", "sample_002.mp4"]  # index 2 came from rank 1
        assert not (folder / "eval").exists()
    assert launches == [2, 2, 2]


def test_reference_rows_draw_their_noise_from_the_study_seed(tmp_path):
    """Seeds of a reference row are sampling draws, not copies of one run."""
    from harness.engine.executors import InProcessExecutor
    from harness.engine.runner import RunJob
    from harness.engine.study import load_study

    path = tmp_path / "seeds.yaml"
    text = STUDY.format(name="seeds", evaluator="arrays", batch=2, extra="", rows=ROWS["df"])
    path.write_text(text.replace("seeds: [0]", "seeds: [0, 1]"))
    study = load_study(path)
    jobs = [RunJob(spec, str(tmp_path / "runs"), str(tmp_path / "cache"), study.tracker_config) for spec in study.runs]
    outcomes = list(InProcessExecutor().wait(jobs))
    assert [o.state for o in outcomes] == ["complete", "complete"]
    first, second = (o.metrics["brightness"] for o in outcomes)
    assert first != second
