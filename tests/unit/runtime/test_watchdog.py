"""A frozen event loop ends the process with a last word: the records in hand and the stacks.

Real processes (the exit is the point): a handler-like loop that never
yields (exit 5, logged), a regex that holds the GIL (killed by SIGVTALRM after
faulthandler's stacks), and a process stopped and continued (not judged).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from pipeline.runtime.watchdog import EXIT_FROZEN_LOOP, LoopWatchdog

SCRIPT = textwrap.dedent(
    """
    import asyncio, logging, re, sys, time
    from pipeline.runtime.watchdog import LoopWatchdog
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")
    how = sys.argv[1]

    async def main() -> None:
        dog = LoopWatchdog(1.0, lambda: ["orders-3@417"], "enrich", lambda: 250, backstop_s=1.0)
        with dog.watching(asyncio.get_running_loop()):
            print("watching", flush=True)
            if how == "spin":
                while True:
                    pass
            if how == "regex":
                re.match(r"(a+)+$", "a" * 40 + "b")
            if how == "pause":
                await asyncio.sleep(6)
                print("lived", flush=True)

    asyncio.run(main())
    """
)


def frozen(how: str, tmp_path: Path) -> subprocess.Popen[str]:
    script = tmp_path / "frozen.py"
    script.write_text(SCRIPT)  # a file, so that the stacks show its lines
    return subprocess.Popen(
        [sys.executable, str(script), how],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_a_loop_that_never_yields_exits_5_naming_the_record_and_the_frozen_line(
    tmp_path: Path,
) -> None:
    process = frozen("spin", tmp_path)
    _, err = process.communicate(timeout=30)
    assert process.returncode == EXIT_FROZEN_LOOP, err
    [line] = [line for line in err.splitlines() if "stood still" in line]
    assert "in processor enrich; in a handler: orders-3@417; 250 record(s) taken" in line
    assert "Exiting 5" in line
    assert "in main\n    while True:" in err, "the frozen thread's stack shows where it stands"


def test_a_regex_that_holds_the_gil_is_ended_by_the_backstop_with_every_stack(
    tmp_path: Path,
) -> None:
    process = frozen("regex", tmp_path)
    _, err = process.communicate(timeout=30)
    assert process.returncode == -signal.SIGVTALRM, err
    assert "stood still" not in err, "the watchdog thread could not run: the GIL was held"
    assert 'frozen.py", line' in err and "in main" in err, err  # faulthandler's traceback


def test_a_process_stopped_and_continued_is_not_taken_for_a_frozen_loop(tmp_path: Path) -> None:
    process = frozen("pause", tmp_path)
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "watching"
    process.send_signal(signal.SIGSTOP)
    time.sleep(3)  # the fault itself: a process stopped past the stall
    process.send_signal(signal.SIGCONT)
    out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert "lived" in out


async def test_in_process_the_exit_is_called_once_with_the_log_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    exits: list[int] = []
    dog = LoopWatchdog(0.3, lambda: [], "p", exit_process=exits.append)
    with caplog.at_level(logging.CRITICAL), dog.watching(asyncio.get_running_loop(), False):
        await asyncio.sleep(0.5)
        assert not dog.fired.is_set(), "a loop that beats is never judged frozen"
        time.sleep(1.5)  # noqa: ASYNC251 - the loop standing still is the point
        assert dog.fired.wait(2)
    assert exits == [EXIT_FROZEN_LOOP]
    assert "no record (the loop froze outside a handler)" in caplog.text
