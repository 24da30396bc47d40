"""The rank launcher (`dualtrain.launch`) blames the rank that died first.

A OneFlow rank whose peer dies aborts milliseconds later (its IO poller sees
the socket's EPOLLERR: SIGABRT). Both deaths can fall within one poll of the
watcher, so it times each rank's end on a thread waiting for it; the ranks that
die of the first are named after it. The jobs here are defined in this module,
which the ranks can import (it is on the path they are handed).
"""

from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path

import pytest

from dualtrain.launch import RankFailed, run_ranks

FOLDER = "DUALTRAIN_TEST_LAUNCH"


def rank_one_dies_and_rank_zero_aborts_of_it(heartbeat):
    """Rank 1 dies by SIGSEGV; rank 0 aborts 30 ms after it sees rank 1 gone."""
    mark = Path(os.environ[FOLDER]) / "rank1-dying"
    if os.environ["RANK"] == "1":
        mark.write_text("")
        os.kill(os.getpid(), signal.SIGSEGV)
    while not mark.exists():
        time.sleep(0.005)
    time.sleep(0.03)  # well inside one poll of the watcher (POLL_SECONDS, 0.2 s)
    os.abort()


def test_the_rank_that_died_first_is_blamed_and_the_rank_that_died_of_it_named(
    tmp_path, monkeypatch
):
    monkeypatch.setenv(FOLDER, str(tmp_path))
    with pytest.raises(RankFailed) as info:
        run_ranks(rank_one_dies_and_rank_zero_aborts_of_it, 2, "probe")
    message = str(info.value)
    assert re.fullmatch(
        r"probe: rank 1 of 2 killed by SIGSEGV without a result after ~0 steps; "
        r"then rank 0 killed by SIGABRT; every rank was stopped",
        message,
    ), message
    assert info.value.rank == 1
