"""The P3 communication unit: the GPRS modem, the connection behaviour and the pushes.

DSMR GPRS companion standard §3 and DSMR P3 chapters 8 and 9:

- `controller`: always-on GPRS, the connection watchdog, the P3 service behind it (P3 §8).
- `modem_service`: the AT modem as a supervised service (network information P3 §8.4,
  SMS and CSD wake-ups).
- `push`, `push_time`, `push_triggers`, `push_wakeup`, `push_runner`: the push setups
  (class 40, P3 §9.3), communication windows and randomised moments, the internal triggers
  (P3 §9.1.1-§9.1.2), the SMS and CSD wake-ups (P3 §9.1.3-§9.1.4) and the attempts.

`push`, `push_time`, `push_triggers` and `push_wakeup` are sans-IO; `controller`,
`modem_service` and `push_runner` run on asyncio.
"""
