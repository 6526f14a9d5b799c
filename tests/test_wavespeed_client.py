"""The WaveSpeed client against a fake server over real HTTP on 127.0.0.1.

Every case also checks: the key is in no output, error or log line, and no Authorization header
reached the upload or output host.
"""

from __future__ import annotations

import json
import logging
import threading
import time

import pytest
import torch

import _fake_wavespeed as fw
from hunyuan_custom.pipelines import schema
from hunyuan_custom.pipelines.media import video_io
from hunyuan_custom.pipelines.wavespeed import client as wavespeed
from hunyuan_custom.pipelines.wavespeed.client import Settings, WaveSpeedError, run_job

KEY = "ws-test-key-0123456789abcdef"
PARAMS = {"prompt": "a woman dancing in the rain", "negative_prompt": "blurry", "size": "1280*720",
          "guidance_scale": 7.5, "flow_shift": 13.0, "seed": 42, "enable_safety_checker": True, "subject": "woman"}
FRAMES, HEIGHT, WIDTH = 9, 48, 64


@pytest.fixture(scope="module")
def video_bytes(tmp_path_factory) -> bytes:
    ramp = torch.linspace(0, 1, FRAMES).view(FRAMES, 1, 1, 1).expand(FRAMES, HEIGHT, WIDTH, 3)
    path = video_io.write_video(tmp_path_factory.mktemp("video") / "out.mp4", ramp.contiguous(), fps=25)
    return path.read_bytes()


@pytest.fixture
def fake(video_bytes):
    with fw.FakeWaveSpeed(KEY, video_bytes) as server:
        yield server


@pytest.fixture(autouse=True)
def _env(monkeypatch, tmp_path, caplog):
    monkeypatch.setenv("WAVESPEED_API_KEY", KEY)
    monkeypatch.setenv("WAVESPEED_CONFIG_FILE", str(tmp_path / "no-config.json"))
    caplog.set_level(logging.DEBUG)


def reference() -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.rand(1, 40, 32, 3, generator=g)


def fast(fake, **overrides) -> Settings:
    values = dict(base_url=fake.base_url, timeout_s=5.0, poll_interval_s=0.01, poll_slow_s=0.03,
                  connect_timeout_s=1.0, read_timeout_s=1.0, poll_read_timeout_s=1.0, submit_read_timeout_s=1.0, backoff_base_s=0.01,
                  backoff_max_s=0.05, max_retries=5, sleep_slice_s=0.01)
    values.update(overrides)
    return Settings(**values)


class Run:
    def __init__(self):
        self.statuses: list[str] = []
        self.error: WaveSpeedError | None = None
        self.result = None


def go(fake, tmp_path, params=None, expect_error=False, **overrides) -> Run:
    run = Run()
    try:
        run.result = run_job({**PARAMS, **(params or {})}, reference(), tmp_path / "out.mp4",
                             on_status=run.statuses.append, settings=fast(fake, **overrides))
    except WaveSpeedError as exc:
        if not expect_error:
            raise
        run.error = exc
    else:
        assert not expect_error, "expected a WaveSpeedError"
    return run


def assert_clean(fake, run: Run, caplog) -> None:
    """The key went to the API only, and appears in no status, error or log line."""
    texts = run.statuses + [caplog.text]
    if run.error is not None:
        texts += [str(run.error), repr(run.error), repr(vars(run.error))]
        # Nor anywhere in the exception chain (a requests exception would hold the request's headers).
        seen, exc = [], run.error
        while exc is not None and exc not in seen:
            seen.append(exc)
            request = getattr(exc, "request", None)
            assert request is None or "Authorization" not in getattr(request, "headers", {}), type(exc)
            texts += [repr(exc), repr(vars(exc))]
            exc = exc.__cause__ or exc.__context__
    if run.result is not None:
        texts.append(repr(run.result))
    for text in texts:
        assert KEY not in text
    for r in fake.calls("cdn"):
        assert "authorization" not in r.headers, f"Authorization sent to {r.method} {r.path} on the CDN"


# ---------------------------------------------------------------------------------------------


def test_happy_path_frames_one_task_and_exact_body(fake, tmp_path, caplog):
    run = go(fake, tmp_path)
    result = run.result
    assert result.frames.shape == (FRAMES, HEIGHT, WIDTH, 3) and result.frames.dtype == torch.float32
    assert result.fps == 25.0 and result.video_path == tmp_path / "out.mp4" and result.video_path.is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mp4"]  # no partial files
    assert result.seed == 42 and result.model == "wavespeed-ai/hunyuan-custom-ref2v-720p"
    assert len(fake.tasks) == 1 and result.task_id in fake.tasks
    (submit,) = fake.submits()
    assert submit.path == "/api/v3/wavespeed-ai/hunyuan-custom-ref2v-720p"
    body = submit.json
    (media_url,) = fake.media
    assert body == {"image": media_url, "prompt": PARAMS["prompt"], "negative_prompt": "blurry", "size": "1280*720",
                    "guidance_scale": 7.5, "flow_shift": 13.0, "seed": 42, "enable_safety_checker": True}
    assert [type(body[k]) for k in ("guidance_scale", "flow_shift", "seed", "enable_safety_checker")] == [
        float, float, int, bool]
    # The uploaded reference is the PNG of the tensor; the key went with every API call.
    import io

    import numpy as np
    from PIL import Image

    png = Image.open(io.BytesIO(fake.media[media_url]))
    assert png.format == "PNG" and png.size == (32, 40)
    expected = (reference()[0] * 255).round().to(torch.uint8).numpy()
    assert np.array_equal(np.asarray(png.convert("RGB")), expected)
    assert all(r.headers.get("authorization") == f"Bearer {KEY}" for r in fake.calls("api"))
    assert [r.path.split("/")[1] for r in fake.calls("cdn")] == ["outputs"]
    # Progress: status words, elapsed time and the task id.
    assert any("processing" in s and result.task_id in s and ":" in s for s in run.statuses)
    assert "seed 42" in run.statuses[-1]
    assert_clean(fake, run, caplog)


@pytest.mark.parametrize("size, model", [("720*1280", "720p"), ("832*480", "480p"), ("480*832", "480p")])
def test_portrait_and_480p_go_to_their_endpoint(fake, tmp_path, caplog, size, model):
    run = go(fake, tmp_path, {"size": size})
    (submit,) = fake.submits()
    assert submit.path == f"/api/v3/wavespeed-ai/hunyuan-custom-ref2v-{model}"
    assert submit.json["size"] == size and run.result.model.endswith(model)
    assert_clean(fake, run, caplog)


def test_local_only_size_refused_before_any_request(fake, tmp_path):
    with pytest.raises(schema.ParameterError, match="WaveSpeed accepts 1280\\*720"):
        go(fake, tmp_path, {"size": "960*544"})
    assert fake.requests == []


def test_existing_output_is_never_overwritten(fake, tmp_path):
    (tmp_path / "out.mp4").write_bytes(b"user data")
    with pytest.raises(WaveSpeedError, match="already exists"):
        go(fake, tmp_path)
    assert fake.requests == [] and (tmp_path / "out.mp4").read_bytes() == b"user data"


def test_bad_key_is_401_with_no_task_and_no_key_in_message(fake, tmp_path, caplog, monkeypatch):
    monkeypatch.setenv("WAVESPEED_API_KEY", "ws-wrong-key-9876543210")
    run = go(fake, tmp_path, expect_error=True)
    assert run.error.reason == "auth" and run.error.http_status == 401
    assert "WAVESPEED_API_KEY" in str(run.error) and "HTTP 401" in str(run.error)
    assert "invalid or missing API key" in str(run.error)
    assert "ws-wrong-key-9876543210" not in str(run.error) + caplog.text + "".join(run.statuses)
    assert fake.tasks == {} and fake.submits() == []
    assert_clean(fake, run, caplog)


def test_key_from_the_user_config_file(fake, tmp_path, caplog, monkeypatch):
    monkeypatch.delenv("WAVESPEED_API_KEY")
    config = tmp_path / "config" / "wavespeed.json"
    config.parent.mkdir()
    config.write_text(json.dumps({"api_key": KEY}))
    monkeypatch.setenv("WAVESPEED_CONFIG_FILE", str(config))
    run = go(fake, tmp_path / "out")
    assert run.result.frames.shape[0] == FRAMES
    assert all(r.headers.get("authorization") == f"Bearer {KEY}" for r in fake.calls("api"))
    assert_clean(fake, run, caplog)


def test_missing_key_names_both_places(fake, tmp_path, monkeypatch):
    monkeypatch.delenv("WAVESPEED_API_KEY")
    with pytest.raises(Exception, match="WAVESPEED_API_KEY") as info:
        go(fake, tmp_path)
    assert "no-config.json" in str(info.value)
    assert fake.requests == []


def test_400_validation_error_shows_server_message(fake, tmp_path, caplog):
    fake.faults.submit_failures = [(400, "application/json", json.dumps(
        {"code": 400, "message": f"prompt: contains blocked words (key {KEY})"}))]
    run = go(fake, tmp_path, expect_error=True)
    assert run.error.reason == "validation" and run.error.http_status == 400
    assert "contains blocked words" in str(run.error) and "[hidden]" in str(run.error)
    assert fake.tasks == {} and len(fake.submits()) == 1
    assert_clean(fake, run, caplog)


def test_429_on_submit_waits_retry_after_then_succeeds(fake, tmp_path, caplog):
    fake.faults.submit_rate_limited = 2
    fake.faults.retry_after = "0.2"
    run = go(fake, tmp_path)
    submits = fake.submits()
    assert len(submits) == 3 and len(fake.tasks) == 1
    assert all(b.at - a.at >= 0.19 for a, b in zip(submits, submits[1:]))
    assert run.result.frames.shape[0] == FRAMES
    assert_clean(fake, run, caplog)


def test_429_forever_on_submit_is_a_rate_limit_error(fake, tmp_path, caplog):
    fake.faults.submit_rate_limited = 100
    run = go(fake, tmp_path, expect_error=True, submit_rate_limit_retries=2)
    assert run.error.reason == "rate_limit" and "HTTP 429" in str(run.error) and "minute" in str(run.error)
    assert len(fake.submits()) == 3 and fake.tasks == {}
    assert_clean(fake, run, caplog)


def test_5xx_bursts_and_html_502_on_polls_then_success(fake, tmp_path, caplog):
    fake.faults.poll_failures = [500, 503, fw.HTML_502, ("body", {"code": 500, "message": "internal"}), ("drop",)]
    fake.faults.upload_failures = [503, fw.HTML_502]
    fake.faults.download_failures = [502, 429]
    run = go(fake, tmp_path)
    assert run.result.frames.shape[0] == FRAMES
    assert len(fake.tasks) == 1 and len(fake.submits()) == 1
    assert len(fake.calls("api", "POST", "/media/upload/binary")) == 3
    assert len(fake.calls("cdn", "GET", "/outputs/")) == 3
    assert any("retrying" in s for s in run.statuses)
    assert_clean(fake, run, caplog)


def test_poll_errors_that_never_stop_give_up_with_task_id(fake, tmp_path, caplog):
    fake.faults.poll_failures = [fw.HTML_502] * 50
    run = go(fake, tmp_path, expect_error=True, max_retries=3)
    assert run.error.reason == "server_error" and run.error.http_status == 502
    assert run.error.task_id in str(run.error) and "502 Bad Gateway" in str(run.error)
    # Submitted already: the advice is the dashboard, not "try again" (that bills a second video).
    assert "may be billed" in str(run.error) and "dashboard" in str(run.error)
    assert "try again in a few minutes" not in str(run.error)
    assert len(fake.polls()) == 4
    assert_clean(fake, run, caplog)


def test_dropped_connection_on_submit_is_not_resent(fake, tmp_path, caplog):
    fake.faults.submit_drop_connection = True
    run = go(fake, tmp_path, expect_error=True)
    assert run.error.reason == "submit_uncertain" and "NOT resent" in str(run.error)
    assert len(fake.submits()) == 1 and len(fake.tasks) == 1 and fake.polls() == []
    assert_clean(fake, run, caplog)


def test_5xx_on_submit_is_not_resent(fake, tmp_path, caplog):
    fake.faults.submit_failures = [fw.HTML_502]
    run = go(fake, tmp_path, expect_error=True)
    assert run.error.reason == "submit_uncertain" and run.error.http_status == 502
    assert len(fake.submits()) == 1
    assert_clean(fake, run, caplog)


def test_wrong_base_url_says_so(fake, tmp_path, caplog):
    run = Run()
    settings = fast(fake, base_url=fake.base_url + "/not-the-api")
    with pytest.raises(WaveSpeedError) as info:
        run_job(PARAMS, reference(), tmp_path / "out.mp4", settings=settings, on_status=run.statuses.append)
    run.error = info.value
    assert info.value.reason == "not_found" and "WAVESPEED_BASE_URL" in str(info.value)
    assert fake.tasks == {}
    assert_clean(fake, run, caplog)


def test_http_200_with_error_body(fake, tmp_path, caplog):
    fake.faults.submit_error_body = {"code": 400, "message": "Invalid size for this model", "data": None}
    run = go(fake, tmp_path, expect_error=True)
    assert run.error.reason == "api_error" and run.error.code == 400
    assert "Invalid size for this model" in str(run.error) and "code 400" in str(run.error)
    assert fake.tasks == {} and len(fake.submits()) == 1
    assert_clean(fake, run, caplog)


def test_failed_task_reports_message_code_and_task_id(fake, tmp_path, caplog):
    fake.faults.statuses = ["created", "processing", "failed"]
    run = go(fake, tmp_path, expect_error=True)
    (task_id,) = fake.tasks
    text = str(run.error)
    assert run.error.reason == "failed" and run.error.task_id == task_id
    assert task_id in text and "code 1403" in text and "out of memory" in text
    assert fake.calls("cdn") == []
    assert_clean(fake, run, caplog)


def test_task_that_never_finishes_hits_the_cap(fake, tmp_path, caplog):
    fake.faults.statuses = ["processing"]
    start = time.monotonic()
    run = go(fake, tmp_path, expect_error=True, timeout_s=0.3)
    assert time.monotonic() - start < 2.0
    (task_id,) = fake.tasks
    assert run.error.reason == "timeout" and task_id in str(run.error) and "WAVESPEED_TIMEOUT_S" in str(run.error)
    assert "processing" in str(run.error) and len(fake.polls()) >= 3
    assert_clean(fake, run, caplog)


def test_completed_with_empty_outputs(fake, tmp_path, caplog):
    fake.faults.outputs_empty = True
    run = go(fake, tmp_path, expect_error=True)
    assert run.error.reason == "empty_outputs" and run.error.task_id in str(run.error)
    assert_clean(fake, run, caplog)


def test_nsfw_flag_is_an_error(fake, tmp_path, caplog):
    fake.faults.nsfw = True
    run = go(fake, tmp_path, expect_error=True)
    assert run.error.reason == "nsfw" and "safety checker" in str(run.error)
    assert fake.calls("cdn") == [] and not (tmp_path / "out.mp4").exists()
    assert_clean(fake, run, caplog)


def test_expired_output_url(fake, tmp_path, caplog):
    fake.faults.output_expired = True
    run = go(fake, tmp_path, expect_error=True)
    assert run.error.reason == "expired_output" and run.error.http_status == 403
    assert "Request has expired" in str(run.error) and "7 days" in str(run.error)
    assert list(tmp_path.iterdir()) == []  # no partial file
    assert_clean(fake, run, caplog)


def test_slow_submit_times_out_and_is_not_resent(fake, tmp_path, caplog):
    fake.faults.submit_delay_s = 2.0
    start = time.monotonic()
    run = go(fake, tmp_path, expect_error=True, submit_read_timeout_s=0.15)
    assert time.monotonic() - start < 1.5
    assert run.error.reason == "submit_uncertain" and "did not answer in time" in str(run.error)
    assert len(fake.submits()) == 1 and len(fake.tasks) == 1
    assert_clean(fake, run, caplog)


def test_slow_polls_time_out_and_are_retried(fake, tmp_path, caplog):
    fake.faults.poll_delays = [0.4, 0.4]
    run = go(fake, tmp_path, poll_read_timeout_s=0.15)
    assert run.result.frames.shape[0] == FRAMES and len(fake.tasks) == 1
    assert any("did not answer in time" in s for s in run.statuses)
    assert_clean(fake, run, caplog)


def test_a_stalled_poll_is_cut_by_the_overall_cap(fake, tmp_path, caplog):
    fake.faults.poll_delays = [5.0]
    start = time.monotonic()
    run = go(fake, tmp_path, expect_error=True, timeout_s=0.6, poll_read_timeout_s=10.0)
    assert time.monotonic() - start < 2.5
    assert run.error.reason == "timeout" and run.error.task_id in str(run.error)
    assert len(fake.tasks) == 1 and len(fake.submits()) == 1
    assert_clean(fake, run, caplog)


def test_error_code_in_http_200_poll_is_reported_with_task_id(fake, tmp_path, caplog):
    fake.faults.poll_failures = [("body", {"code": 404, "message": "prediction not found", "data": None})]
    run = go(fake, tmp_path, expect_error=True)
    assert run.error.reason == "api_error" and run.error.code == 404 and run.error.http_status == 200
    assert run.error.task_id in str(run.error) and "prediction not found" in str(run.error)
    assert len(fake.polls()) == 1
    assert_clean(fake, run, caplog)


def test_pending_and_unknown_statuses_keep_polling(fake, tmp_path, caplog):
    fake.faults.statuses = ["pending", "pending", "warming-up", "processing", "completed"]
    run = go(fake, tmp_path)
    assert len(fake.polls()) == 5 and run.result.frames.shape[0] == FRAMES
    assert any("pending" in s for s in run.statuses) and any("warming-up" in s for s in run.statuses)
    assert_clean(fake, run, caplog)


def test_unreachable_server(tmp_path, caplog):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    run = Run()
    settings = Settings(base_url=f"http://127.0.0.1:{port}", backoff_base_s=0.01, backoff_max_s=0.02,
                        max_retries=2, sleep_slice_s=0.01, connect_timeout_s=0.5)
    with pytest.raises(WaveSpeedError) as info:
        run_job(PARAMS, reference(), tmp_path / "out.mp4", settings=settings, on_status=run.statuses.append)
    assert info.value.reason == "unreachable" and f"127.0.0.1:{port}" in str(info.value)
    assert "refused" in str(info.value)
    assert KEY not in str(info.value) + caplog.text


def test_two_step_upload_puts_without_key_and_with_exact_headers(fake, tmp_path, caplog):
    fake.faults.binary_upload = False
    run = go(fake, tmp_path)
    (put,) = fake.calls("cdn", "PUT")
    assert put.headers["content-type"] == "image/png" and put.headers["x-amz-meta-origin"] == "fake"
    assert put.body.startswith(b"\x89PNG") and "authorization" not in put.headers
    assert fake.submits()[0].json["image"] in fake.media
    assert run.result.frames.shape[0] == FRAMES
    assert_clean(fake, run, caplog)


def test_two_step_upload_is_never_redirected(fake, tmp_path, caplog):
    # The presigned URL comes from WaveSpeed; a redirect would send the user's picture to another host.
    fake.faults.binary_upload = False
    fake.faults.upload_redirects = [f"{fake.cdn_url}/upload/elsewhere"]
    with pytest.raises(WaveSpeedError) as info:
        go(fake, tmp_path)
    assert info.value.reason == "upload_failed" and "redirected" in str(info.value)
    assert "not sent there" in str(info.value) and "Nothing was submitted" in str(info.value)
    (put,) = fake.calls("cdn", "PUT")  # the redirect was not followed
    assert "elsewhere" not in put.path and not fake.submits()
    assert KEY not in str(info.value) + caplog.text


def test_seed_minus_one_is_sent_and_the_server_seed_reported(fake, tmp_path, caplog):
    fake.faults.report_seed = 777
    run = go(fake, tmp_path, {"seed": -1})
    assert fake.submits()[0].json["seed"] == -1 and run.result.seed == 777
    assert "seed 777" in run.statuses[-1]
    assert_clean(fake, run, caplog)


def test_cancel_stops_polling_within_a_second_and_leaves_no_thread(fake, tmp_path):
    fake.faults.statuses = ["processing"]
    threads_before = set(threading.enumerate())
    cancel_at = time.monotonic() + 0.3

    class Stop(Exception):
        pass

    def should_cancel():
        if time.monotonic() >= cancel_at:
            raise Stop()

    settings = fast(fake, poll_interval_s=2.0, poll_slow_s=5.0, sleep_slice_s=0.2)
    with pytest.raises(Stop):
        run_job(PARAMS, reference(), tmp_path / "out.mp4", settings=settings, should_cancel=should_cancel)
    assert time.monotonic() - cancel_at < 0.5
    assert len(fake.polls()) == 1
    # The client started no thread and closed its connections: the server's per-connection
    # threads end on their own (they would block on an open keep-alive socket otherwise).
    deadline = time.monotonic() + 1.0
    while set(threading.enumerate()) - threads_before and time.monotonic() < deadline:
        time.sleep(0.02)
    assert set(threading.enumerate()) - threads_before == set()


def test_cancel_stops_a_trickling_output_download_at_once(fake, tmp_path):
    fake.faults.output_trickle_s = 0.3
    cancel_at = []

    class Stop(Exception):
        pass

    def should_cancel():
        if fake.calls("cdn", "GET", "/outputs/") and not cancel_at:
            cancel_at.append(time.monotonic() + 0.5)  # half a second into the download
        if cancel_at and time.monotonic() >= cancel_at[0]:
            raise Stop()

    with pytest.raises(Stop):
        run_job(PARAMS, reference(), tmp_path / "out.mp4", settings=fast(fake, read_timeout_s=30.0),
                should_cancel=should_cancel)
    assert time.monotonic() - cancel_at[0] < 0.5
    assert list(tmp_path.iterdir()) == []  # no partial file left


def test_the_output_download_has_an_overall_cap_whatever_the_pace(fake, tmp_path, caplog):
    fake.faults.output_trickle_s = 0.3
    start = time.monotonic()
    run = go(fake, tmp_path, expect_error=True, download_timeout_s=0.5, read_timeout_s=30.0, max_retries=1)
    assert time.monotonic() - start < 5 and "longer than 0.5 s" in str(run.error)
    assert_clean(fake, run, caplog)


def test_the_output_download_is_capped_in_size(fake, tmp_path, caplog):
    run = go(fake, tmp_path, expect_error=True, max_download_bytes=1000)
    assert run.error.reason == "bad_output" and "too large" in str(run.error)
    assert list(tmp_path.iterdir()) == []
    assert_clean(fake, run, caplog)


def test_output_redirects_stay_on_wavespeeds_hosts(fake, tmp_path, caplog):
    fake.faults.output_redirects = ["http://other.example/stolen.mp4"]
    run = go(fake, tmp_path, expect_error=True)
    assert run.error.reason == "bad_output" and "another host (other.example)" in str(run.error)
    assert_clean(fake, run, caplog)
    fake.faults.output_redirects = [f"{fake.base_url}/outputs/elsewhere.mp4"]  # the API's own host is fine
    run = go(fake, tmp_path, expect_error=True)
    assert run.error is None or run.error.reason != "bad_output"


def test_poll_interval_grows_to_at_least_five_seconds_by_default(monkeypatch):
    s = Settings()
    intervals = [s.poll_interval(i) for i in range(10)]
    assert intervals[0] == 1.0 and intervals == sorted(intervals)
    assert intervals[-1] >= 5.0 and all(x >= 5.0 for x in intervals[5:])
    monkeypatch.setenv("WAVESPEED_POLL_INTERVAL_S", "0.5")
    monkeypatch.setenv("WAVESPEED_TIMEOUT_S", "90")
    monkeypatch.setenv("WAVESPEED_BASE_URL", "http://proxy.example:8080/")
    env = Settings.from_env()
    assert (env.poll_interval_s, env.timeout_s, env.base_url) == (0.5, 90.0, "http://proxy.example:8080")
    assert env.backoff_base_s == 0.5  # a failed poll is retried no later than the next poll would come
    assert Settings.from_env(timeout_s=3.0).timeout_s == 3.0
    # Backoff grows exponentially, with jitter, under its cap.
    b = Settings(backoff_base_s=1.0, backoff_max_s=8.0)
    assert all(0.5 <= b.backoff(1) <= 1.0 for _ in range(20))
    assert all(4.0 <= b.backoff(10) <= 8.0 for _ in range(20))


def test_retry_after_parsing():
    assert wavespeed.parse_retry_after("3") == 3.0
    assert wavespeed.parse_retry_after("0.25") == 0.25
    assert wavespeed.parse_retry_after(None) is None and wavespeed.parse_retry_after("soon") is None
    date = "Wed, 21 Oct 2015 07:28:10 GMT"
    import email.utils

    now = email.utils.parsedate_to_datetime(date).timestamp() - 7
    assert wavespeed.parse_retry_after(date, now=now) == pytest.approx(7.0)


def test_key_goes_only_to_the_api_origin():
    assert wavespeed.origin("https://api.wavespeed.ai/x") == ("https", "api.wavespeed.ai", 443)
    assert wavespeed.origin("https://api.wavespeed.ai:443/y") == wavespeed.origin("https://API.wavespeed.ai")
    assert wavespeed.origin("http://api.wavespeed.ai") != wavespeed.origin("https://api.wavespeed.ai")
    client = wavespeed.WaveSpeedClient(KEY, Settings(base_url="http://127.0.0.1:9"))
    assert KEY not in repr(client) and KEY not in repr(vars(client).get("settings"))
    client.close()


def test_the_fake_server_is_strict_about_types():
    model = "wavespeed-ai/hunyuan-custom-ref2v-720p"
    good = {"image": "http://x/a.png", "prompt": "p", "negative_prompt": "", "size": "1280*720",
            "guidance_scale": 7.5, "flow_shift": 13.0, "seed": -1, "enable_safety_checker": True}
    assert fw.validate_submit(model, good, {"http://x/a.png"}) is None
    for change in ({"seed": "42"}, {"seed": 1.5}, {"guidance_scale": True}, {"guidance_scale": "7"},
                   {"enable_safety_checker": "true"}, {"size": "832*480"}, {"num_frames": 129}, {"prompt": ""},
                   {"image": "data:image/png;base64,xx"}):
        assert fw.validate_submit(model, {**good, **change}, {"http://x/a.png"}) is not None, change


def test_balance_checks_the_key_without_creating_a_task(fake):
    with wavespeed.WaveSpeedClient(KEY, fast(fake)) as client:
        assert client.balance() == 12.5
    with wavespeed.WaveSpeedClient("ws-bad", fast(fake)) as client:
        with pytest.raises(WaveSpeedError) as info:
            client.balance()
    assert info.value.reason == "auth" and fake.tasks == {}


@pytest.mark.parametrize("status, words, reason", [
    (402, "insufficient credits", "insufficient_credits"),
    (409, "refused submitting the job (HTTP 409)", "http_error"),
    (405, "WaveSpeed has no", "not_found"),
])
def test_other_http_statuses_say_what_to_do(fake, tmp_path, caplog, status, words, reason):
    fake.faults.submit_failures = [(status, "application/json", json.dumps({"code": status, "message": "nope"}))]
    run = go(fake, tmp_path, expect_error=True)
    text = str(run.error)
    assert run.error.reason == reason and run.error.http_status == status
    assert words in text and "unexpected error" not in text and "'nope'" in text
    assert run.error.summary in text and len(run.error.summary) < len(text)
    assert fake.tasks == {}
    assert_clean(fake, run, caplog)


def test_insufficient_credits_as_a_code_inside_http_200(fake, tmp_path, caplog):
    fake.faults.submit_error_body = {"code": 402, "message": "Insufficient credits"}
    run = go(fake, tmp_path, expect_error=True)
    assert run.error.reason == "insufficient_credits" and "Top up the balance" in str(run.error)
