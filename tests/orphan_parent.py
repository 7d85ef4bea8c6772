"""A training process with process workers; the test kills it and watches its workers."""

import sys
import time

from host_fns import decode, raw_records

import feedax as fx

if __name__ == "__main__":
    stage = fx.HostMap(decode, workers=2, backend="process")
    pipe = fx.Pipeline(fx.ArraySource(raw_records(40), name="raw"), batch_size=8, host=stage)
    batches = iter(pipe)  # kept alive: its workers run until the process dies
    next(batches)
    print("ready", pipe._feed.reader._executor._payload, flush=True)
    sys.stdout.close()
    time.sleep(600)  # killed by the test long before
