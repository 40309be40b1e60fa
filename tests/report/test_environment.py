"""The report's environment section: devices, versions, data and the study's time, stated from the runs' records."""

from __future__ import annotations

import pandas as pd

from aebench.report.environment import DIGEST_ROW, duration, environment


def test_a_study_over_two_devices_counts_each_and_keeps_its_gaps_apart() -> None:
    runs = pd.DataFrame({
        "device_name": ["AMD EPYC CPU (2 threads)"] * 3 + ["NVIDIA H200"],
        "torch_version": ["2.14.1"] * 4,
        "git_commit": ["abc123"] * 4,
        "started_at": ["2026-12-04T20:00:00+00:00", "2026-12-04T20:10:00+00:00", "2026-12-04T22:00:00+00:00",
                       "2026-12-04T22:30:00+00:00"],
        "finished_at": ["2026-12-04T20:10:00+00:00", "2026-12-04T20:20:00+00:00", "2026-12-04T22:10:00+00:00",
                        "2026-12-04T22:35:30+00:00"],
        "wall_seconds": [600.0, 600.0, 600.0, 330.0],
        "data_dir": ["/usr/share/datasets/fashion-mnist"] * 3 + ["/data/fashion-mnist"],
        "data_digest": ["f4a8,9018,8181,15d4"] * 4,
    })  # fmt: skip
    rows = dict(environment(runs))
    # where the data came from, counted like devices; the same content from two folders is one digest
    assert rows["data folder"] == "/usr/share/datasets/fashion-mnist (3 runs), /data/fashion-mnist (1 run)"
    assert rows[DIGEST_ROW] == "f4a8,9018,8181,15d4"
    assert rows["device"] == "AMD EPYC CPU (2 threads) (3 runs), NVIDIA H200 (1 run)"
    assert rows["torch"] == "2.14.1" and rows["aebench commit"] == "abc123" and "host" not in rows
    # 20:00 to 22:35:30 is the span, 2130 s the runs' own time: the gap between sittings shows as their difference
    assert rows["study wall time"].startswith("2 h 36 min, from the first run's start (2026-12-04T20:00:00+00:00)")
    assert rows["runs' own wall time"].startswith("35 min 30 s over 4 runs")


def test_durations_read_as_a_person_reads_them() -> None:
    assert [duration(s) for s in (9.34, 252, 3600 + 7 * 60 + 20)] == ["9.3 s", "4 min 12 s", "1 h 07 min"]
    assert environment(pd.DataFrame({"arch": ["fc"]})) == []
