"""The gas-meter twin service (implemented in `twin.p2.aio.gasmeter`; see its docstring)."""

from twin.p2.aio.gasmeter import GasMeterTwin, default_key, ident_from_equipment_id

__all__ = ["GasMeterTwin", "default_key", "ident_from_equipment_id"]
