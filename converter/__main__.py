import os
import sys


def run() -> None:
    """`python -m converter` (and the best entry point for the `tflm-kit` script): Ctrl-C while the
    command-line modules are still importing ends like any other interrupt, exit 130, no traceback."""
    try:
        from .cli import main
    except KeyboardInterrupt:
        print("interrupted: nothing was written to the output directory", file=sys.stderr, flush=True)
        os._exit(130)  # not sys.exit: see cli._exit_interrupted
    main()


if __name__ == "__main__":
    run()
