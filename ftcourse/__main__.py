"""Command line: `python -m ftcourse doctor [--profile NAME]` and `python -m ftcourse export ...`.

    python -m ftcourse export ADAPTER_DIR --merged DIR [--gguf FILE] [--gguf-type f32|f16|q8_0]

Exit status: 0 when the command did its job; 2 with one `error: <message>` line on stderr when it
cannot (an unknown profile, a profile this machine does not fit, a model it cannot load, a missing
or incomplete adapter folder, a folder it cannot write, a missing optional package), see
`ftcourse.errors`.
"""

import argparse
import sys

from ftcourse.errors import report_errors
from ftcourse.export import GGUF_TYPES
from ftcourse.runfile import ADAPTER_METHODS


def main(argv: list[str] | None = None) -> int:
    """Run a course command and return its exit status."""
    parser = argparse.ArgumentParser(prog="ftcourse")
    sub = parser.add_subparsers(dest="command", required=True)
    doc = sub.add_parser(
        "doctor", help="print versions, device, bf16/4-bit support and the profile"
    )
    doc.add_argument("--profile", help="check a named profile instead of the automatic choice")
    _export_parser(sub)
    args = parser.parse_args(argv)
    if args.command == "export":
        if args.gguf_type and not args.gguf:
            parser.error("--gguf-type needs --gguf FILE")
        return report_errors(lambda: export(args))
    return report_errors(lambda: doctor(args.profile))


def _export_parser(sub) -> None:
    """The `export` subcommand's arguments."""
    exp = sub.add_parser(
        "export", help="merge a LoRA adapter into its base; optionally write GGUF for llama.cpp"
    )
    exp.add_argument("adapter_dir", help="a saved adapter folder, e.g. outputs/adapters/polite")
    exp.add_argument("--merged", required=True, metavar="DIR", help="where the merged model goes")
    exp.add_argument(
        "--gguf", metavar="FILE", help="also write a GGUF file (needs the export extra)"
    )
    exp.add_argument("--gguf-type", choices=GGUF_TYPES, help="GGUF weight type (default f32)")
    exp.add_argument(
        "--method",
        choices=ADAPTER_METHODS,
        default="qlora",
        help="how the adapter was trained: qlora merges into the dequantized 4-bit base it learned "
        "on, lora into the original weights (default qlora)",
    )
    exp.add_argument("--profile", help="the profile to load the base with (default: the adapter's)")


def doctor(profile_name: str | None) -> int:
    """Print the environment report, then refuse a profile this machine cannot run."""
    from ftcourse.doctor import report
    from ftcourse.profiles import ensure_available, ensure_fits

    rep = report(profile_name)
    print(rep)
    ensure_fits(rep.profile)
    ensure_available(rep.profile)
    return 0


def export(args: argparse.Namespace) -> int:
    """Merge the adapter (and convert it to GGUF), then list what was written with sizes."""
    from pathlib import Path

    from ftcourse.adapters import format_bytes
    from ftcourse.export import export as run_export
    from ftcourse.export import read_adapter

    gguf_type = args.gguf_type or "f32"
    written = run_export(
        args.adapter_dir, args.merged, args.gguf, gguf_type, args.method, args.profile
    )
    base = read_adapter(args.adapter_dir).get("base_model_name_or_path")
    print(f"merged {args.adapter_dir} into its base {base} ({args.method}); wrote:")
    for item in written:
        kind = f"  (GGUF, {gguf_type})" if args.gguf and item.path == Path(args.gguf) else ""
        print(f"  {format_bytes(item.size):>9}  {item.path}{kind}")
    print(f"load it with AutoModelForCausalLM.from_pretrained({str(args.merged)!r})", end="")
    print(f", or serve it with llama-server -m {args.gguf}" if args.gguf else "")
    return 0


if __name__ == "__main__":
    sys.exit(main())
