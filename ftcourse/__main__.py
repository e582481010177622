"""Command line: `python -m ftcourse doctor [--profile NAME]`."""

import argparse
import sys

from ftcourse.errors import CourseError


def main(argv: list[str] | None = None) -> int:
    """Run a course command and return its exit status."""
    parser = argparse.ArgumentParser(prog="ftcourse")
    sub = parser.add_subparsers(dest="command", required=True)
    doc = sub.add_parser(
        "doctor", help="print versions, device, bf16/4-bit support and the profile"
    )
    doc.add_argument("--profile", help="check a named profile instead of the automatic choice")
    args = parser.parse_args(argv)
    from ftcourse.doctor import report
    from ftcourse.profiles import ensure_available

    try:
        rep = report(args.profile)
        print(rep)
        ensure_available(rep.profile)
    except CourseError as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
