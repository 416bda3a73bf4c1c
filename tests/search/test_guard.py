"""The disk guard, without Ray: it looks at the disk on every result."""

from hpsearch.search import guard


def test_disk_guard_sees_a_disk_that_filled_during_a_burst_of_results(tmp_path, monkeypatch):
    """Results that reach a busy driver in one burst: the disk filled between the first and
    the second (a guard that looked at most once a second missed it and the run went on)."""
    free = iter([500.0, 10.0])
    stops = []
    monkeypatch.setattr(guard, "_free_mb", lambda path: next(free))
    monkeypatch.setattr(guard, "_interrupt", lambda: stops.append(True))
    monkeypatch.setenv(guard.MIN_FREE_ENV, "30")
    g = guard.DiskGuard(tmp_path)
    g.on_trial_result(1, [], None, {"epoch": 1})
    assert not stops and guard.DiskGuard.tripped(tmp_path) is None
    g.on_trial_result(1, [], None, {"epoch": 2})  # microseconds later
    assert stops == [True] and guard.DiskGuard.tripped(tmp_path) == 10.0
    g.on_trial_result(1, [], None, {"epoch": 3})  # once stopped, once
    assert stops == [True]
    guard.DiskGuard.TRIPPED.pop(str(tmp_path), None)
