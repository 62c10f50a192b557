"""`espeak-ng -v VOICE -s RATE -p PITCH -w OUT.wav WORDS` for machines without Debian's espeak-ng:
the same engine from the `espeakng-loader` wheel (`pip install espeakng-loader`, libespeak-ng 1.52
with its voice data), through ctypes. Only those four options, which `keyword_speech.py` uses.

Each call is a process of its own, as the CLI's are: within one process the library keeps state
from one synthesis to the next (the same word twice in a row comes out different). Across
processes most words come out the same, not all: two writings of the keyword set differed in 198
of its 880 files (by up to a quarter of full scale in a few), so the set repeats in kind, not bit
for bit.
"""

import argparse
import ctypes
import sys
import wave

SYNCHRONOUS = 2  # espeak_AUDIO_OUTPUT: samples go to the callback, espeak_Synth returns when done
RATE, PITCH = 1, 3  # espeak_PARAMETER
POS_CHARACTER, CHARS_AUTO = 1, 0


def synthesize(words, voice, rate, pitch):
    """(16-bit little-endian sample bytes, sample rate) of `words` spoken by libespeak-ng."""
    try:
        import espeakng_loader
    except ImportError:
        sys.exit("keyword speech needs espeak-ng: `apt-get install espeak-ng`, or `pip install espeakng-loader`")
    lib = ctypes.CDLL(espeakng_loader.get_library_path())
    sample_rate = lib.espeak_Initialize(SYNCHRONOUS, 0, espeakng_loader.get_data_path().encode(), 0)
    if sample_rate <= 0:
        sys.exit("libespeak-ng did not start")
    chunks = []

    def collect(samples, count, events):
        if samples and count > 0:
            chunks.append(ctypes.string_at(samples, 2 * count))
        return 0  # go on

    callback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)(collect)
    lib.espeak_SetSynthCallback(callback)  # `callback` stays referenced until the end of this function
    accent, plus, variant = voice.partition("+")
    # The CLI also finds a voice by its language (`en-gb`); the library only by its file, `en` in 1.52.
    names = [voice] + ([f"en{plus}{variant}"] if accent == "en-gb" else [])
    if all(lib.espeak_SetVoiceByName(name.encode()) != 0 for name in names):
        sys.exit(f"libespeak-ng has no voice {voice!r}")
    lib.espeak_SetParameter(RATE, rate, 0)
    lib.espeak_SetParameter(PITCH, pitch, 0)
    text = words.encode() + b"\0"
    lib.espeak_Synth.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
                                 ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
    if lib.espeak_Synth(text, len(text), 0, POS_CHARACTER, 0, CHARS_AUTO, None, None) != 0:
        sys.exit(f"libespeak-ng could not speak {words!r}")
    lib.espeak_Synchronize()
    return b"".join(chunks), sample_rate


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-v", dest="voice", default="en")
    parser.add_argument("-s", dest="rate", type=int, default=175, help="words per minute")
    parser.add_argument("-p", dest="pitch", type=int, default=50, help="0-100")
    parser.add_argument("-w", dest="output", required=True, help="WAV file to write")
    parser.add_argument("words")
    args = parser.parse_args(argv)
    samples, sample_rate = synthesize(args.words, args.voice, args.rate, args.pitch)
    with wave.open(args.output, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        w.writeframes(samples)


if __name__ == "__main__":
    main()
