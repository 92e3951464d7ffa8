"""`samcache` / `python -m samcache`: signals are handled before the heavy imports start."""

import sys


def main() -> None:
    from samcache.procs import install_signal_handlers, pending_signal

    install_signal_handlers()
    try:
        from samcache.pipeline.cli import main as cli_main  # light: a command imports torch, zarr ... when it runs
    except KeyboardInterrupt:
        print("\ninterrupted while starting; nothing was done", file=sys.stderr)
        sys.exit(143 if pending_signal() == 15 else 130)
    cli_main()


if __name__ == "__main__":
    main()
