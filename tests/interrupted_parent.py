"""A training loop whose host stage hangs on a record; the test sends it Ctrl-C (SIGINT).

argv: backend ("process" or "thread")
"""

import signal
import sys

from host_fns import hangs_on_bad, raw_records

import feedax as fx

if __name__ == "__main__":
    # A job started in the background may inherit SIGINT ignored; a terminal's Ctrl-C is not.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    stage = fx.HostMap(hangs_on_bad, workers=2, backend=sys.argv[1])
    pipe = fx.Pipeline(fx.ArraySource(raw_records(40), name="raw"), batch_size=8, host=stage)
    print("started", flush=True)
    for _ in pipe.epoch():  # a batch holds the record that hangs: this blocks
        print("batch", flush=True)
