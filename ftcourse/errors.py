"""The one error type the course raises for bad input or an unusable setup, and how commands show it.

The command-line entry points (`python -m ftcourse doctor`, `python -m ftcourse.train`) answer a
`CourseError` with one `error: <message>` line on stderr and exit status 2 (`EXIT_BAD_INPUT`, the
status argparse gives a bad command line too), without a traceback. Any other exception is a bug
and keeps its traceback.
"""

import sys
from collections.abc import Callable

EXIT_BAD_INPUT = 2


class CourseError(Exception):
    """A problem the learner can fix; the message says what happened and what to do."""


def report_errors(command: Callable[[], int]) -> int:
    """Run a command-line command; a `CourseError` becomes `error: <message>` and status 2."""
    try:
        return command()
    except CourseError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
