"""dsmr-twin: a digital twin of a DSMR 4.2.2 electricity meter."""
