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


def test_the_first_copy_of_tunes_state_is_made_as_soon_as_it_settles(tmp_path, monkeypatch):
    """Tune rewrites its state files more often than backup()'s settle time early in a run:
    looking every 5 s from the first step, a driver killed in a run's first seconds while
    Tune copied its searcher snapshot left it cut short with no copy (resume refused). Until
    each file has a copy the guard looks every FIRST_BACKUP_S."""
    import os
    import time

    from hpsearch.rundir import tune_state

    clock = [100.0]
    monkeypatch.setattr(guard.time, "monotonic", lambda: clock[0])
    state = tmp_path / "searcher-state-2026-12-01_09-34-10.pkl"
    state.write_bytes(b"\x80\x05K\x01.")  # a whole (tiny) pickle, written just now
    g = guard.DiskGuard(tmp_path)
    g.on_step_end(1, [])
    assert not tune_state.backed_up(guard.RunDir(tmp_path))  # too fresh to copy yet
    old = time.time() - 5
    os.utime(state, (old, old))  # it settled
    clock[0] += 2 * guard.FIRST_BACKUP_S
    g.on_step_end(2, [])
    assert tune_state.backed_up(guard.RunDir(tmp_path))
    state.write_bytes(b"\x80\x05K\x02.")
    os.utime(state, (old, old))
    clock[0] += 2 * guard.FIRST_BACKUP_S
    g.on_step_end(3, [])  # copied once: back to every backup_every_s
    assert (tmp_path / ".tune-state-backup" / state.name).read_bytes() == b"\x80\x05K\x01."


def test_sigterm_stops_the_search_as_tunes_own_interrupt_then_raises(tmp_path):
    """SIGTERM while Tune fits: the first one is Tune's interrupt (SIGUSR1: state saved, the
    run resumable) and marks the run stopped by SIGTERM (read once); a second one, or one
    that comes before Tune listens, raises KeyboardInterrupt. The handler before is put
    back."""
    import os
    import signal

    from hpsearch.rundir import RunDir

    rd, got, before_term = RunDir(tmp_path), [], signal.getsignal(signal.SIGTERM)
    before_usr1 = signal.signal(signal.SIGUSR1, lambda *a: got.append("usr1"))
    try:
        with guard.sigterm_stops(rd):
            os.kill(os.getpid(), signal.SIGTERM)
            assert got == ["usr1"]
            try:
                os.kill(os.getpid(), signal.SIGTERM)
                raise AssertionError("the second SIGTERM did not raise")
            except KeyboardInterrupt:
                pass
        assert signal.getsignal(signal.SIGTERM) is before_term
        assert guard.stopped_by(tmp_path) == "SIGTERM" and guard.stopped_by(tmp_path) is None
        signal.signal(signal.SIGUSR1, signal.SIG_DFL)  # Tune not listening yet
        try:
            with guard.sigterm_stops(rd):
                os.kill(os.getpid(), signal.SIGTERM)
            raise AssertionError("SIGTERM before Tune listens did not raise")
        except KeyboardInterrupt:
            pass
        assert guard.stopped_by(tmp_path) == "SIGTERM"
    finally:
        signal.signal(signal.SIGUSR1, before_usr1)
