"""``python -m coursecrafter_cli`` runs the ``coursecrafter`` command."""

from coursecrafter_cli.main import run

if __name__ == "__main__":  # pragma: no cover
    run()
