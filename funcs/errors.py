"""The one exception type for user mistakes (config, data files, paths), and how a request to stop becomes Ctrl-C."""
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
