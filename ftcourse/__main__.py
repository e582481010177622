"""Command line: `python -m ftcourse doctor [--profile NAME]`.

Exit status: 0 when the profile can run here; 2 with one `error: <message>` line on stderr when it
cannot (an unknown name, a profile this machine does not fit, a model it cannot load), see
`ftcourse.errors`.
"""

import argparse
import sys

from ftcourse.errors import report_errors


def main(argv: list[str] | None = None) -> int:
    """Run a course command and return its exit status."""
    parser = argparse.ArgumentParser(prog="ftcourse")
    sub = parser.add_subparsers(dest="command", required=True)
    doc = sub.add_parser(
        "doctor", help="print versions, device, bf16/4-bit support and the profile"
    )
    doc.add_argument("--profile", help="check a named profile instead of the automatic choice")
    args = parser.parse_args(argv)
    return report_errors(lambda: doctor(args.profile))


def doctor(profile_name: str | None) -> int:
    """Print the environment report, then refuse a profile this machine cannot run."""
    from ftcourse.doctor import report
    from ftcourse.profiles import ensure_available, ensure_fits

    rep = report(profile_name)
    print(rep)
    ensure_fits(rep.profile)
    ensure_available(rep.profile)
    return 0


if __name__ == "__main__":
    sys.exit(main())
