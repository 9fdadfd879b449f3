"""The only place that touches devices: ports as Protocols, real and simulated."""
