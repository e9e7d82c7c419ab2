"""A grading worker on any machine: Celery delivers job ids, the server's API does the rest.

``grader worker --server URL --token WORKER_TOKEN --broker redis://...`` needs no database URL
and no shared disk. For each delivered job it claims a new attempt (``POST
/api/v1/worker/jobs/<id>/claim``), fetches the submission's files, grades them with
:class:`leaderboard.grading.SubmissionGrader` (heartbeating while it runs) and posts the typed
result back with the attempt's key. The server stores it once; a redelivered message after a
crash is a new attempt, and a post from an older one is refused.
"""

from __future__ import annotations

import logging
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import requests

from grader.assignment import SpecError, parse_assignment
from grader.grading.evidence import Evidence
from grader.grading.status import GradeStatus
from leaderboard.broker import TASK_NAME, celery_app
from leaderboard.grading import GradingConfig, SubmissionGrader
from leaderboard.jobs import LEASE_S
from leaderboard.protocol import Claim, WorkerMessageError
from leaderboard.status import JobQueue
from leaderboard.uploads import UploadError, unzip_stored
from leaderboard.worker import worker_name

log = logging.getLogger(__name__)
MAX_DOWNLOAD_BYTES = 256 * 1024 * 1024


class WorkerApiError(RuntimeError):
    """The server refused the worker or could not be reached; the message says why."""


@dataclass
class RemoteConfig:
    """How a remote worker runs."""

    server: str
    token: str
    broker: str
    queues: tuple[JobQueue, ...] = (JobQueue.CPU,)
    grading: GradingConfig = field(default_factory=GradingConfig)
    visibility_timeout_s: float | None = None
    """Seconds before an unacknowledged job goes to another worker (default: above every served
    assignment's time limit)."""
    owner: str = field(default_factory=worker_name)
    timeout_s: float = 60.0
    """Seconds to wait for each answer of the server."""


class ServerClient:
    """The worker side of ``/api/v1/worker``."""

    def __init__(self, server: str, token: str, *, timeout_s: float = 60.0):
        self.base = server.rstrip("/") + "/api/v1/worker"
        self.timeout_s = timeout_s
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Bearer {token}"

    def _call(self, method: str, path: str, **kwargs) -> requests.Response:
        url = self.base + path
        response = self.http.request(method, url, timeout=self.timeout_s, **kwargs)
        if response.status_code == 401:
            raise WorkerApiError(
                f"{url} refused the worker token (HTTP {response.status_code}); create one with "
                "`grader roster worker` on the server"
            )
        if response.status_code >= 500:  # the server failed: the task is tried again later
            raise requests.HTTPError(f"{url} answered HTTP {response.status_code}")
        return response

    def hello(self) -> dict:
        """The course as the server serves it (and a check of the token)."""
        try:
            response = self._call("GET", "/hello")
        except requests.RequestException as exc:
            raise WorkerApiError(f"cannot reach {self.base}/hello: {exc}") from None
        if response.status_code != 200:
            raise WorkerApiError(f"{self.base}/hello answered HTTP {response.status_code}")
        return response.json()

    def claim(self, job_id: int, owner: str) -> Claim | str:
        """A new attempt of ``job_id``, or the server's reason for refusing one."""
        response = self._call("POST", f"/jobs/{job_id}/claim", json={"owner": owner})
        if response.status_code == 200:
            return Claim.from_json(response.json())
        return _reason(response)

    def files(self, claim: Claim) -> dict[str, bytes]:
        """The submission's files."""
        response = self._call(
            "POST", f"/jobs/{claim.job_id}/files", json=_attempt(claim), stream=True
        )
        if response.status_code != 200:
            raise WorkerApiError(f"files of job {claim.job_id}: {_reason(response)}")
        content = response.raw.read(MAX_DOWNLOAD_BYTES + 1, decode_content=True)
        if len(content) > MAX_DOWNLOAD_BYTES:
            raise WorkerApiError(f"files of job {claim.job_id} exceed {MAX_DOWNLOAD_BYTES:,} bytes")
        return unzip_stored(content, limit=MAX_DOWNLOAD_BYTES)

    def heartbeat(self, claim: Claim) -> bool:
        """Extend the attempt's lease; False once the job is another attempt's."""
        response = self._call("POST", f"/jobs/{claim.job_id}/heartbeat", json=_attempt(claim))
        return response.status_code == 200

    def post_result(self, claim: Claim, evidence: Evidence) -> str:
        """Post the evidence; the server's word for what became of it (stored, duplicate, ...)."""
        body = {**_attempt(claim), "evidence": evidence.to_record()}
        response = self._call("POST", f"/jobs/{claim.job_id}/result", json=body)
        return response.json().get("outcome", f"HTTP {response.status_code}")


def _attempt(claim: Claim) -> dict:
    return {"attempt": claim.attempt, "key": claim.key}


def _reason(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return f"HTTP {response.status_code}"
    return str(body.get("outcome") or body.get("errors") or f"HTTP {response.status_code}")


def run_remote_job(
    client: ServerClient, grader: SubmissionGrader, job_id: int, *, owner: str
) -> str:
    """Claim, fetch, grade and post one job; return what the server did with the result."""
    claim = client.claim(job_id, owner)
    if not isinstance(claim, Claim):
        log.info("job %s not run: %s", job_id, claim)
        return claim
    log.info("job %s attempt %s: %s", job_id, claim.attempt, claim.assignment)
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(LEASE_S / 3):
            if not client.heartbeat(claim):
                log.warning("job %s: taken over by another attempt", job_id)
                return

    thread = threading.Thread(target=beat, name=f"heartbeat-{job_id}", daemon=True)
    thread.start()
    try:
        try:
            files = client.files(claim)
            spec = parse_assignment(claim.spec)
        except (UploadError, SpecError, WorkerMessageError, WorkerApiError) as exc:
            message = f"the worker could not start the job: {exc}"
            result = Evidence(claim.kind, GradeStatus.ERROR, message)
        else:
            result = grader.grade(claim.kind, files, spec, claim.payload)
    finally:
        stop.set()
        thread.join()
    outcome = client.post_result(claim, result)
    log.info("job %s attempt %s: %s, %s", job_id, claim.attempt, result.status.value, outcome)
    return outcome


def visibility_timeout(course: dict, config: RemoteConfig) -> float:
    """Seconds before a silent job is redelivered: the option, else above every job limit."""
    if config.visibility_timeout_s is not None:
        return config.visibility_timeout_s
    limits = [a.get("time_limit_s") or 0 for a in course.get("assignments", [])]
    return max([600.0, *(2 * float(limit) + 300 for limit in limits)])


def start_line(course: dict, config: RemoteConfig, visibility_s: float) -> str:
    """What the worker prints when it starts: who it is, its queues and assignments."""
    queues = {q.value for q in config.queues}
    models = [a for a in course.get("assignments", []) if a.get("kind") in ("model", "ops")]
    served = [a["assignment"] for a in models if a.get("queue") in queues]
    others = [f"{a['assignment']} ({a['queue']})" for a in models if a.get("queue") not in queues]
    gpu = f", GPU {config.grading.gpu.index}" if config.grading.gpu is not None else ""
    line = (
        f"grader worker {config.owner}: queue(s) {', '.join(sorted(queues))}{gpu}; "
        f"server {config.server}; assignments {', '.join(served) or 'none'}; "
        f"redelivery after {visibility_s:.0f} s"
    )
    if others:
        line += f"; not served here: {', '.join(others)}"
    return line


def served_datasets(course: dict, config: RemoteConfig) -> list[str]:
    """Datasets of the model assignments on this worker's queues (their boxes start at once)."""
    queues = {q.value for q in config.queues}
    found = [
        a.get("dataset")
        for a in course.get("assignments", [])
        if a.get("kind") == "model" and a.get("queue") in queues
    ]
    return list(dict.fromkeys(d for d in found if isinstance(d, str)))


def make_worker_app(config: RemoteConfig, run: Callable[[int], str], visibility_s: float):
    """The Celery app of this worker with its one task, ``grader.grade_job``."""
    app = celery_app(config.broker, visibility_timeout_s=visibility_s)

    @app.task(name=TASK_NAME, bind=True, max_retries=5)
    def grade_job(task, job_id: int) -> str:
        try:
            return run(int(job_id))
        except requests.RequestException as exc:  # the server is away: try again later
            raise task.retry(exc=exc, countdown=10) from None

    return app


def start_remote_worker(config: RemoteConfig, echo: Callable[[str], None] = print) -> None:
    """Check the server and token, print the start line, then consume jobs until stopped."""
    client = ServerClient(config.server, config.token, timeout_s=config.timeout_s)
    course = client.hello()
    visibility_s = visibility_timeout(course, config)
    grader = SubmissionGrader(config.grading)
    grader.warm(served_datasets(course, config))
    app = make_worker_app(
        config,
        lambda job_id: run_remote_job(client, grader, job_id, owner=config.owner),
        visibility_s,
    )
    echo(start_line(course, config, visibility_s))
    from celery.exceptions import SecurityWarning

    # The sandbox needs root to start its boxes; the jobs run as unprivileged uids inside them,
    # and the worker accepts only JSON messages (no pickle), which is what the warning is about.
    warnings.filterwarnings("ignore", category=SecurityWarning)
    try:
        app.worker_main(
            argv=[
                "worker",
                "--pool=solo",
                "--concurrency=1",
                f"--queues={','.join(q.value for q in config.queues)}",
                "--loglevel=INFO",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                f"--hostname={config.owner.replace(':', '-')}@%h",
            ]
        )
    finally:
        grader.close()
