"""Slow clients on 127.0.0.1 against a real ``grader serve``: the board still answers.

Each slow client sends a request line and then one header line per period, never finishing its
headers (the attack that held both of the old sync workers). Time is scaled down: a 1 s period
against a 1 s header timeout stands for the 10 s lines against the default 10 s.
"""

from __future__ import annotations

import os
import select
import socket
import sys
import threading
import time

import pytest
import requests
from lb_support import free_port, live_server

PERIOD_S = 1.0
SLOW_CLIENTS = 4
LINES = 12


def drip(port: int, closed: dict[int, int], number: int) -> None:
    """One slow client: a header line every PERIOD_S; records after how many lines it was cut."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"GET /assignments/cifar10/ HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        for line in range(LINES):
            time.sleep(PERIOD_S)
            readable, _, _ = select.select([sock], [], [], 0)
            try:
                if readable and sock.recv(4096) == b"":
                    closed[number] = line
                    return
                sock.sendall(f"X-Slow-{line}: {'x' * 20}\r\n".encode())
            except OSError:
                closed[number] = line
                return


def board_while_slow_clients_drip(port: int, base: str, *, timeout: float) -> tuple[list, dict]:
    closed: dict[int, int] = {}
    clients = [threading.Thread(target=drip, args=(port, closed, i)) for i in range(SLOW_CLIENTS)]
    for client in clients:
        client.start()
    time.sleep(PERIOD_S / 2)  # every slow client is connected and mid-headers
    answers = []
    for _ in range(3):
        try:
            answers.append(requests.get(base + "/assignments/cifar10/", timeout=timeout))
        except requests.Timeout:
            answers.append("timed out")
        time.sleep(PERIOD_S / 2)
    for client in clients:
        client.join()
    return answers, closed


def serve_command(url: str, port: int, *extra: str) -> list[str]:
    return [sys.executable, "-m", "grader.cli", "serve", "--port", str(port), "--database", url,
            "--workers", "1", *extra]  # fmt: skip


def test_the_board_answers_while_slow_clients_hold_connections(tmp_path, sqlite_url, data_dir):
    port = free_port()
    env = {**os.environ, "GRADER_DATA_DIR": str(data_dir)}
    command = serve_command(sqlite_url, port, "--threads", "2", "--header-timeout",
                            str(PERIOD_S), "--read-timeout", str(PERIOD_S))  # fmt: skip
    with live_server(command, port, env, tmp_path / "server.log") as base:
        answers, closed = board_while_slow_clients_drip(port, base, timeout=10)
    assert [getattr(a, "status_code", a) for a in answers] == [200, 200, 200]
    # more slow clients than threads, and every one was cut off long before its headers ended
    assert sorted(closed) == list(range(SLOW_CLIENTS)) and max(closed.values()) < LINES // 2
    assert "Traceback" not in (tmp_path / "server.log").read_text()


@pytest.mark.slow
def test_sync_workers_are_starved_by_the_same_clients(tmp_path, sqlite_url, data_dir):
    """The control: gunicorn's sync worker, as ``grader serve`` ran before, stops answering."""
    port = free_port()
    env = {**os.environ, "GRADER_DATA_DIR": str(data_dir), "GRADER_DATABASE_URL": sqlite_url}
    command = [sys.executable, "-m", "gunicorn", "--workers", "1", "--worker-class", "sync",
               "--bind", f"127.0.0.1:{port}", "leaderboard:create_app()"]  # fmt: skip
    with live_server(command, port, env, tmp_path / "server.log") as base:
        answers, _closed = board_while_slow_clients_drip(port, base, timeout=PERIOD_S * 2)
    assert "timed out" in answers
