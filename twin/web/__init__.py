"""The live web console: the meter's views and controls in a browser (`[web]`, `--web`).

An adapter like the control socket: it reads the model and the services through the `Twin`
(twin/parts.py) and sends every control through the control server's one validated dispatch
(twin/control.py); it never touches hardware. `twin.web.wiring` adds it to a running twin.
"""
