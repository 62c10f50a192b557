"""Files converted once per process for the training pipeline (compressed audio → WAV, video → frames).

Formats that only a Python library decodes (FLAC/MP3 through soundfile, MP4/WebM through PyAV)
are converted when a manifest is read, before any TF op runs, into a file the pipeline's TF ops
read. No Python then runs inside the `tf.data` graph: an exception during training unwinds at
once, where a `tf.py_function` step would wait for the Python lock the unwinding thread holds.
"""

import atexit
import hashlib
import os
import shutil
import tempfile
import threading


class ConversionCache:
    """Converted copies of files, in a temporary folder removed when the process exits.

    Keyed by path, size, modification time and the conversion's settings, so a manifest read
    again (validation, evaluation) reuses the conversions, and new settings convert again.

    Args:
        prefix: str. Start of the temporary folder's name.
        suffix: str. Extension of the converted files.
        convert: fn(path, *settings) → bytes; raises ValueError with the reason when the file
            does not convert.

    Example:

    >>> import tempfile, os
    >>> cache = ConversionCache("demo", ".txt", lambda path, times: open(path, "rb").read() * times)
    >>> source = os.path.join(tempfile.mkdtemp(), "a.txt")
    >>> _ = open(source, "w").write("ab")
    >>> open(cache.converted(source, 2), "rb").read(), cache.converted(source, 2) == cache.converted(source, 2)
    (b'abab', True)
    """

    def __init__(self, prefix, suffix, convert):
        self.prefix, self.suffix, self.convert = prefix, suffix, convert
        self._folder = None
        self._done = {}
        self._lock = threading.Lock()

    def _root(self):
        with self._lock:
            if self._folder is None:
                self._folder = tempfile.mkdtemp(prefix=f"mmkeras-{self.prefix}-")
                atexit.register(shutil.rmtree, self._folder, True)
            return self._folder

    def converted(self, path, *settings):
        """The path of `path` converted with `settings`. Raises ValueError when it does not convert."""
        stat = os.stat(path)
        key = (os.path.abspath(path), stat.st_size, stat.st_mtime_ns, settings)
        with self._lock:
            if key in self._done:
                return self._done[key]
        data = self.convert(path, *settings)
        name = hashlib.sha1(repr(key).encode()).hexdigest()[:20] + self.suffix
        target = os.path.join(self._root(), name)
        with open(target, "wb") as f:
            f.write(data)
        with self._lock:
            self._done[key] = target
        return target
