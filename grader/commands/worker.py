"""``grader worker``: grade queued model submissions."""

from __future__ import annotations

from pathlib import Path

import click


@click.command()
@click.option("--database", default=None, help="Database URL [GRADER_DATABASE_URL].")
@click.option("--lease", "lease_s", default=60.0, show_default=True, help="Lease seconds.")
@click.option("--poll", "poll_s", default=1.0, show_default=True, help="Idle poll seconds.")
@click.option("--once", is_flag=True, help="Exit when the queue is empty.")
@click.option("--max-jobs", type=int, default=None, help="Exit after this many jobs.")
@click.option(
    "--slot", default=0, hidden=True, help="Ignored: box uids come from a per-process range."
)
@click.option(
    "--data-dir", type=click.Path(path_type=Path), default=None, help="Data [GRADER_DATA_DIR]."
)
@click.option("--allow-test-jobs", is_flag=True, hidden=True)
def worker(database, lease_s, poll_s, once, max_jobs, slot, data_dir, allow_test_jobs) -> None:
    """Claim and grade queued jobs until stopped (Ctrl-C)."""
    import logging

    from leaderboard.db import database_url
    from leaderboard.worker import WorkerConfig, run_worker

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    config = WorkerConfig(
        database_url=database_url(database),
        lease_s=lease_s,
        poll_s=poll_s,
        once=once,
        max_jobs=max_jobs,
        data_dir=data_dir,
        allow_test_jobs=allow_test_jobs,
    )
    try:
        count = run_worker(config)
    except KeyboardInterrupt:
        raise SystemExit(130) from None
    click.echo(f"processed {count} job(s)")
