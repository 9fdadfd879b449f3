"""The asyncio side of P2: services, the gas-meter twin and its stand-alone runner.

Kept apart from the sans-IO core (the modules directly in `twin.p2`, which never import
asyncio, serial, time, os or random: tests/unit/p2/test_sans_io.py). `twin.p2.service`,
`twin.p2.gasmeter` and `twin.p2.wiring` re-export what the rest of the twin uses.
"""
