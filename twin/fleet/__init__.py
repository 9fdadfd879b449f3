"""A fleet of meters on one host: `dsmr-twin fleet run|inventory|ctl`.

Every meter of a fleet is the same code as `dsmr-twin run` (`twin.app.build`), with its own
state directory, store, keys and P3 address; worker processes each host a share of the meters
in one asyncio loop, and the fleet's head process restarts a worker that dies (twin/fleet/head.py).
"""
