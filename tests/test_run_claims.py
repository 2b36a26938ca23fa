"""A run directory is claimed before anything is written into it (issue 20, points 5, 6, 16):
of two commands started together into one directory exactly one runs, a live run is never
resumed over, a claim left by a killed run does not block resuming in place, and every
run-directory refusal is one ``Error:`` line with exit status 2."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest
import yaml

from helpers import ROOT, SHORT, data_overrides, tiny
from linzoo.run.run_dirs import CLAIM_FILE, RunDirError, claim_run_dir, live_claim, release_run_claims

ENV = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
HOLDER = (
    "import sys, time; from linzoo.run.run_dirs import claim_run_dir; "
    "claim_run_dir(sys.argv[1], job='train'); print('claimed', flush=True); time.sleep(120)"
)


def start(argv: list[str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, *argv], cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


@pytest.fixture
def holder(tmp_path):
    """A live process (not this one) holding the claim of ``tmp_path / "run"``."""
    run = tmp_path / "run"
    process = start(["-c", HOLDER, str(run)])
    try:
        assert process.stdout.readline().strip() == "claimed", process.stderr.read()
        yield run, process
    finally:
        process.kill()
        process.wait()


def test_claims_in_process(tmp_path, holder) -> None:
    """A live claim is refused with its pid and host and no advice to resume; a killed holder's claim on this host is taken over, released claims leave no file, and another host's claim is never taken over (the refusal names the file to delete)."""
    run, process = holder
    host = socket.gethostname()
    assert live_claim(run) == {"pid": process.pid, "host": host, "job": "train", "started": live_claim(run)["started"]}
    with pytest.raises(RunDirError, match=rf"in use by a live run \(pid {process.pid} on host {host}") as refused:
        claim_run_dir(run, job="train")
    assert "ckpt_path" not in str(refused.value) and "resume" not in str(refused.value)
    process.kill()
    process.wait()  # killed: the kernel dropped its lock, its claim file stays
    assert (run / CLAIM_FILE).is_file() and live_claim(run) is None
    try:
        assert claim_run_dir(run, job="train")["pid"] == process.pid  # a stale claim is taken over
        assert json.loads((run / CLAIM_FILE).read_text())["pid"] == os.getpid()
        assert claim_run_dir(run, job="train") is None  # held already by this process
    finally:
        release_run_claims()
    assert not (run / CLAIM_FILE).exists()
    other = tmp_path / "other"
    other.mkdir()
    (other / CLAIM_FILE).write_text(json.dumps({"pid": dead_pid(), "host": "elsewhere", "started": "then"}))
    with pytest.raises(RunDirError, match=rf"host elsewhere .*cannot check.*delete {other / CLAIM_FILE}"):
        claim_run_dir(other, job="train")
    assert (other / CLAIM_FILE).is_file()  # another host's claim is never taken over


def test_a_live_run_is_refused_with_its_pid_and_no_advice_to_resume(holder) -> None:
    """train into a directory that a live run holds exits 2 naming that run's pid and host, never advises resuming it in place, and writes nothing there (no .hydra/, no log)."""
    run, process = holder
    (run / "checkpoints").mkdir()
    (run / "checkpoints" / "last.ckpt").write_text("not really a checkpoint")
    before = sorted(p.name for p in run.rglob("*"))
    last = run / "checkpoints" / "last.ckpt"
    refused = start(["scripts/train.py", f"ckpt_path={last}", f"hydra.run.dir={run}"])
    _out, err = refused.communicate(timeout=120)
    assert refused.returncode == 2, err[-2000:]
    line = err.strip().splitlines()[-1]
    assert line.startswith(f"Error: hydra.run.dir={run} is in use by a live run (pid {process.pid} on host "), err
    assert "ckpt_path" not in line and "resume" not in line, line
    assert sorted(p.name for p in run.rglob("*")) == before  # no .hydra/, no log


@pytest.mark.slow
def test_two_trains_started_together_one_runs_and_a_stale_claim_does_not_block_resume(
    tmp_path, fake_mnist_root
) -> None:
    """Of two train commands started together into one directory exactly one runs and the other exits 2; the directory holds the winner's config, checkpoints and metrics only; a stale claim of a killed run does not block resuming it in place."""
    run = tmp_path / "run"
    common = ["scripts/train.py", *tiny("mlp"), *SHORT, *data_overrides(fake_mnist_root), f"hydra.run.dir={run}"]
    racing = {seed: start([*common, f"seed={seed}"]) for seed in (1, 2)}
    ended = {seed: (process.wait(timeout=300), process.communicate()) for seed, process in racing.items()}
    codes = sorted(code for code, _ in ended.values())
    assert codes == [0, 2], {seed: err[-2000:] for seed, (_, (_, err)) in ended.items()}
    winner = next(seed for seed, (code, _) in ended.items() if code == 0)
    loser_err = next(err for _, (code, (_, err)) in ended.items() if code == 2)
    line = loser_err.strip().splitlines()[-1]
    # Both start within a second, and training takes longer: the loser meets the winner's live claim.
    assert line.startswith(f"Error: hydra.run.dir={run} is in use by a live run (pid "), loser_err[-2000:]
    assert "nothing was touched" in line and "Traceback" not in loser_err
    # The directory holds the winner's run only.
    assert sorted(p.name for p in (run / "checkpoints").iterdir() if p.name.startswith("last")) == ["last.ckpt"]
    assert yaml.safe_load((run / "config.yaml").read_text())["seed"] == winner
    assert f"seed={winner}" in (run / ".hydra" / "overrides.yaml").read_text()
    assert json.loads((run / "metrics.json").read_text())["seed"] == winner
    assert not (run / CLAIM_FILE).exists()  # released at the end

    # Killed mid-run (no metrics.json, a claim of a dead process left): resume in place takes it over.
    (run / "metrics.json").unlink()
    (run / CLAIM_FILE).write_text(json.dumps({"pid": dead_pid(), "host": socket.gethostname(), "job": "train"}))
    last = run / "checkpoints" / "last.ckpt"
    resumed = start([*common, f"seed={winner}", f"ckpt_path={last}", "trainer.max_epochs=3"])
    _out, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err[-2000:]
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["status"] == "finished" and metrics["epochs"] == 3
    assert not (run / CLAIM_FILE).exists()
