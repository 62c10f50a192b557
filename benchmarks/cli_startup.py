"""How long the `mmkeras` command takes to answer `--help`, against importing TensorFlow, in fresh
processes measured in the same run.

Run: `.venv/bin/python benchmarks/cli_startup.py [--repeats 5]`

Prints the median wall time of each and their ratio (the `mmkeras --help` target is under a
quarter of TensorFlow's import time).
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time


def _median_seconds(command, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    exe = shutil.which("mmkeras", path=os.path.dirname(sys.executable)) or shutil.which("mmkeras")
    if not exe:
        raise SystemExit("the mmkeras entry point is not installed (make install)")
    cases = {"python -c 'import tensorflow'": [sys.executable, "-c", "import tensorflow"],
             "mmkeras --help": [exe, "--help"],
             "mmkeras train --help": [exe, "train", "--help"]}
    seconds = {name: _median_seconds(command, args.repeats) for name, command in cases.items()}
    baseline = seconds["python -c 'import tensorflow'"]
    for name, value in seconds.items():
        print(f"{name:32s} {value:7.3f} s  ({value / baseline:.3f} x TensorFlow's import)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
