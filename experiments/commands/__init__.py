"""Subcommands of `dreamgym`, one module each (see experiments/cli.py)."""
