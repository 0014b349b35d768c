"""The local web demo (``melody-lab demo``), driven through Gradio's own client on a loopback port."""
from __future__ import annotations

import re
import sys

import numpy as np
import pytest
import soundfile as sf

from melody_lab.errors import UserError


def test_missing_extra_is_a_one_line_error(monkeypatch):
    from melody_lab.commands import demo

    monkeypatch.setitem(sys.modules, "gradio", None)  # `import gradio` now raises ImportError
    with pytest.raises(UserError, match=re.escape("pip install -e '.[demo]'")):
        demo._gradio()


def test_cli_reports_missing_extra(monkeypatch, capsys):
    from melody_lab.cli import main

    monkeypatch.setitem(sys.modules, "gradio", None)
    assert main(["demo", "--port", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "demo" in err and "Traceback" not in err


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    pytest.importorskip("gradio", reason="the 'demo' extra is not installed (pip install -e '.[demo]')")
    pytest.importorskip("gradio_client", reason="the 'demo' extra is not installed (pip install -e '.[demo]')")
    from gradio_client import Client

    from melody_lab.commands.demo import DemoSession, serve

    session = DemoSession("tiny", out_dir=tmp_path_factory.mktemp("demo"))
    app, url = serve(session, port=0, block=False)
    assert url.startswith("http://127.0.0.1:")
    try:
        yield Client(url, verbose=False), url
    finally:
        app.close()


def _ask(client, mode="text", prompt="a slow chorale on organ", audio=None, duration=1.5,
         start=0.5, end=1.0, steps=3, schedule="linear", guidance=2.5, seed=0):
    return client.predict(mode, prompt, audio, duration, start, end, steps, schedule, guidance, seed,
                          api_name="/generate")


def test_all_four_jobs_through_the_client(server):
    from gradio_client import handle_file

    client, _ = server
    wav, png, summary = _ask(client, duration=1.5, seed=3)
    audio, sr = sf.read(wav)
    assert sr == 16000 and audio.shape == (24000,) and np.abs(audio).max() > 1e-3
    assert open(png, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    assert re.search(r"1\.50 s of audio in [\d.]+ s \(mulan .*diffusion .*decode .*\); real-time factor [\d.]+",
                     summary)
    again, _, _ = _ask(client, duration=1.5, seed=3)  # same seed, same audio
    assert np.array_equal(sf.read(again)[0], audio)

    longer, _, summary = _ask(client, "continue", prompt="", audio=handle_file(wav), duration=1.0)
    extended, _ = sf.read(longer)
    assert extended.shape == (40000,)
    assert np.allclose(extended[:16000], audio[:16000], atol=1 / 2**15)  # the input kept (16-bit WAV)
    assert "encode" in summary

    edited, _, _ = _ask(client, "inpaint", prompt="a reel on fiddle", audio=handle_file(wav),
                        start=0.5, end=1.0)
    edited, _ = sf.read(edited)
    assert edited.shape == audio.shape and not np.allclose(edited[8000:16000], audio[8000:16000])
    assert np.allclose(edited[:8000], audio[:8000], atol=1 / 2**15)  # outside the range: kept
    assert np.allclose(edited[16000:], audio[16000:], atol=1 / 2**15)

    prompted, _, _ = _ask(client, "audio prompt", prompt="", audio=handle_file(wav), duration=1.0)
    assert sf.read(prompted)[0].shape == (16000,)


@pytest.mark.parametrize("kwargs, message", [
    (dict(prompt="   "), "the prompt is empty"),
    (dict(duration=0), "duration: seconds must lie in [0.01, 600], got 0"),
    (dict(steps=0), "steps: steps must lie in [1, 1000], got 0"),
    (dict(mode="inpaint", audio=None), "inpaint: upload an audio file first"),
])
def test_bad_input_is_the_cli_one_line_error(server, kwargs, message):
    from gradio_client.exceptions import AppError

    client, _ = server
    with pytest.raises(AppError) as info:
        _ask(client, **kwargs)
    text = str(info.value)
    assert message in text and "\n" not in text and "Traceback" not in text


def test_page_loads_nothing_from_the_internet(server):
    import httpx

    _, url = server
    html = httpx.get(url, timeout=30).text
    assert "<gradio-app" in html or "gradio" in html
    external = re.findall(r'<(?:script|link)[^>]+(?:src|href)="(https?://[^"]+)"', html)
    assert external == [], external


def test_unreadable_or_silent_upload_is_the_cli_one_line_error(server, tmp_path):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    client, _ = server
    (tmp_path / "notes.wav").write_text("not audio")
    sf.write(tmp_path / "silence.wav", np.zeros(16000, np.float32), 16000)
    for name, message in [("notes.wav", "cannot read audio file"), ("silence.wav", "is silent")]:
        with pytest.raises(AppError) as info:
            _ask(client, "continue", prompt="", audio=handle_file(str(tmp_path / name)))
        assert message in str(info.value) and "\n" not in str(info.value)
