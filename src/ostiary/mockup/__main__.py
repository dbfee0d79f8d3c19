"""Command line of the mock upstream: ``python -m ostiary.mockup --port 9100 ...``.

:func:`add_arguments` and :func:`settings_from_args` are public so the main ``ostiary``
CLI (``ostiary mock-upstream``) offers exactly the same flags.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

# The flags live next to the settings they build, in the server module; the main
# ``ostiary`` CLI imports them from there too.
from ostiary.mockup.server import add_arguments, run, settings_from_args

__all__ = ["add_arguments", "main", "settings_from_args"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ostiary.mockup",
        description="Fake OpenAI / Azure OpenAI / Anthropic upstream for tests and benchmarks.",
    )
    add_arguments(parser)
    args = parser.parse_args(argv)
    run(args.host, args.port, settings_from_args(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
