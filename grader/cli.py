"""The ``grader`` command line: a click group whose commands load lazily.

Each command lives in ``grader/commands/<name>.py`` and only forwards to a library function; the
group imports a command's module only when that command runs, so ``grader score`` never pays for
torch or Flask.
"""

from __future__ import annotations

import importlib

import click

# command name -> "module:attribute" of its click command
COMMANDS: dict[str, str] = {
    "score": "grader.commands.score:score",
    "validate": "grader.commands.validate:validate",
    "sample-submission": "grader.commands.validate:sample_submission",
    "fetch-data": "grader.commands.fetch_data:fetch_data",
    "check": "grader.commands.check:check",
    "sanity": "grader.commands.sanity:sanity",
    "train": "grader.commands.train:train",
    "reproduce": "grader.commands.reproduce:reproduce",
    "serve": "grader.commands.serve:serve",
    "roster": "grader.commands.roster:roster",
    "submit": "grader.commands.submit:submit",
    "worker": "grader.commands.worker:worker",
    "init-db": "grader.commands.serve:init_db",
}


# the optional extra (pyproject.toml) that provides each heavy top-level package
EXTRA_OF_PACKAGE: dict[str, str] = {
    **dict.fromkeys(("torch", "torchvision", "safetensors", "pyseccomp"), "models"),
    **dict.fromkeys(
        ("flask", "flask_wtf", "gunicorn", "sqlalchemy", "psycopg", "celery", "redis"), "server"
    ),
}


def missing_extra_command(name: str, package: str, extra: str) -> click.Command:
    """A stand-in for command ``name`` whose extra is not installed: it says what to install."""

    @click.command(name, context_settings={"ignore_unknown_options": True})
    @click.argument("args", nargs=-1, type=click.UNPROCESSED)
    def command(args: tuple[str, ...]) -> None:
        raise click.ClickException(
            f"grader {name} needs the [{extra}] extra ({package} is not installed): "
            f"pip install 'grader[{extra}]'"
        )

    command.help = f"(needs the [{extra}] extra: pip install 'grader[{extra}]')"
    return command


class LazyGroup(click.Group):
    """A group that imports each subcommand's module on first use."""

    def __init__(self, *args, lazy_commands: dict[str, str], **kwargs):
        super().__init__(*args, **kwargs)
        self.lazy_commands = lazy_commands

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(self.lazy_commands))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy_commands:
            module_name, attr = self.lazy_commands[cmd_name].split(":")
            try:
                module = importlib.import_module(module_name)
            except ModuleNotFoundError as exc:
                package = (exc.name or "").split(".")[0]
                if package in EXTRA_OF_PACKAGE:
                    return missing_extra_command(cmd_name, package, EXTRA_OF_PACKAGE[package])
                if exc.name != module_name:
                    raise
                return None  # a command whose module is not installed in this build
            return getattr(module, attr)
        return super().get_command(ctx, cmd_name)


@click.group(cls=LazyGroup, lazy_commands=COMMANDS)
@click.version_option(package_name="grader")
def main() -> None:
    """Grade deep-learning assignments: predictions, models, leaderboard."""


if __name__ == "__main__":
    main()
