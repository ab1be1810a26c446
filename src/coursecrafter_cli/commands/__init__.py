"""Subcommands of ``coursecrafter``; see :mod:`coursecrafter_cli.main`."""
