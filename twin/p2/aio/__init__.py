"""The asyncio side of P2: services, the gas-meter twin and its stand-alone runner.

Kept apart from the sans-IO core (the modules directly in `twin.p2`, which never import
asyncio, serial, time, os or random: tests/unit/p2/test_sans_io.py). The rest of the twin
uses `wiring` (twin/app.py), `service` and `gasmeter` from here.
"""
