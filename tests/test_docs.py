"""The project's own docs (docs/) keep up with the code: every setting, every REST path and every
CLI command is documented. A new one that is not fails here, naming it."""

from __future__ import annotations

from pathlib import Path

import typer.main

DOCS = Path(__file__).resolve().parents[1] / "docs"


def test_every_setting_is_in_the_configuration_reference() -> None:
    from coursecrafter_server.settings import Settings
    from coursecrafter_worker.settings import WorkerSettings

    text = (DOCS / "configuration.md").read_text()
    names = {f"COURSECRAFTER_{name.upper()}" for cls in (Settings, WorkerSettings)
             for name in cls.model_fields}
    assert len(names) > 20
    assert sorted(n for n in names if f"`{n}`" not in text) == []


def test_every_rest_path_is_in_the_rest_reference(tmp_path: Path) -> None:
    from coursecrafter_server.app import create_app
    from coursecrafter_server.settings import get_settings

    spec = create_app(get_settings(home=tmp_path, transcode_concurrency=0)).openapi()
    text = (DOCS / "rest.md").read_text()
    assert len(spec["paths"]) > 15
    missing = sorted(f"{method.upper()} {path}" for path, ops in spec["paths"].items()
                     for method in ops if f"`{method.upper()} {path}" not in text)
    assert missing == []


def test_every_cli_command_is_in_the_cli_reference() -> None:
    from coursecrafter_cli.main import app

    text = (DOCS / "cli.md").read_text()
    root = typer.main.get_command(app)

    def walk(command: object, prefix: str) -> list[str]:
        # Typer may bring its own click: duck-type the group instead of isinstance.
        if isinstance(getattr(command, "commands", None), dict):
            return [name for sub_name, sub in command.commands.items()
                    for name in walk(sub, f"{prefix} {sub_name}")]
        return [prefix]

    commands = walk(root, "coursecrafter")
    assert len(commands) > 8
    assert sorted(c for c in commands if f"`{c}" not in text) == []
