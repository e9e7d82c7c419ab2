"""``grader worker``: grade queued models and ``ops.py`` files, beside the server or on any
machine."""

from __future__ import annotations

from pathlib import Path

import click

from grader.commands.options import retired_option


@click.command()
@click.option(
    "--server",
    default=None,
    envvar="GRADER_SERVER",
    help="Server URL: run as a remote worker (with --token and --broker) [GRADER_SERVER].",
)
@click.option("--token", default=None, envvar="GRADER_WORKER_TOKEN", help="Worker token "
              "(grader roster worker) [GRADER_WORKER_TOKEN].")  # fmt: skip
@click.option("--broker", default=None, envvar="GRADER_BROKER_URL", help="Redis URL of the "
              "server's broker [GRADER_BROKER_URL].")  # fmt: skip
@click.option(
    "--queue",
    "queues",
    multiple=True,
    type=click.Choice(["cpu", "gpu"]),
    help="Queue(s) to take jobs from [cpu for a remote worker; every queue for the embedded one].",
)
@click.option(
    "--gpu", "gpu_index", default=0, show_default=True, help="GPU of a --queue gpu worker."
)
@click.option("--visibility-timeout", type=float, default=None, help="Seconds before a job of a "
              "silent worker is redelivered [above every assignment's time limit].")  # fmt: skip
@click.option("--database", default=None, help="Database URL of the embedded worker "
              "[GRADER_DATABASE_URL].")  # fmt: skip
@click.option("--lease", "lease_s", default=60.0, show_default=True, help="Lease seconds.")
@click.option("--poll", "poll_s", default=1.0, show_default=True,
              help="Seconds between claims while idle (a new job wakes it at once).")  # fmt: skip
@click.option("--once", is_flag=True, help="Exit when the queue is empty (embedded worker).")
@click.option("--max-jobs", type=int, default=None, help="Exit after this many jobs (embedded).")
@retired_option("--slot", why="each worker process takes its own range of box uids")
@click.option(
    "--pre-fork/--no-pre-fork",
    default=True,
    show_default=True,
    help="Keep a warm pre-forked box between jobs (else a fresh box per job).",
)
@click.option(
    "--data-dir", type=click.Path(path_type=Path), default=None, help="Data [GRADER_DATA_DIR]."
)
def worker(
    server, token, broker, queues, gpu_index, visibility_timeout, database, lease_s, poll_s,
    once, max_jobs, pre_fork, data_dir,
) -> None:  # fmt: skip
    """Grade queued jobs until stopped (Ctrl-C).

    Without --server: the embedded worker, claiming jobs from the database beside `grader serve`.
    With --server, --token and --broker: a worker on any machine (no database, no shared disk)
    that takes jobs from the broker and talks to the server's API.
    """
    import logging

    from grader.sandbox.gpu import GpuUnavailable, find_gpu
    from leaderboard.grading import GradingConfig
    from leaderboard.status import JobQueue

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    chosen = tuple(JobQueue(q) for q in queues)
    gpu = None
    if JobQueue.GPU in chosen:
        try:
            gpu = find_gpu(gpu_index)
        except GpuUnavailable as exc:
            raise click.ClickException(f"cannot serve the gpu queue: {exc}") from None
    grading = GradingConfig(data_dir=data_dir, pre_fork=pre_fork, gpu=gpu)
    if server is None:
        if token or broker:
            raise click.UsageError("--token and --broker need --server (the remote worker)")
        _embedded(database, grading, chosen, lease_s, poll_s, once, max_jobs)
        return
    if not token or not broker:
        raise click.UsageError(
            "a remote worker needs --server, --token (from `grader roster worker`) and --broker"
        )
    from leaderboard.remote import RemoteConfig, WorkerApiError, start_remote_worker

    config = RemoteConfig(
        server=server,
        token=token,
        broker=broker,
        queues=chosen or (JobQueue.CPU,),
        grading=grading,
        visibility_timeout_s=visibility_timeout,
    )
    try:
        start_remote_worker(config, echo=click.echo)
    except WorkerApiError as exc:
        raise click.ClickException(str(exc)) from None
    except KeyboardInterrupt:
        raise SystemExit(130) from None


def _embedded(database, grading, queues, lease_s, poll_s, once, max_jobs) -> None:
    from leaderboard.db import database_url
    from leaderboard.status import JobQueue
    from leaderboard.worker import WorkerConfig, run_worker

    config = WorkerConfig(
        database_url=database_url(database),
        grading=grading,
        lease_s=lease_s,
        poll_s=poll_s,
        once=once,
        max_jobs=max_jobs,
        queues=queues or tuple(JobQueue),
    )
    served = ", ".join(q.value for q in config.queues)
    click.echo(
        f"grader worker {config.owner}: embedded, queue(s) {served}, database "
        f"{config.database_url.split('@')[-1]}"
    )
    try:
        count = run_worker(config)
    except KeyboardInterrupt:
        raise SystemExit(130) from None
    click.echo(f"processed {count} job(s)")
