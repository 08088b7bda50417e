#!/usr/bin/env python3
"""Runs a command once and writes one line to OUTFILE, like GNU time's
'%e %U %S %M %c %R' (wall s, user s, system s, peak RSS kB, involuntary
context switches, minor faults) but with millisecond resolution: GNU time
prints CPU times in hundredths, too coarse for runs of a tenth of a second.

    bench/timeit.py OUTFILE CMD [ARGS...]   (the command's stdout/stderr are
    passed through; the exit status is the command's)
"""
import os
import subprocess
import sys
import time

out, cmd = sys.argv[1], sys.argv[2:]
start = time.monotonic()
proc = subprocess.Popen(cmd)
_, status, ru = os.wait4(proc.pid, 0)
wall = time.monotonic() - start
with open(out, "w") as f:
    f.write(f"{wall:.3f} {ru.ru_utime:.3f} {ru.ru_stime:.3f} {ru.ru_maxrss} {ru.ru_nivcsw} {ru.ru_minflt}\n")
sys.exit(os.waitstatus_to_exitcode(status) if hasattr(os, "waitstatus_to_exitcode") else status >> 8)
