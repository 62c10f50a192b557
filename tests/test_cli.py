"""Every command on a tiny config, as a user runs them (the installed `mmkeras` entry point)."""

import csv
import json
import os
import shutil
import subprocess
import sys

import pytest
import yaml
from media import tiny_config

from mmkeras_cli import main


# train → evaluate → export → predict and the demo through the installed command: test_first_contact's
# plain-install test, which runs each in a fresh process of a clean environment.


def test_prepare_writes_shards(tiny_run, tmp_path, capsys):
    _, manifest, _ = tiny_run
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(tiny_config(manifest)))
    assert main(["prepare", "--config", str(config), "--data", manifest, "--output", str(tmp_path / "shards"),
                 "--shards", "3"]) == 0
    assert "wrote 3 TFRecord shard(s)" in capsys.readouterr().out


def test_errors_are_one_line_with_exit_code_2(tmp_path, capsys):
    assert main(["train", "--config", str(tmp_path / "missing.yaml"), "--output", str(tmp_path / "run")]) == 2
    assert "mmkeras train: error:" in capsys.readouterr().err
    assert main(["predict", "--model", str(tmp_path), "--data", str(tmp_path / "none.csv")]) == 2


def test_predict_prints_json_lines_without_output(tiny_run, capsys):
    run_dir, manifest, rows = tiny_run
    assert main(["predict", "--model", run_dir, "--data", manifest]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == len(rows) and json.loads(lines[0])["row"] == 1


def test_a_misspelled_column_is_an_error_naming_it(tiny_run, tmp_path, capsys):
    _, manifest, _ = tiny_run
    config = tiny_config(manifest, epochs=1)
    config["data"]["columns"] = {"image": "imgae"}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    assert main(["train", "--config", str(path), "--output", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "no column 'imgae' for modality 'image'" in err and "'audio'" in err


def test_a_bad_file_inside_the_pipeline_is_one_located_line(tiny_run, tmp_path, capsys):
    _, manifest, rows = tiny_run
    folder = os.path.dirname(manifest)
    with open(os.path.join(folder, "broken.png"), "wb") as f:
        f.write(b"this is not a picture")
    rows = [dict(r) for r in rows]
    rows[2]["image"] = "broken.png"
    bad = os.path.join(folder, "with_broken.csv")
    with open(bad, "w", newline="") as f:
        writer = csv.DictWriter(f, list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    assert main(["predict", "--model", tiny_run[0], "--data", bad]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("mmkeras predict: error: with_broken.csv, row 3, column image, file ")
    assert "not an image file" in err and len(err.splitlines()) == 1


def test_manifests_that_are_not_utf8_or_have_ragged_rows_name_the_line(tmp_path, capsys):
    from mmkeras.data import read_manifest

    latin = tmp_path / "latin.csv"
    latin.write_bytes("text,label\nfine,a\ncaf\xe9,b\n".encode("latin-1"))
    with pytest.raises(ValueError, match=r"latin.csv, line 3, column 4: byte 0xe9 is not UTF-8"):
        read_manifest(str(latin))
    ragged = tmp_path / "ragged.csv"
    ragged.write_text("text,label\nfine,a\none, two,b\n")
    with pytest.raises(ValueError, match=r"ragged.csv, row 2: 3 cells but the header has 2"):
        read_manifest(str(ragged))
    short = tmp_path / "short.csv"
    short.write_text("text,image,label\nfine,a.png,a\nonly two,b\n")
    with pytest.raises(ValueError, match=r"short.csv, row 2: 2 cells but the header has 3"):
        read_manifest(str(short))
    twice = tmp_path / "twice.csv"  # the second image column would silently replace the first
    twice.write_text("text,image,audio,label,image\nfine,a.png,a.wav,a,\n")
    with pytest.raises(ValueError, match=r"twice.csv, header: column\(s\) \['image'\] named more than once"):
        read_manifest(str(twice))


@pytest.mark.parametrize("text, message", [
    ("data: {train: t.csv}\nmodalities: {text: {}}\ntraining: {epochs: ten}\n",
     "Config key 'training.epochs': expected an integer >= 1. Received: 'ten'"),
    ("data: {train: t.csv}\nmodalities: {image: {height: big}}\n",
     "Config key 'modalities.image.height': expected an integer >= 1. Received: 'big'"),
    ("data: {train: t.csv}\nmodalities: {text: {}}\ntraining: {batch_size: -4}\n",
     "Config key 'training.batch_size': expected an integer >= 1. Received: -4"),
    ("data: {train: t.csv\nmodalities: [\n", "line 2"),
    # "billion laughs": nine aliases nested seven deep expand to 9**7 values, and an error echoing one took GBs
    ("a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{n}: &{n} [{', '.join([f'*{p}'] * 9)}]\n" for p, n in zip("abcdef", "bcdefg"))
     + "data: {train: *g}\nmodalities: {text: {}}\n", "the config expands to more than 100000 values"),
])
def test_config_values_of_the_wrong_type_or_syntax_name_the_key(tmp_path, capsys, text, message):
    path = tmp_path / "config.yaml"
    path.write_text(text)
    assert main(["train", "--config", str(path), "--output", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mmkeras train: error:") and message in err
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_corrupt_image_bodies_are_located_in_train_and_in_served_predictions(tiny_run, tmp_path, capsys):
    from media import image_bytes
    from media import write_manifest

    run_dir, manifest, rows = tiny_run
    folder = os.path.dirname(manifest)
    good = image_bytes("PNG", size=(16, 16), seed=3)
    with open(os.path.join(folder, "corrupt.png"), "wb") as f:
        f.write(good[:60] + b"\x00" * 40 + good[100:])
    rows = [dict(r) for r in rows]
    rows[4]["image"] = "corrupt.png"
    bad = write_manifest(folder, rows, "corrupt_body.csv")
    # with class weights: the weighting .map once dropped the locator and left a bare IteratorGetNext error
    config = tiny_config(bad, epochs=1, class_weights=True)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    assert main(["train", "--config", str(path), "--output", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert "row 5, column image, file " in err and "corrupt or truncated" in err and len(err.splitlines()) == 1

    export = str(tmp_path / "saved_models" / "tiny")
    assert main(["export", "--run", run_dir, "--output", export]) == 0
    assert "SavedModel written and checked" in capsys.readouterr().out
    assert main(["predict", "--model", export, "--data", bad]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("mmkeras predict: error: corrupt_body.csv, row 5, column image: Input image:"), err

    # --on-bad-record skip: every other row is predicted, the bad ones listed (a corrupt body the
    # served graph refuses, a file the client cannot find), from the SavedModel and from the run
    rows[1]["image"] = "nowhere.png"
    bad = write_manifest(folder, rows, "two_bad.csv")
    for model in (export, run_dir):
        out = tmp_path / f"{os.path.basename(model)}.csv"
        assert main(["predict", "--model", model, "--data", bad, "--on-bad-record", "skip", "--output", str(out)]) == 0
        captured = capsys.readouterr()
        assert f"{len(rows) - 2} prediction(s) written" in captured.out
        assert "skipped 2 bad record(s) with no prediction" in captured.err, captured.err
        with open(out) as f:
            assert [int(r["row"]) for r in csv.DictReader(f)] == [n for n in range(1, len(rows) + 1) if n not in (2, 5)]
        with open(str(out)[:-4] + "_skipped.csv") as f:
            listed = list(csv.DictReader(f))
        assert [(r["row"], r["column"]) for r in listed] == [("2", "image"), ("5", "image")], listed
        assert "not found" in listed[0]["reason"]


def test_unlocated_faults_name_what_is_wrong(tmp_path, capsys):
    """A modality given as text, a too-small manifest for a split, a truncated preprocessor.json."""
    import mmkeras

    config = tmp_path / "c.yaml"
    config.write_text("data: {train: t.csv}\nmodalities: {text: yes please}\n")
    assert main(["train", "--config", str(config), "--output", str(tmp_path / "run")]) == 2
    assert ("Config key 'modalities.text': expected a mapping of its settings"
            in capsys.readouterr().err)
    one = tmp_path / "one.csv"
    one.write_text("text,label\nhello,a\n")
    with pytest.raises(ValueError, match=r"one.csv: 1 row\(s\); a validation split of 0.2 needs at least 2"):
        mmkeras.stratified_split(str(one))
    pre = mmkeras.Preprocessor({"text": {"max_tokens": 10, "sequence_length": 2}}, label_names=["a"])
    pre.adapt(texts={"text": ["hello"]})
    pre.save(str(tmp_path / "pre"))
    state = tmp_path / "pre" / "preprocessor.json"
    state.write_text(state.read_text()[:40])
    with pytest.raises(ValueError, match=r"preprocessor.json: not a saved Preprocessor's state \(invalid JSON"):
        mmkeras.Preprocessor.load(str(tmp_path / "pre"))


@pytest.mark.slow
def test_ctrl_c_stops_train_with_status_130_and_the_same_command_resumes(tmp_path):
    import signal
    import time

    from media import write_tiny_dataset

    manifest, _ = write_tiny_dataset(str(tmp_path))
    epochs = 15
    config = tmp_path / "c.yaml"
    # Enough epochs that the run is still training when the signal lands (with 6 it could finish
    # between the first epoch's line and the signal on a busy machine, and exit 0).
    config.write_text(yaml.safe_dump(tiny_config(manifest, epochs=epochs, early_stopping_patience=0)))
    run = tmp_path / "run"
    exe = shutil.which("mmkeras", path=os.path.dirname(sys.executable)) or shutil.which("mmkeras")
    command = [exe, "train", "--config", str(config), "--output", str(run)]
    # A shell starts background jobs (a CI runner's, say) with SIGINT ignored, and a child keeps that:
    # the command under test gets the default handling a terminal's foreground process has.
    process = subprocess.Popen(command, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
                               env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    log, deadline = run / "training.csv", time.time() + 240
    while time.time() < deadline and process.poll() is None:
        if log.exists() and len(log.read_text().splitlines()) >= 2:  # an epoch logged
            break
        time.sleep(0.2)
    assert process.poll() is None, "the run must still be training when Ctrl-C comes"
    process.send_signal(signal.SIGINT)
    sent = time.time()
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130, err[-2000:]
    assert time.time() - sent < 60
    assert err.strip().splitlines()[-1] == ("mmkeras train: interrupted; the same command resumes from the last "
                                            "finished epoch")
    assert not (run / "finished.json").exists() and not (run / "run.lock").exists()
    done = int(len(log.read_text().splitlines()) - 1)
    again = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert again.returncode == 0, again.stderr[-2000:]
    with open(log) as f:
        assert [int(r["epoch"]) for r in csv.DictReader(f)] == list(range(epochs))
    assert done >= 1 and json.load(open(run / "finished.json"))["epochs_run"] == epochs


def test_every_option_says_what_it_is_and_version_answers(capsys):
    from importlib.metadata import version

    from mmkeras_cli import build_parser

    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices
    for name, command in commands.items():
        for action in command._actions:
            assert action.help, f"mmkeras {name} {'/'.join(action.option_strings)} has no help text"
    assert "(default: 0.5)" in commands["distill"].format_help().replace("\n", " ")
    with pytest.raises(SystemExit) as stopped:
        main(["--version"])
    assert stopped.value.code == 0 and capsys.readouterr().out.strip() == f"mmkeras {version('mmkeras')}"


def test_help_version_and_usage_errors_answer_without_importing_tensorflow():
    # a fresh interpreter, as the entry point runs: TensorFlow must not be imported to answer these
    script = ("import sys, mmkeras_cli\n"
              "for argv in (['--help'], ['--version'], ['train', '--help'], ['export', '--run', 'r', '--output', 'o',"
              " '--quantize', 'int8'], ['predict']):\n"
              "    try:\n"
              "        mmkeras_cli.main(argv)\n"
              "    except SystemExit as stop:\n"
              "        print('exit', stop.code)\n"
              "print('tensorflow imported' if 'tensorflow' in sys.modules or 'keras' in sys.modules else 'not imported')\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    lines = result.stdout.splitlines()
    assert [line for line in lines if line.startswith("exit")] == ["exit 0", "exit 0", "exit 0", "exit 2", "exit 2"]
    assert lines[-1] == "not imported", result.stdout
    assert "--quantize int8 applies to --format tflite only" in result.stderr
    assert "the following arguments are required: --model, --data" in result.stderr


def test_start_up_chatter_is_held_back_and_everything_else_passes(capfd):
    import mmkeras_cli

    chatter = ["WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n",
               "I0000 00:00:1796554133.279201   13176 port.cc:153] oneDNN custom operations are on.\n",
               "W0000 00:00:1796554133.279738   13176 cudart_stub.cc:31] Could not find cuda drivers\n",
               "E0000 00:00:1733.22   17 cuda_executor.cc:1228] failed call to cuInit: UNKNOWN ERROR (303)\n"]
    kept = ["E1204 10:01:02.123456   17 saver.cc:12] could not open checkpoint\n", "a Python warning\n",
            "Enter a value: "]  # a line without its end yet passes at once
    with mmkeras_cli._quiet_native_logs():
        for line in chatter + kept:
            os.write(2, line.encode())
    assert capfd.readouterr().err == "".join(kept)
    assert all(mmkeras_cli._is_chatter(line) for line in chatter)
