"""The ``lockgate`` command line."""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Callable, Sequence

from gateway import __version__
from gateway.auth import hash_key
from gateway.commands import experiments as experiments_command
from gateway.config.loader import ConfigError, default_config_text, load_config, load_default_config
from gateway.config.schema import Config
from loadtest.cli import add_bench_parser

EXAMPLES = """\
examples:
  lockgate serve                              serve the built-in default (model "sim-small" on the simulator)
  lockgate serve --config examples/sim.toml --port 9000
  lockgate config check examples/sim.toml     validate a config; errors name the field and line
  lockgate config hash-key                    read a key (hidden) and print the sha256 to put in [[auth.keys]]
  lockgate config default                     print the built-in default config

then, with the official SDK:
  python -c "import openai; c = openai.OpenAI(base_url='http://127.0.0.1:8000/v1', api_key='x'); \\
print(c.chat.completions.create(model='sim-small', messages=[{'role':'user','content':'hi'}]))"
"""


def _load(path: str | None) -> Config:
    return load_config(path) if path else load_default_config()


def _cmd_serve(args: argparse.Namespace) -> int:
    from gateway.logs import configure_logging
    from gateway.server import run

    config = _load(args.config)
    configure_logging(args.log_format or config.server.log_format, args.log_level or config.server.log_level)
    return run(config, args.host, args.port)


def _cmd_check(args: argparse.Namespace) -> int:
    config = load_config(args.file)
    models = ", ".join(f"{name} -> {'/'.join(m.backend for m in model.backends)}"
                       for name, model in config.models.items())
    print(f"{args.file}: OK ({len(config.models)} model(s): {models}; {len(config.backends)} backend(s); "
          f"dispatch {config.dispatch.kind}; auth {'on' if config.auth.enabled else 'OFF'})")
    return 0


def _cmd_hash_key(args: argparse.Namespace) -> int:
    key = args.key if args.key not in (None, "-") else (
        sys.stdin.readline().strip() if args.key == "-" or not sys.stdin.isatty() else getpass.getpass("API key: "))
    if not key:
        print("lockgate: empty key", file=sys.stderr)
        return 2
    print(hash_key(key))
    return 0


def _cmd_default(_: argparse.Namespace) -> int:
    sys.stdout.write(default_config_text())
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lockgate", formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EXAMPLES,
        description="OpenAI-compatible serving gateway for LLM engines.")
    parser.add_argument("--version", action="version", version=f"lockgate {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    serve = sub.add_parser(
        "serve", help="run gateway, embedded dispatch and workers in one process",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  lockgate serve\n  lockgate serve --config lockgate.toml --host 0.0.0.0 --port 8000\n"
               "  LOCKGATE_API_KEYS=dev-key lockgate serve --config lockgate.toml --log-format json\n")
    serve.add_argument("--config", "-c", metavar="FILE", help="TOML config (default: the built-in sim config)")
    serve.add_argument("--host", help="listen address (default: from config, 127.0.0.1)")
    serve.add_argument("--port", type=int, help="listen port (default: from config, 8000)")
    serve.add_argument("--log-format", choices=["text", "json"], help="log line format")
    serve.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
    serve.set_defaults(func=_cmd_serve)

    config = sub.add_parser("config", help="validate and inspect configs")
    csub = config.add_subparsers(dest="config_command", metavar="SUBCOMMAND", required=True)
    check = csub.add_parser("check", help="validate a config file; errors name the field and line",
                            epilog="example:\n  lockgate config check lockgate.toml",
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    check.add_argument("file")
    check.set_defaults(func=_cmd_check)
    hk = csub.add_parser("hash-key", help="print the SHA-256 of an API key for [[auth.keys]]",
                         epilog="examples:\n  lockgate config hash-key            (prompts, input hidden)\n"
                                "  echo -n $KEY | lockgate config hash-key -",
                         formatter_class=argparse.RawDescriptionHelpFormatter)
    hk.add_argument("key", nargs="?", help="the key, or - to read it from stdin (default: prompt)")
    hk.set_defaults(func=_cmd_hash_key)
    default = csub.add_parser("default", help="print the built-in default config")
    default.set_defaults(func=_cmd_default)
    experiments_command.add_parser(sub)
    add_bench_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], int] | None = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    try:
        return func(args)
    except ConfigError as exc:
        print("\n".join(exc.lines()), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
