"""``grader reproduce``: rerun the course experiments (``grader reproduce --list`` names them).

One subcommand per module of ``reference.experiments``; its options are made from the fields of
the experiment's ``Config``, and every option left out takes the value of the chosen ``--scale``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import click

from grader.commands.options import settings_options


class ExperimentGroup(click.Group):
    """Subcommands made from the experiment registry, each imported when it is used."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        from reference.experiments import EXPERIMENTS

        return list(EXPERIMENTS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        from reference.experiments import EXPERIMENTS, get_experiment

        if cmd_name not in EXPERIMENTS:
            return None
        return experiment_command(cmd_name, get_experiment(cmd_name))


@click.group(cls=ExperimentGroup, invoke_without_command=True)
@click.option("--list", "show_list", is_flag=True, help="Name every experiment, one line each.")
@click.pass_context
def reproduce(ctx: click.Context, show_list: bool) -> None:
    """Reproduce the reference experiments: labelled figures and a JSON of every curve."""
    if show_list:
        from reference.experiments import EXPERIMENTS

        for name, info in EXPERIMENTS.items():
            click.echo(f"{name:15s} {info.summary} [{info.course}]")
    elif ctx.invoked_subcommand is None:
        click.echo(ctx.get_help())


def _by_scale(scales: dict[str, Any], field: dataclasses.Field) -> str:
    """The default of ``field`` at each scale, in one phrase (one value when they agree)."""
    none_text = field.metadata.get("default_text") or "none"
    values = {scale: getattr(config, field.name) for scale, config in scales.items()}
    shown = {scale: none_text if v is None else _show(v) for scale, v in values.items()}
    if len(set(shown.values())) == 1:
        return next(iter(shown.values()))
    return ", ".join(f"{scale} {text}" for scale, text in shown.items())


def _show(value: Any) -> str:
    if isinstance(value, tuple):
        return ",".join(f"{v:g}" for v in value)
    return f"{value:g}" if isinstance(value, float) else str(value)


def experiment_command(name: str, module: Any) -> click.Command:
    """The click command that runs experiment ``name`` (its module ``module``)."""
    from reference.experiments.common import SCALE_NAMES

    fields = dataclasses.fields(module.Config)
    by_scale = {field.name: _by_scale(module.SCALES, field) for field in fields}
    summary = (module.__doc__ or name).strip().split("\n\n")[0].replace("\n", " ")

    @click.command(name, help=summary)
    @click.option(
        "--scale",
        type=click.Choice(SCALE_NAMES),
        default="small",
        show_default=True,
        help="tiny: seconds (tests); small: minutes on a CPU; full: the published size (GPU).",
    )
    @settings_options(module.Config, default_help=by_scale)
    def command(scale: str, **options: Any) -> None:
        from grader.data import DataError
        from reference.experiments.loop import ExperimentError

        overrides = {key: value for key, value in options.items() if value is not None}
        config = dataclasses.replace(module.SCALES[scale], **overrides)
        try:
            document = module.run(config)
        except ExperimentError as exc:
            raise click.UsageError(str(exc)) from None
        except DataError as exc:
            raise click.ClickException(str(exc)) from None
        out = Path(config.out_dir)
        for line in module.summary_lines(document):
            click.echo(line)
        prov = document["provenance"]
        click.echo(f"wall time {prov['wall_s']:.1f} s on {prov['device']}")
        for file_name in document["files"].values():
            click.echo(f"wrote {out / file_name}")
        from reference.experiments.common import results_name

        click.echo(f"wrote {out / results_name(name)}")

    return command
