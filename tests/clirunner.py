"""`cogrl` run in-process as a test sees it: (exit code, stdout, stderr). Importable as `clirunner`."""

from __future__ import annotations

import sys

from cogrl.cli import main


def run_cli(args: list[str], capsys, monkeypatch) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["cogrl", *args])
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = exc.code or 0
    captured = capsys.readouterr()
    return code, captured.out, captured.err
