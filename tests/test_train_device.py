"""Device placement of the training stages, checked without a GPU.

* ``setup()`` picks ``nccl`` + ``cuda:LOCAL_RANK`` when CUDA is there (mocked: no process group
  is started), ``gloo`` + CPU otherwise or when ``MELODY_LAB_DEVICE=cpu`` says so.
* Each stage's task on the ``meta`` device: a tensor left on the CPU would fail with "not on the
  expected device"; with every model, batch and loss on ``meta``, a step runs to its first read
  of a value (``.item()``), which meta tensors refuse. A CPU-only stand-in for a second device.
* Every stage through its ``train_*`` function for 2 steps with the device forced by
  ``MELODY_LAB_DEVICE=cpu``: it trains on what ``setup()`` returned, and its checkpoint loads
  into freshly built CPU modules.
"""
import os

import pytest
import torch
import torch.distributed as dist

from melody_lab.cli import main
from melody_lab.errors import UserError
from melody_lab.train import distributed

META_READ = r"Tensor\.item\(\) cannot be called on meta tensors|Cannot copy out of meta tensor"


def _no_launch(monkeypatch, world_size=None, local_rank=None):
    for name in ("WORLD_SIZE", "LOCAL_RANK", distributed.DEVICE_ENV):
        monkeypatch.delenv(name, raising=False)
    if world_size is not None:
        monkeypatch.setenv("WORLD_SIZE", str(world_size))
    if local_rank is not None:
        monkeypatch.setenv("LOCAL_RANK", str(local_rank))


@pytest.fixture
def fake_cuda(monkeypatch):
    """CUDA reported available; ``init_process_group`` and ``set_device`` only recorded."""
    calls = {"backend": [], "set_device": []}
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "set_device", calls["set_device"].append)
    monkeypatch.setattr(dist, "init_process_group", lambda backend, **kw: calls["backend"].append(backend))
    monkeypatch.setattr(distributed, "is_distributed", lambda: False)
    return calls


def test_setup_chooses_nccl_and_the_local_rank_gpu_under_torchrun(monkeypatch, fake_cuda):
    _no_launch(monkeypatch, world_size=2, local_rank=1)
    assert distributed.setup() == torch.device("cuda", 1)
    assert fake_cuda == {"backend": ["nccl"], "set_device": [torch.device("cuda", 1)]}


def test_setup_honours_the_device_override(monkeypatch, fake_cuda):
    _no_launch(monkeypatch, world_size=2, local_rank=1)
    monkeypatch.setenv(distributed.DEVICE_ENV, "cpu")
    assert distributed.setup() == torch.device("cpu")
    assert fake_cuda == {"backend": ["gloo"], "set_device": []}
    monkeypatch.setenv(distributed.DEVICE_ENV, "cuda")  # a bare "cuda" is this rank's GPU
    assert distributed.choose_device() == torch.device("cuda", 1)
    assert distributed.choose_device("cuda:0") == torch.device("cuda", 0)  # the argument wins
    _no_launch(monkeypatch)
    assert distributed.setup() == torch.device("cuda", 0)  # one process: no group, GPU 0
    assert fake_cuda["backend"] == ["gloo"]


def test_setup_without_cuda_and_bad_overrides(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    _no_launch(monkeypatch)
    assert distributed.setup() == torch.device("cpu")
    for bad, message in (("cuda", "CUDA is not available"), ("gpu0", "unknown device"),
                         ("meta", "cpu or cuda")):
        monkeypatch.setenv(distributed.DEVICE_ENV, bad)
        with pytest.raises(UserError, match=message):
            distributed.setup()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error shown without CUDA")
def test_cli_asking_for_cuda_without_it_is_a_one_line_error(micro_corpus, tmp_path, monkeypatch,
                                                            capsys):
    monkeypatch.setenv(distributed.DEVICE_ENV, "cuda")
    assert main(["train", "codec", "--preset", "micro", "--data", str(micro_corpus), "--out",
                 str(tmp_path / "run"), "--steps", "2"]) == 2
    err = capsys.readouterr().err.strip()
    assert "CUDA is not available" in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()


# ------------------------------------------------------------------- every tensor on the device
def _assert_step_and_validation_stay_on_meta(task):
    from melody_lab.train.loop import step_generator

    for m in task.modules().values():
        assert {t.device.type for t in (*m.parameters(), *m.buffers())} == {"meta"}
    with pytest.raises((RuntimeError, NotImplementedError), match=META_READ):
        task.train_step(10, step_generator(0, 10))
    with pytest.raises((RuntimeError, NotImplementedError), match=META_READ):
        task.validate()


def test_codec_task_keeps_everything_on_its_device():
    from melody_lab.codecs import build_codec
    from melody_lab.train.codec import CodecTask, train_config

    audio = torch.randn(3, 4096) * 0.1
    task = CodecTask(build_codec("vaegan", "micro"), train_config("micro", gan_start_step=0),
                     audio, audio, device="meta")  # the GAN branch too
    _assert_step_and_validation_stay_on_meta(task)


def test_mulan_task_keeps_everything_on_its_device(micro_corpus):
    from melody_lab.data.splits import load_split
    from melody_lab.semantic import build_mulan
    from melody_lab.train.mulan import MULAN_TRAIN_PRESETS, MuLanTask

    split = load_split(micro_corpus, "valid", 16000)
    model = build_mulan("micro")
    cfg = MULAN_TRAIN_PRESETS["micro"].replace(hard_negatives=2)
    task = MuLanTask(model, cfg, split, split, 10, device="meta")
    _assert_step_and_validation_stay_on_meta(task)


def test_lm_task_keeps_everything_on_its_device():
    from melody_lab.semantic import build_lm
    from melody_lab.train.lm import LM_TRAIN_PRESETS, LMTask

    lm = build_lm("micro")
    c, g = lm.config, torch.Generator().manual_seed(0)
    cache = {"tokens": torch.randint(0, c.semantic_vocab, (6, c.max_tokens + 4), generator=g),
             "audio_codes": torch.randint(0, c.mulan_codebook_size, (6, c.mulan_levels), generator=g),
             "text_codes": torch.randint(0, c.mulan_codebook_size, (6, 2, c.mulan_levels), generator=g)}
    _assert_step_and_validation_stay_on_meta(LMTask(lm, LM_TRAIN_PRESETS["micro"], cache, cache,
                                                    10, device="meta"))


# ------------------------------------------------------------- the stages, device from setup()
def test_each_stage_trains_on_the_device_setup_returns(micro_corpus, tmp_path, monkeypatch):
    from melody_lab.train import codec, denoiser, lm, mulan
    from melody_lab.train.checkpoint import load_checkpoint
    from melody_lab.train.loop import run_training
    from melody_lab.train.stages import STAGES

    _no_launch(monkeypatch)
    monkeypatch.setenv(distributed.DEVICE_ENV, "cpu")
    chosen, seen = [], {}
    real_setup = distributed.setup
    monkeypatch.setattr(distributed, "setup", lambda *a: chosen.append(real_setup(*a)) or chosen[-1])

    def spy(task, out, loop, record=None):  # what the loop is handed, then the real loop
        seen[task.name] = task.device
        for m in task.modules().values():
            assert {p.device for p in m.parameters()} == {chosen[-1]}
        return run_training(task, out, loop, record)

    for module in (codec, mulan, lm, denoiser):
        monkeypatch.setattr(module, "run_training", spy)
    for name, stage in STAGES.items():  # codec, mulan, tokenizer, lm, denoiser
        config = stage.make_config("micro")
        stage.run(config, micro_corpus, tmp_path / name, stage.loop(config, 2, progress=False),
                  {up: tmp_path / up for up in stage.upstream})
    assert seen == {n: torch.device("cpu") for n in ("codec", "mulan", "lm", "denoiser")}
    assert len(chosen) == 4 and os.environ[distributed.DEVICE_ENV] == "cpu"
    # the checkpoints are plain safetensors: they load into freshly built CPU modules
    from melody_lab.codecs import build_codec
    from melody_lab.semantic import build_mulan

    fresh = {"codec": build_codec("vaegan", "micro")}
    load_checkpoint(tmp_path / "codec" / "ckpt-00000002", fresh)
    fresh = {"mulan": build_mulan("micro")}
    load_checkpoint(tmp_path / "mulan" / "ckpt-00000002", fresh)
    assert all(p.device.type == "cpu" for p in fresh["mulan"].parameters())
    assert (tmp_path / "lm" / "latest").read_text().strip() == "ckpt-00000002"
    assert (tmp_path / "denoiser" / "latest").read_text().strip() == "ckpt-00000002"
