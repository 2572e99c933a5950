"""The one exception type for user mistakes (config, data files, paths), and how a request to stop becomes Ctrl-C."""
import contextlib
import signal
import threading


class UserError(Exception):
    """A problem the user can fix; `main()` prints it as one line and exits 2."""


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def stop_signals_interrupt() -> None:
    """SIGTERM (`kill`, a cluster's time limit) stops the process as Ctrl-C does, with a KeyboardInterrupt that the
    CLI and funcs.reproduce turn into a stop at a checkpoint; and Ctrl-C works again where a shell started the
    process in the background (`nohup ... &` from a script), which leaves SIGINT ignored, for the process and its
    children: seen, funcs.reproduce's --deadline went unheard. Only from the main thread, where Python allows it."""
    if threading.current_thread() is not threading.main_thread():
        return
    signal.signal(signal.SIGTERM, _interrupt)
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


@contextlib.contextmanager
def stops_deferred():
    """Hold Ctrl-C and SIGTERM until the block has ended, then stop as they would have: an epoch's row and its
    checkpoint are written together or not at all (seen: a --deadline's SIGINT between the two left a row with
    no checkpoint, and the run started again). Signals handled by the OS's default (no Python handler) and other
    threads are left as they are."""
    held = []
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    handlers = {s: h for s, h in handlers.items() if callable(h)}
    for sig in handlers:
        signal.signal(sig, lambda signum, frame: held.append(signum))
    try:
        yield
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    if held:
        handlers[held[0]](held[0], None)
