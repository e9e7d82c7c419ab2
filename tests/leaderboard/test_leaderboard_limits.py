"""Limits that hold: rate limits shared by every server process (database or Redis), keyed on the
client address and the whole token, bounded, also on sign-in; every malformed upload a 4xx."""

from __future__ import annotations

import io
import zipfile

import pytest
from lb_support import Submitter, enrol
from sqlalchemy import func, select

from grader.assignment import ModelSpec
from leaderboard.db import session_scope
from leaderboard.models import RateHit
from leaderboard.ratelimit import DatabaseRateLimiter, RedisRateLimiter, client_key


def _get(client, path="/api/v1/leaderboard", token=None, address="10.0.0.1"):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return client.get(path, headers=headers, environ_base={"REMOTE_ADDR": address}).status_code


def test_the_limit_is_shared_by_every_server_process(make_app, tmp_path):
    from leaderboard.server import init_database

    url = f"sqlite:///{tmp_path / 'shared.db'}"
    init_database(database=url)
    first = make_app(database_url=url, config={"API_RATE_LIMIT": 5}).test_client()
    second = make_app(database_url=url, config={"API_RATE_LIMIT": 5}).test_client()
    codes = [_get(c) for c in (first, second, first, second, first, second, second)]
    assert codes == [200] * 5 + [429, 429]
    assert _get(first, address="10.0.0.2") == 200  # another client is not affected


def test_distinct_guesses_from_one_address_are_limited(make_app):
    client = make_app(config={"API_RATE_LIMIT": 5}).test_client()
    codes = [_get(client, "/api/v1/submissions", token=f"guess-{i}") for i in range(7)]
    assert codes == [401] * 5 + [429, 429]


def test_the_whole_token_is_a_key_from_any_address(make_app):
    client = make_app(config={"API_RATE_LIMIT": 3}).test_client()
    shared_prefix = "x" * 16
    codes = [_get(client, token=shared_prefix + "a", address=f"10.1.0.{i}") for i in range(4)]
    assert codes == [200, 200, 200, 429]  # one token from four addresses: limited as one
    assert _get(client, token=shared_prefix + "b", address="10.2.0.1") == 200  # not a prefix key


def test_sign_in_is_limited(make_app):
    app = make_app(config={"LOGIN_RATE_LIMIT": 3})
    client = app.test_client()
    people = enrol(app)
    codes = [
        client.post("/instructor/login", data={"token": f"wrong-{i}"}).status_code for i in range(4)
    ]
    assert codes == [401, 401, 401, 429]
    assert client.post("/login", data={"token": "wrong"}).status_code == 429  # same address
    other = client.post(
        "/login", data={"token": people.students["alice"]}, environ_base={"REMOTE_ADDR": "10.9.9.9"}
    )
    assert other.status_code == 302
    assert client.get("/instructor/login").status_code == 200  # the form itself is not limited


def test_database_counters_stay_bounded(make_app, monkeypatch):
    import leaderboard.ratelimit as ratelimit

    app = make_app()
    limiter = DatabaseRateLimiter(app.extensions["leaderboard_engine"])
    now = [1_000_000.0]
    monkeypatch.setattr(ratelimit.time, "time", lambda: now[0])
    for i in range(200):
        assert limiter.hit([client_key("ip", f"10.0.{i // 250}.{i % 250}")], 5, 60) is None
    with session_scope(app.extensions["leaderboard_engine"]) as session:
        assert session.scalar(select(func.count()).select_from(RateHit)) == 200
    for minutes in (1, 2, 3):
        now[0] += 60
        limiter.hit([client_key("ip", f"late-{minutes}")], 5, 60)
    with session_scope(app.extensions["leaderboard_engine"]) as session:
        windows = set(session.scalars(select(RateHit.window)))
        assert session.scalar(select(func.count()).select_from(RateHit)) <= 2
    assert max(windows) - min(windows) <= 1  # at most the current and the previous window
    assert not [v for v in vars(limiter).values() if isinstance(v, dict)]  # no per-key memory


def test_redis_counters_are_shared_and_expire(redis_url, make_app):
    import redis

    first, second = RedisRateLimiter(redis_url), RedisRateLimiter(redis_url)
    key = client_key("token", "some-token")
    results = [limiter.hit([key], 3, 60) for limiter in (first, second, first, second)]
    assert results[:3] == [None, None, None] and results[3] > 0
    client = redis.Redis.from_url(redis_url)
    names = client.keys(f"grader:rate:{key}:*")
    assert names and all(0 < client.ttl(n) <= 120 for n in names)
    app = make_app(config={"REDIS_URL": redis_url, "API_RATE_LIMIT": 2})
    assert isinstance(app.extensions["rate_limiter"], RedisRateLimiter)
    test_client = app.test_client()
    assert [_get(test_client, address="10.7.7.7") for _ in range(3)] == [200, 200, 429]


# --- malformed uploads ---------------------------------------------------------------------------


@pytest.fixture
def model_actions(make_app):
    app = make_app(model=ModelSpec(input_shape=(3, 32, 32)))
    return Submitter(app.test_client(), enrol(app))


def _zip(files: dict[str, bytes], compression=zipfile.ZIP_STORED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=compression) as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def _bad_crc() -> bytes:
    data = bytearray(_zip({"model.py": b"import torch\n" * 50, "model.pt": b"w" * 100}))
    index = data.find(b"import torch")
    data[index] ^= 0xFF  # the stored bytes no longer match the recorded CRC
    return bytes(data)


def _compression(method: int) -> bytes:
    data = bytearray(_zip({"model.py": b"x = 1\n", "model.pt": b"w"}))
    for signature, offset in ((b"PK\x03\x04", 8), (b"PK\x01\x02", 10)):
        start = 0
        while (start := data.find(signature, start)) != -1:
            data[start + offset : start + offset + 2] = method.to_bytes(2, "little")
            start += 4
    return bytes(data)


def _encrypted() -> bytes:
    data = bytearray(_zip({"model.py": b"x = 1\n", "model.pt": b"w"}))
    for signature, offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        start = 0
        while (start := data.find(signature, start)) != -1:
            data[start + offset] |= 0x1
            start += 4
    return bytes(data)


MALFORMED = {
    "not a zip": (b"this is not an archive", "not a valid .zip archive"),
    "truncated": (_zip({"model.py": b"x" * 5000, "model.pt": b"w"})[:300], "not a valid .zip"),
    "bad CRC": (_bad_crc(), "model.py is damaged"),
    "nested archive": (
        _zip({"inner.zip": _zip({"model.py": b"", "model.pt": b""}), "model.py": b""}),
        "nested archives are not accepted",
    ),
    "nested tarball": (_zip({"model.py": b"", "w.tar.gz": b"x"}), "nested archives"),
    "unsupported compression": (_compression(97), "uses a compression this server cannot read"),
    "encrypted": (_encrypted(), "is encrypted"),
    "path traversal": (_zip({"../../x.py": b"", "model.pt": b""}), "found model.pt, x.py"),
    "bad name": (_zip({"model.py": b"", "run.sh": b""}), "'run.sh' is not allowed"),
    "no weights": (_zip({"model.py": b"x = 1\n"}), "no weights file"),
    "zip bomb": (
        _zip({"model.py": b"x = 1\n", "model.pt": b"\0" * 9_000_000}, zipfile.ZIP_DEFLATED),
        "over the limit",
    ),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_every_malformed_upload_is_a_4xx_with_a_message(model_actions, case):
    content, message = MALFORMED[case]
    response = model_actions.api("alice", content, name="model.zip")
    assert response.status_code == 422, (case, response.get_data(as_text=True)[:300])
    errors = " ".join(response.get_json()["errors"])
    assert message in errors, errors
    assert "Traceback" not in errors


def test_a_zip_for_a_predictions_assignment_is_refused(make_app):
    app = make_app()
    actions = Submitter(app.test_client(), enrol(app))
    response = actions.api("alice", _zip({"predictions.csv": b"Id,Category\n"}), name="p.zip")
    assert (
        response.status_code == 422 and "one predictions .csv" in response.get_json()["errors"][0]
    )
    binary = actions.api("alice", b"\x00\x01PK\x03\x04" * 100, name="predictions.csv")
    assert binary.status_code == 422
