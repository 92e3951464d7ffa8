"""How the `samcache` command answers: every failure the user can cause is one line on stderr and a non-zero
exit, never a traceback; Ctrl-C and SIGTERM stop at once with advice that is true for the command; samcache's
warnings are one 'warning: ...' line each."""

from __future__ import annotations

import os
import signal
import sys
import warnings

import click

from samcache.errors import Interrupted, SamcacheError, SamcacheWarning, as_flag
from samcache.messages import INTERRUPT_ADVICE
from samcache.procs import pending_signal


_python_showwarning = warnings.showwarning


def show_warning(message, category, filename, lineno, file=None, line=None):
    if issubclass(category, SamcacheWarning):
        click.echo(f"warning: {message}", err=True)
    else:
        _python_showwarning(message, category, filename, lineno, file, line)


def _one_line(exc: SamcacheError) -> str:
    """The message in the CLI's words (flags); PyTorch re-raises a DataLoader worker's error with the worker's
    traceback in it."""
    text = exc.worded(as_flag) if isinstance(exc, SamcacheError) else str(exc)
    if "Original Traceback" in text:
        return text.strip().rsplit(f"{type(exc).__name__}: ", 1)[-1]
    return text


class OneLineGroup(click.Group):
    """Bad input becomes one line on stderr, never a traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt as exc:
            self._interrupted(ctx, exc)
        except click.UsageError as exc:  # a bad option value: one line (click prints usage + hint + error)
            command = f" {exc.ctx.command_path}" if exc.ctx is not None else ""
            error = click.ClickException(f"{exc.format_message()} (see{command} --help)")
            error.exit_code = exc.exit_code
            raise error from None
        except SamcacheError as exc:
            raise click.ClickException(_one_line(exc)) from None
        except OSError as exc:  # a full disk, a read-only folder ... named with the file
            if pending_signal() is not None:  # e.g. a DataLoader worker that the signal stopped first
                self._interrupted(ctx, KeyboardInterrupt())
            where = f": {exc.filename}" if getattr(exc, "filename", None) else ""
            raise click.ClickException(f"{exc.strerror or exc}{where}") from None
        except Exception:
            if pending_signal() is not None:  # the interrupt, surfacing as another error
                self._interrupted(ctx, KeyboardInterrupt())
            raise

    @staticmethod
    def _interrupted(ctx, exc: KeyboardInterrupt) -> None:
        advice = exc.advice if isinstance(exc, Interrupted) else \
            INTERRUPT_ADVICE.get(ctx.invoked_subcommand or "", INTERRUPT_ADVICE["default"])
        click.echo(f"\n{advice}", err=True)
        code = getattr(exc, "exit_code", None) or (143 if pending_signal() == signal.SIGTERM else 130)
        if (ctx.obj or {}).get("hard_exit"):  # the console script: our cleanup is done, skip teardown
            sys.stdout.flush(), sys.stderr.flush()
            os._exit(code)
        ctx.exit(code)
