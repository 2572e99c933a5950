"""The one exception type for user mistakes (config, data files, paths), and how a request to stop becomes Ctrl-C."""
import argparse
import contextlib
import functools
import signal
import sys
import threading


class UserError(Exception):
    """A problem the user can fix; `main()` prints it as one line and exits 2."""


class OneLineParser(argparse.ArgumentParser):
    """argparse with the project's error format: one line, exit code 2 (argparse's own prints its usage too)."""

    def error(self, message):
        self.exit(2, f"error: {message} (see --help)\n")


def one_line_errors(main):
    """A command's main(argv): a UserError raised anywhere in it, or torch running out of memory, is printed as
    one line, `error: ...`, on stderr, and main returns 2; no traceback. The one place the project's
    `python -m ...` commands do this (bench/'s scripts, for developers, have their own)."""
    @functools.wraps(main)
    def wrapped(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        except UserError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        except RuntimeError as err:
            if not is_out_of_memory(err):
                raise
            print(f"error: {out_of_memory_line(err)}", file=sys.stderr)
            return 2
    return wrapped


def is_out_of_memory(err: BaseException) -> bool:
    """torch's allocator refusing: torch.OutOfMemoryError on a GPU, a plain RuntimeError on the CPU."""
    return type(err).__name__ == "OutOfMemoryError" or "can't allocate memory" in str(err)


def out_of_memory_line(err: BaseException) -> str:
    """What ran out and what to change: a network too large for the machine (seen: a layer size of 1e13 ended in
    the allocator's traceback), or a batch too large for a GPU. A run folder already begun keeps its checkpoints,
    so `--resume` on a larger machine continues it."""
    said = str(err).splitlines()[0] if str(err) else type(err).__name__
    said = said.split("DefaultCPUAllocator: ")[-1].split(" Error code")[0]  # the CPU's words, without C++ noise
    said = said.split(". GPU ")[0]  # CUDA's: what it tried to allocate, not its memory report
    return (f"out of memory: {said.rstrip('.')}. Use smaller layers (config keys 'fcLayers', 'C_list'), a smaller "
            f"'batchSize' or 'test_batchSize', or a machine with more memory")


_held: list[int] | None = None  # the stop signals received inside stops_deferred; None outside it


def _interrupt(signum, frame):
    if _held is not None:
        _held.append(signum)
        return
    raise KeyboardInterrupt


def stop_signals_interrupt() -> None:
    """SIGTERM (`kill`, a cluster's time limit) stops the process as Ctrl-C does, with a KeyboardInterrupt that the
    CLI and funcs.reproduce turn into a stop at a checkpoint; and Ctrl-C works again where a shell started the
    process in the background (`nohup ... &` from a script), which leaves SIGINT ignored, for the process and its
    children: seen, funcs.reproduce's --deadline went unheard. Both go through _interrupt, which stops_deferred
    can hold. Only from the main thread, where Python allows it; a handler of someone else's is left alone."""
    if threading.current_thread() is not threading.main_thread():
        return
    signal.signal(signal.SIGTERM, _interrupt)
    if signal.getsignal(signal.SIGINT) in (signal.SIG_IGN, signal.default_int_handler):
        signal.signal(signal.SIGINT, _interrupt)


@contextlib.contextmanager
def stops_deferred():
    """Hold Ctrl-C and SIGTERM (once stop_signals_interrupt has set them up) until the block has ended, then stop
    as they would have: an epoch's row and its checkpoint are written together or not at all (seen: a
    --deadline's SIGINT between the two left a row with no checkpoint, and the run started again). A block that
    raises ends the process anyway: its exception goes on, the held stop with it."""
    global _held
    if _held is not None:  # nested: the outer block holds
        yield
        return
    _held = []
    try:
        yield
    finally:
        held, _held = _held, None
    if held:
        raise KeyboardInterrupt
