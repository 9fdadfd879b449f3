"""The failed-login guard on its own (sans-IO, a settable `now`)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from twin.p3.server.logins import MAX_LOCKOUT_S, THRESHOLD, LoginGuard

T0 = datetime(2026, 12, 7, tzinfo=UTC)


class Now:
    def __init__(self) -> None:
        self.value = T0

    def __call__(self) -> datetime:
        return self.value


def test_lock_outs_double_up_to_the_cap_and_a_success_resets_everything() -> None:
    now = Now()
    guard = LoginGuard(now)
    verdicts = [guard.failed() for _ in range(THRESHOLD)]
    assert [v.first_of_burst for v in verdicts] == [True] + [False] * (THRESHOLD - 1)
    assert verdicts[-1].locked_for_s == 60
    assert not guard.login_allowed()
    delays = []
    for _ in range(8):
        now.value += timedelta(hours=2)
        assert guard.login_allowed()
        verdict = guard.failed()
        assert not verdict.first_of_burst  # still the same burst: no new event 46
        delays.append(verdict.locked_for_s)
    assert delays == [120, 240, 480, 960, 1920, MAX_LOCKOUT_S, MAX_LOCKOUT_S, MAX_LOCKOUT_S]
    guard.succeeded()
    assert guard.login_allowed()
    assert guard.locked_until is None
    first = guard.failed()
    assert first.first_of_burst
    assert first.locked_for_s is None  # a new burst starts from THRESHOLD again
    assert guard.refused == 1
