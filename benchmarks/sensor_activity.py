"""A data set for the sensor and tabular kinds (issue 31): what a body-worn motion sensor was doing,
with two columns about the wearer. `defaults_table.py` judges the two kinds' defaults on it.

Run: `python benchmarks/sensor_activity.py DIR` writes it (no TensorFlow needed).

Data (`write_sensor_activity`, seeded; chance 1/6):
- `motion`: a 3-axis accelerometer at 50 Hz (CSV `x,y,z`, 130-190 readings, read as 160 steps):
  gravity along an axis that depends on where the sensor is worn, plus the activity's movement:
  `still` (a slow sway), `walk` (1.6-2.1 steps/s), `run` (2.4-3.0 steps/s, 2-3x stronger, with
  impacts), `stairs up` and `stairs down` (walking pace, 1.3-1.9 steps/s, with a sawtooth stride
  that rises slowly and falls fast, or the reverse, and the body tilted about 14 degrees forward
  or back), and `shake` (side to side, sin(2 pi f t w(t)) with f 4-6 Hz and w a slow wobble of
  0.7-1.3: the time-varying factor inside the sine sweeps the frequency over a wide range, far
  above 6 Hz at times); noise of 0.15 g and a few spikes. Walk and the two stair activities
  overlap in pace: the stride's shape and the tilt (under each wearer's random turn of up to 25
  degrees) tell them apart.
- `placement` (categorical: wrist, pocket or bag; 5% empty): where the sensor is worn, which
  maps the body's axes onto other axes of the sensor (pocket and bag swap two of them) and damps
  the movement in a bag. It says nothing about the activity alone.
- `heart_rate` (numeric, beats/min; 10% empty): higher for harder activities, with a spread of
  12 between people, so it separates `run` and `stairs up` from `still` but not walk from
  stairs down.
The sensor alone and the columns alone each leave classes they cannot tell apart: a random
forest on simple features (each channel's mean, spread and spectrum; the columns) scored 0.65 on
the sensor, 0.53 on the columns and 0.74 on both (on the first 180 test examples). 360 train /
120 validation / 720 test examples (the last 540 from a second random stream, EXTRA_TEST),
balanced over the activities.
"""

import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _seeded import write_balanced  # noqa: E402

ACTIVITIES = ("still", "walk", "run", "stairs up", "stairs down", "shake")
RATE = 50  # readings per second
STEPS = 160  # readings the model sees (pad or crop)
SPLITS = {"train": 360, "validation": 120, "test": 180}
#: Test rows beyond SPLITS' (720 in all). With 180, two equally good models that disagree on
#: about 20 test examples differ by about 2.5 points (one standard deviation) from the draw of the
#: examples alone, so a 3-point spread over seeds could not be judged; the extra rows keep the
#: training data the same.
EXTRA_TEST = 540
#: activity → (steps per second range, movement amplitude in g, mean heart rate)
MOVES = {"still": ((0.1, 0.3), 0.05, 72), "walk": ((1.6, 2.1), 0.35, 98), "run": ((2.4, 3.0), 0.9, 150),
         "stairs up": ((1.3, 1.9), 0.35, 118), "stairs down": ((1.3, 1.9), 0.35, 100), "shake": ((4.0, 6.0), 0.3, 84)}
#: Spread of the heart rate between people around the activity's mean (beats/min).
HEART_RATE_SD = 12.0
#: placement → (the sensor's axes that the body's forward, side and up axes fall on: a permutation,
#: a mirror image for pocket and bag; damping of the movement)
PLACEMENTS = {"wrist": ((0, 1, 2), 1.0), "pocket": ((0, 2, 1), 0.9), "bag": ((2, 1, 0), 0.6)}

#: The modality settings of every run: only what the files hold is set, the rest is the library's default.
MODALITIES = {
    "motion": {"kind": "sensor", "channels": 3, "length": STEPS},
    "wearer": {"kind": "tabular", "numeric": ["heart_rate"], "categorical": ["placement"]},
}


def _rotation(rng, degrees):
    """A random rotation matrix of up to `degrees` about a random axis (Rodrigues' formula)."""
    axis = rng.normal(size=3)
    axis /= np.linalg.norm(axis)
    angle = np.radians(rng.uniform(-degrees, degrees))
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * k @ k


def movement(activity, placement, rng):
    """(readings, 3) accelerations in g of one recording."""
    n = int(rng.integers(130, 191))
    t = np.arange(n) / RATE
    (low, high), amplitude, _ = MOVES[activity]
    pace = rng.uniform(low, high)
    phase = rng.uniform(0, 2 * np.pi)
    cycle = (pace * t + phase / (2 * np.pi)) % 1.0  # 0..1 within each stride
    body = np.zeros((n, 3))  # (forward, side, up) in the body's frame
    tilt = 0.0
    if activity in ("walk", "run"):
        body[:, 2] = np.sin(2 * np.pi * cycle) + 0.3 * np.sin(4 * np.pi * cycle)
        body[:, 0] = 0.4 * np.sin(2 * np.pi * cycle + 1.0)
        if activity == "run":
            body[:, 2] += 1.5 * (cycle < 0.08)  # foot strikes
    elif activity.startswith("stairs"):
        saw = np.where(cycle < 0.75, cycle / 0.75, (1 - cycle) / 0.25) * 2 - 1  # slow rise, fast fall
        body[:, 2] = saw if activity == "stairs up" else -saw
        body[:, 0] = 0.4 * np.sin(2 * np.pi * cycle + 1.0)
        tilt = 0.25 if activity == "stairs up" else -0.25  # leaning into the stairs, or back
    elif activity == "shake":
        wobble = 1 + 0.3 * np.sin(2 * np.pi * rng.uniform(0.3, 0.8) * t)
        body[:, 1] = np.sin(2 * np.pi * pace * t * wobble + phase)
    else:  # still: a slow sway
        body[:, 0] = np.sin(2 * np.pi * pace * t + phase)
    axes, damping = PLACEMENTS[placement]
    frame = _rotation(rng, 25) @ np.eye(3)[:, axes]  # body → sensor axes; each wearer's sits a little differently
    gravity = frame @ np.array([tilt, 0.0, 1.0])
    signal = damping * amplitude * rng.uniform(0.8, 1.2) * body @ frame.T + gravity / np.linalg.norm(gravity)
    noise = rng.normal(0.0, 0.15, (n, 3))
    spikes = rng.random(n) < 0.01
    noise[spikes] += rng.normal(0.0, 1.5, (spikes.sum(), 3))
    return signal + noise


def write_recording(path, readings):
    """Writes `(readings, 3)` accelerations as a CSV of columns `x,y,z`."""
    with open(path, "w") as f:
        f.write("x,y,z\n" + "".join(f"{x:.3f},{y:.3f},{z:.3f}\n" for x, y, z in readings))


def write_sensor_activity(folder, sizes=None, seed=13):
    """Writes the recordings and `train.csv`, `validation.csv`, `test.csv` (columns `motion,
    heart_rate,placement,label`, paths relative to `folder`); returns the manifests' paths."""
    os.makedirs(os.path.join(folder, "motion"), exist_ok=True)

    def example(i, activity, rng):
        placement = str(rng.choice(list(PLACEMENTS)))
        name = f"motion/{i:04d}.csv"
        write_recording(os.path.join(folder, name), movement(activity, placement, rng))
        heart = f"{MOVES[activity][2] + rng.normal(0.0, HEART_RATE_SD):.0f}" if rng.random() > 0.1 else ""
        return {"motion": name, "heart_rate": heart, "placement": placement if rng.random() > 0.05 else "",
                "label": activity}

    return write_balanced(folder, sizes or SPLITS, ACTIVITIES, seed, example, extra_test=0 if sizes else EXTRA_TEST)

if __name__ == "__main__":
    print(write_sensor_activity(sys.argv[1]))
